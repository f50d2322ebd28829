"""The bigram language model of the lecture: one (V, V) table of next-token logits."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from bigramlm.errors import BigramLMError
from bigramlm.models.base import LanguageModel, check_weights_fit


@dataclass
class BigramConfig:
    vocab_size: int
    #: The bigram ignores context; block_size only sets the window length used for
    #: batches and evaluation.
    block_size: int = 8

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BigramLMError(f"{name} must be an integer of at least 1 (got {value!r})", param=name)
        # The table is V x V: a BPE vocabulary of 2**20 would need 4 TiB.
        check_weights_fit(self.vocab_size**2, f"a bigram over vocab_size {self.vocab_size}", param="vocab_size")


class BigramLanguageModel(LanguageModel):
    """Row ``i`` of the embedding table holds the logits of the token after token ``i``."""

    #: The next token depends on the last one only: generation walks ``transition_logits``.
    markov = True

    def __init__(self, config: BigramConfig):
        super().__init__()
        self.config = config
        self.token_embedding_table = nn.Embedding(config.vocab_size, config.vocab_size)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.token_embedding_table(idx)  # (B, T, V)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(
            rearrange(logits, "b t v -> (b t) v"), rearrange(targets, "b t -> (b t)")
        )
        return logits, loss

    def transition_logits(self) -> torch.Tensor:
        """The whole model as a (V, V) matrix: generation looks up one row per token."""
        return self.token_embedding_table.weight

    @torch.no_grad()
    def load_log_probs(self, log_probs: torch.Tensor) -> None:
        """Install a (V, V) table of log-probabilities, e.g. the counts solution."""
        self.token_embedding_table.weight.copy_(log_probs)
