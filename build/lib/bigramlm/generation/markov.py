"""Sampling a first-order Markov chain (the bigram) at millions of tokens per second."""

from __future__ import annotations

from typing import Iterator

import numpy as np


class MarkovChainSampler:
    """Exact sampling of a first-order Markov chain at about a million steps per second.

    Each state keeps a pool of next tokens drawn i.i.d. from its row (vectorised
    ``searchsorted`` over uniform draws). Walking the chain then costs one list lookup
    per step: the k-th visit to a state uses that state's k-th independent draw, which
    is exactly a draw from the row, independent of the past.
    """

    def __init__(self, probs: np.ndarray, seed: int | None = None):
        self.cdf = np.cumsum(probs.astype(np.float64), axis=1)
        self.cdf /= self.cdf[:, -1:]
        self.vocab_size = probs.shape[0]
        self.rng = np.random.default_rng(seed)
        self.pools: list[list[int]] = [[] for _ in range(self.vocab_size)]
        self.positions = [0] * self.vocab_size
        self.pool_sizes = [64] * self.vocab_size

    def _refill(self, state: int) -> list[int]:
        size = self.pool_sizes[state]
        self.pool_sizes[state] = min(size * 2, 1 << 16)  # frequent states get larger pools
        draws = np.searchsorted(self.cdf[state], self.rng.random(size), side="right")
        pool = np.minimum(draws, self.vocab_size - 1).tolist()
        self.pools[state] = pool
        self.positions[state] = 0
        return pool

    def walk(self, start: int, n: int, chunk: int = 8192) -> Iterator[list[int]]:
        """Yield the next ``n`` states after ``start`` in chunks (for streaming)."""
        pools, positions = self.pools, self.positions
        state = start
        done = 0
        while done < n:
            out: list[int] = []
            append = out.append
            for _ in range(min(chunk, n - done)):
                pos = positions[state]
                pool = pools[state]
                if pos >= len(pool):
                    pool = self._refill(state)
                    pos = 0
                positions[state] = pos + 1
                state = pool[pos]
                append(state)
            done += len(out)
            yield out
