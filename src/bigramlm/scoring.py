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
import torch.nn as nn


def _chunk(block: int, context_free: bool) -> int:
    # A model that only looks at the last token loses nothing when every window is
    # full of targets; a windowed model keeps at least half a block of context.
    return block if context_free else max(1, block // 2)


@torch.no_grad()
def continuation_logprobs(
    model: nn.Module,
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
    chunk = _chunk(block, hasattr(model, "transition_logits"))
    device = next(model.parameters()).device
    windows: list[tuple[int, int, int, list[int]]] = []  # (seq, first target, n targets, inputs)
    results = [np.zeros(len(c), dtype=np.float64) for c in continuations]
    for s, (prefix, cont) in enumerate(zip(prefixes, continuations)):
        seq = [int(t) for t in prefix] + [int(t) for t in cont]
        start = max(len(prefix), 1)  # the first token of a sequence has no context
        end = len(seq)
        a = start
        while a < end:
            e = min(a + chunk, end)
            lo = max(0, e - 1 - block)
            windows.append((s, a, e - a, seq[lo : e - 1]))
            a = e
    was_training = model.training
    model.eval()
    try:
        for b0 in range(0, len(windows), batch_windows):
            group = windows[b0 : b0 + batch_windows]
            width = max(len(w[3]) for w in group)
            # Right padding is harmless: causal models never look ahead, and padded
            # positions are never read.
            x = torch.zeros((len(group), width), dtype=torch.long)
            for r, w in enumerate(group):
                x[r, : len(w[3])] = torch.tensor(w[3], dtype=torch.long)
            logits, _ = model(x.to(device))
            logp = torch.log_softmax(logits.float(), dim=-1).cpu()
            for r, (s, a, n, inputs) in enumerate(group):
                lo = (a + n - 1) - len(inputs)  # absolute position of inputs[0]
                seq_cont_offset = len(prefixes[s])
                positions = torch.arange(a - 1 - lo, a - 1 - lo + n)  # logits rows predicting targets a..a+n-1
                targets = torch.tensor(
                    [_target(prefixes[s], continuations[s], t) for t in range(a, a + n)], dtype=torch.long
                )
                values = logp[r, positions, targets].double().numpy()
                results[s][a - seq_cont_offset : a - seq_cont_offset + n] = values
    finally:
        model.train(was_training)
    return results


def _target(prefix: Sequence[int], cont: Sequence[int], position: int) -> int:
    return int(prefix[position]) if position < len(prefix) else int(cont[position - len(prefix)])


def continuation_logprob_sums(model: nn.Module, prefix: Sequence[int], continuations: Sequence[Sequence[int]]) -> np.ndarray:
    """Total log-probability of each continuation of one shared prefix."""
    scores = continuation_logprobs(model, [prefix] * len(continuations), continuations)
    return np.array([s.sum() for s in scores], dtype=np.float64)
