"""Exact evaluation during training, shared among the ranks of a torchrun job."""

from __future__ import annotations

import torch

from bigramlm.evaluation.lm import EvalResult, summarize, total_nats
from bigramlm.models.base import LanguageModel
from bigramlm.training.amp import autocast
from bigramlm.training.distributed import Dist


class SplitEvaluator:
    """Exact loss over a split, cut into block-size windows and shared among ranks.

    Each rank scores a contiguous run of whole windows and the summed nats are
    all-reduced, so the figure equals the single-process one.
    """

    def __init__(self, dist: Dist, ids: torch.Tensor, block_size: int, characters: int, amp: str):
        self.dist, self.block_size, self.characters, self.amp = dist, block_size, characters, amp
        self.tokens = len(ids) - 1
        windows = self.tokens // block_size
        per_rank = -(-windows // dist.world_size) if windows else 0
        lo = min(dist.rank * per_rank, windows) * block_size
        hi = self.tokens if dist.rank == dist.world_size - 1 else min((dist.rank + 1) * per_rank, windows) * block_size
        self.ids = ids[lo : hi + 1]

    def __call__(self, model: LanguageModel, split: str = "val") -> EvalResult:
        nats, count = 0.0, 0
        if len(self.ids) > 1:
            with autocast(self.amp, self.ids.device):
                nats, count = total_nats(model, self.ids, block_size=self.block_size)
        all_nats, all_count = self.dist.all_reduce_sum([nats, float(count)])  # over the ranks
        return summarize(split, all_nats, int(all_count), self.characters)
