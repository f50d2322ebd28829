"""Many prompts at once: one batched, KV-cached decode for a whole evaluation split.

``generate_batch`` continues every prompt (they may differ in length: the cache masks
the left padding) until a stop string or ``max_new_tokens``. Finished rows leave the
batch (a quarter at a time), so a long reply never keeps the short ones' compute busy. Stop strings are
looked for only after a token whose text could start one, so most steps decode
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from bigramlm.errors import BigramLMError
from bigramlm.generation.checks import check_new_tokens, check_sampling
from bigramlm.generation.decoding import make_decoder
from bigramlm.generation.filters import draw_tokens
from bigramlm.models.base import LanguageModel
from bigramlm.tokenization import Tokenizer


#: Finished rows leave the batch once they are this fraction of it (1/4): every
#: compaction copies the whole KV cache, and compacting at each finished row took 23% of
#: a support evaluation's decode; a finished row decoded a few steps more costs less.
COMPACT_SHARE = 4


@dataclass
class _Row:
    ids: list[int]
    text: str | None = None


def _stop_flags(tokenizer: Tokenizer, stop: Sequence[str]) -> torch.Tensor:
    """Per token id: could its text contain the first character of a stop string?"""
    starts = {s[0] for s in stop if s}
    flags = torch.zeros(tokenizer.vocab_size, dtype=torch.bool)
    if starts:
        for token in range(tokenizer.vocab_size):
            piece = tokenizer.decode([token])
            flags[token] = any(ch in piece for ch in starts)
    return flags


def _cut_at_stop(text: str, stop: Sequence[str]) -> str | None:
    hits = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return text[: min(hits)] if hits else None


@torch.no_grad()
def generate_batch(
    model: LanguageModel,
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    stop: Sequence[str] = (),
    rows_per_batch: int = 64,
    on_progress: Callable[[int], None] | None = None,
    greedy: Sequence[bool] | None = None,
) -> list[str]:
    """The continuation of each prompt (not including it), cut before the first stop string.

    Temperature 0 is greedy; ``greedy[i]`` makes prompt ``i`` greedy while the others
    sample (the best guess and its alternatives in one batched decode). Rows are processed ``rows_per_batch`` at a time, longest
    prompts together so that little padding is computed.
    """
    check_new_tokens(max_new_tokens)
    check_sampling(temperature, top_k, top_p)
    if rows_per_batch < 1:
        raise BigramLMError(f"rows_per_batch must be at least 1 (got {rows_per_batch})", param="rows_per_batch")
    encoded = [list(tokenizer.encode(p, on_unknown="replace")) or [tokenizer.start_id] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    generator = torch.Generator().manual_seed(seed if seed is not None else 0)
    flags = _stop_flags(tokenizer, stop)
    out: list[str] = [""] * len(prompts)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), rows_per_batch):
            chunk = order[start : start + rows_per_batch]
            greedy_rows = torch.tensor([bool(greedy[i]) if greedy is not None else False for i in chunk])
            texts = _decode_rows(model, tokenizer, [encoded[i] for i in chunk], max_new_tokens,
                                 (temperature, top_k, top_p), generator, stop, flags, greedy_rows)
            for i, text in zip(chunk, texts):
                out[i] = text
            if on_progress is not None:
                on_progress(min(start + rows_per_batch, len(order)))
    finally:
        model.train(was_training)
    return out


def _decode_rows(model: LanguageModel, tokenizer: Tokenizer, contexts: list[list[int]], max_new_tokens: int,
                 sampling: tuple[float, int | None, float | None], generator: torch.Generator,
                 stop: Sequence[str], flags: torch.Tensor, greedy_rows: torch.Tensor) -> list[str]:
    """Decode one batch of rows; finished rows are dropped from the decoder as they stop."""
    budget = max_new_tokens
    if not model.markov:  # a row may not outgrow the context it was trained on
        budget = min(budget, max(1, model.get_block_size() - max(len(c) for c in contexts)))
    rows = [_Row([]) for _ in contexts]
    slots: list[int | None] = list(range(len(rows)))  # the row each decoder slot decodes; None: finished
    decoder = make_decoder(model, contexts)
    temperature, top_k, top_p = sampling
    for step in range(budget):
        if temperature == 0:
            tokens = decoder.logits.argmax(dim=-1).cpu()
        else:
            tokens = draw_tokens(decoder.logits, temperature, top_k, top_p, generator)
            if bool(greedy_rows.any()):
                tokens = torch.where(greedy_rows, decoder.logits.argmax(dim=-1).cpu(), tokens)
        for slot, token in enumerate(tokens.tolist()):
            if slots[slot] is None:
                continue
            row = rows[slots[slot]]
            row.ids.append(token)
            if flags[token]:
                row.text = _cut_at_stop(tokenizer.decode(row.ids), stop)
                if row.text is not None:
                    slots[slot] = None
        live = [slot for slot, r in enumerate(slots) if r is not None]
        if not live or step + 1 == budget:
            break
        if len(slots) - len(live) >= max(1, len(slots) // COMPACT_SHARE):
            keep = torch.tensor(live, dtype=torch.long)
            decoder.keep_rows(keep)
            tokens, slots, greedy_rows = tokens[keep], [slots[s] for s in live], greedy_rows[keep]
        decoder.push(tokens)
    return [row.text if row.text is not None else tokenizer.decode(row.ids) for row in rows]
