"""Exact log-likelihoods of continuations under any model of the shared interface.

The assistant needs ``log p(continuation | prefix)`` in three places: to classify intent
(the labelled lines given the message), to rank suggestions (mean log-probability per
character) and to measure bits per character on responses. All three go through
``continuation_logprobs``, which works for any ``forward(idx) -> (logits, loss)`` model:

- the context of every scored token is cropped to the model's ``get_block_size()``
  (a GPT cannot see further; for the bigram the block size is nominal and cropping
  changes nothing);
- targets are scored in chunks of at most half a block, so each one keeps at least
  half a block of context, and all windows of all sequences run as a few batches.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from bigramlm.models.base import LanguageModel


def _chunk(block: int, context_free: bool) -> int:
    # A model that only looks at the last token loses nothing when every window is
    # full of targets; a windowed model keeps at least half a block of context.
    return block if context_free else max(1, block // 2)


@torch.no_grad()
def continuation_logprobs(
    model: LanguageModel,
    prefixes: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[int]],
    batch_windows: int = 512,
) -> list[np.ndarray]:
    """Per-token natural log-probabilities of each continuation given its prefix.

    ``prefixes[i]`` may be empty only if ``continuations[i]`` is scored from its second
    token on (the first has no context); in practice prompts are never empty.
    """
    if len(prefixes) != len(continuations):
        raise ValueError("prefixes and continuations must pair up")
    block = int(model.get_block_size())
    chunk = _chunk(block, model.markov)
    device = next(model.parameters()).device
    seqs = [np.concatenate([np.asarray(p, dtype=np.int64).reshape(-1), np.asarray(c, dtype=np.int64).reshape(-1)])
            for p, c in zip(prefixes, continuations)]
    windows: list[tuple[int, int, int, int]] = []  # (sequence, first target a, end e, input start lo)
    for s, prefix in enumerate(prefixes):
        a, end = max(len(prefix), 1), len(seqs[s])  # the first token of a sequence has no context
        while a < end:
            e = min(a + chunk, end)
            # Inputs seq[lo:e-1] predict targets seq[lo+1:e]; we read those in [a, e).
            windows.append((s, a, e, max(0, e - 1 - block)))
            a = e
    results = [np.zeros(len(c), dtype=np.float64) for c in continuations]
    was_training = model.training
    model.eval()
    try:
        for b0 in range(0, len(windows), batch_windows):
            group = windows[b0 : b0 + batch_windows]
            width = max(e - 1 - lo for _, _, e, lo in group)
            # Right padding is harmless: causal models never look ahead, and padded
            # positions are never read.
            x = np.zeros((len(group), width), dtype=np.int64)
            for r, (s, _, e, lo) in enumerate(group):
                x[r, : e - 1 - lo] = seqs[s][lo : e - 1]
            logits, _ = model(torch.from_numpy(x).to(device))
            logp = torch.log_softmax(logits.float(), dim=-1).cpu().numpy()
            rows = np.concatenate([np.full(e - a, r) for r, (_, a, e, _) in enumerate(group)])
            cols = np.concatenate([np.arange(a - 1 - lo, e - 1 - lo) for _, a, e, lo in group])
            tgts = np.concatenate([seqs[s][a:e] for s, a, e, _ in group])
            values = logp[rows, cols, tgts].astype(np.float64)
            offset = 0
            for s, a, e, _ in group:
                base = len(prefixes[s])
                results[s][a - base : e - base] = values[offset : offset + e - a]
                offset += e - a
    finally:
        model.train(was_training)
    return results


def continuation_logprob_sums(model: LanguageModel, prefix: Sequence[int], continuations: Sequence[Sequence[int]]) -> np.ndarray:
    """Total log-probability of each continuation of one shared prefix."""
    scores = continuation_logprobs(model, [prefix] * len(continuations), continuations)
    return np.array([s.sum() for s in scores], dtype=np.float64)
