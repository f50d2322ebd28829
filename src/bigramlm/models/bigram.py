"""The bigram language model of the lecture: one (V, V) table of next-token logits."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange


@dataclass
class BigramConfig:
    vocab_size: int
    #: The bigram ignores context; block_size only sets the window length used for
    #: batches and evaluation.
    block_size: int = 8


class BigramLanguageModel(nn.Module):
    """Row ``i`` of the embedding table holds the logits of the token after token ``i``."""

    def __init__(self, config: BigramConfig):
        super().__init__()
        self.config = config
        self.token_embedding_table = nn.Embedding(config.vocab_size, config.vocab_size)

    def get_block_size(self) -> int:
        return self.config.block_size

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
        """The whole model as a (V, V) matrix: what samplers of a Markov chain need.

        A model with this method depends on the last token only, so generation can
        look up one row per step instead of re-running the network.
        """
        return self.token_embedding_table.weight

    @torch.no_grad()
    def load_log_probs(self, log_probs: torch.Tensor) -> None:
        """Install a (V, V) table of log-probabilities, e.g. the counts solution."""
        self.token_embedding_table.weight.copy_(log_probs)
