"""Speculative decoding against the plain decoder, in one process and one run.

Three rows, each measured both ways with the same seeds (the replies are the same either way;
the benchmark counts the candidates that differ):

- ``desk``: ``Assistant.suggest`` for the everyday desk messages at n = 3 (3 rows a batch,
  400-token limit), alternating plain and speculative, ``--seeds`` seeds each;
- ``batch``: one ``suggest_many`` of ``--batch-messages`` messages x 3 candidates decoded
  192 rows at a time (the evaluation's decode), once plain and once with speculation
  forced on (``batch.SPECULATE_ROWS`` raised), which is why big batches do not speculate;
- ``bigram``: the bigram's table sampler (no network per token; it never speculates),
  tokens per second for the record;
- ``pass_ms``: what one cached pass of the run's model costs for 3, 6, 12 and 24 rows at 1,
  3 and 5 positions a row (the median of 20, behind ``batch.SPECULATE_ROWS``: a draft pays
  only where the tokens it saves cost more than its extra positions).

For each: seconds, passes, tokens, draft tokens offered and kept, greedy rows' tokens per pass.

    python benchmarks/speculation.py --run runs/support --json
"""

from __future__ import annotations

import json
import random
import statistics
import time
from typing import Any, Callable

from _common import parser
from bench_server_load import MESSAGES


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def desk(assistant: Any, seeds: int) -> dict[str, Any]:
    from bigramlm.generation.speculation import DecodeStats, Speculation
    from bigramlm.support.settings import SuggestSettings

    seconds: dict[str, list[float]] = {"plain": [], "speculative": []}
    stats = {name: DecodeStats() for name in seconds}
    differ = 0
    assistant.suggest(MESSAGES[0], SuggestSettings(seed=0))  # warm
    for seed in range(seeds):
        for message in MESSAGES:
            texts = {}
            for name, speculation in (("plain", None), ("speculative", Speculation())):
                assistant.speculation = speculation
                took, result = _timed(lambda: assistant.suggest(message, SuggestSettings(seed=seed)))
                seconds[name].append(took)
                _add(stats[name], result.decode)
                texts[name] = [d.text for d in result.drafts]
            differ += sum(a != b for a, b in zip(texts["plain"], texts["speculative"]))
    rows = {name: {"seconds": round(sum(seconds[name]), 2), "p50_ms": round(1000 * statistics.median(seconds[name]), 1),
                   **stats[name].as_dict()} for name in seconds}
    return {**rows, "requests": len(seconds["plain"]), "candidates_differing": differ,
            "plain_vs_speculative": round(rows["plain"]["seconds"] / rows["speculative"]["seconds"], 2)}


def batch(assistant: Any, messages: int) -> dict[str, Any]:
    from bigramlm.generation import batch
    from bigramlm.generation.speculation import Speculation
    from bigramlm.support.settings import SuggestSettings

    rows = random.Random(0).sample(assistant.data.train_rows, messages)
    settings = SuggestSettings(n=3, drafts=3, max_new_tokens=400, temperature=0.8, top_p=0.95, seed=1337)
    out: dict[str, Any] = {}
    threshold = batch.SPECULATE_ROWS
    for name, forced in (("plain", False), ("speculative", True)):
        assistant.speculation = Speculation() if forced else None
        batch.SPECULATE_ROWS = 10**9 if forced else threshold
        try:
            took, results = _timed(lambda: assistant.suggest_many([r.message for r in rows], settings))
        finally:
            batch.SPECULATE_ROWS = threshold
        out[name] = {"seconds": round(took, 2), **results[0].decode.as_dict()}
    out["rows"] = 3 * messages
    out["plain_vs_speculative"] = round(out["plain"]["seconds"] / out["speculative"]["seconds"], 2)
    return out


def bigram(vocab: int, tokens: int) -> dict[str, Any]:
    import torch

    from bigramlm.generation import generate_ids
    from bigramlm.models.bigram import BigramConfig, BigramLanguageModel

    torch.manual_seed(0)
    model = BigramLanguageModel(BigramConfig(vocab))
    took, ids = _timed(lambda: [t for chunk in generate_ids(model, [0], tokens, seed=0) for t in chunk])
    return {"tokens": len(ids), "seconds": round(took, 3), "tokens_per_s": round(len(ids) / took)}


def pass_ms(model: Any, rows: tuple[int, ...] = (3, 6, 12, 24), positions: tuple[int, ...] = (1, 3, 5)) -> dict[str, Any]:
    """ms of one pass through a KV cache 100 tokens deep, per (rows, positions)."""
    import torch

    from bigramlm.generation.decoding import CachedDecoder

    out: dict[str, Any] = {}
    with torch.no_grad():
        for b in rows:
            for t in positions:
                decoder = CachedDecoder(model, [[5] * 80] * b)
                for _ in range(100):
                    decoder.push(torch.zeros(b, dtype=torch.long))
                times = []
                for _ in range(20):
                    start = time.perf_counter()
                    decoder.verify(torch.zeros(b, t, dtype=torch.long))
                    times.append(time.perf_counter() - start)
                    decoder.commit(torch.ones(b, dtype=torch.long))
                out[f"{b}x{t}"] = round(1000 * statistics.median(times), 2)
    return out


def _add(total: Any, part: Any) -> None:
    for name in ("passes", "draft_passes", "tokens", "drafted", "accepted", "greedy_tokens", "greedy_passes"):
        setattr(total, name, getattr(total, name) + getattr(part, name))


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="support run directory (e.g. from train --recipe support)")
    p.add_argument("--seeds", type=int, default=2, help="seeds per desk message (default 2)")
    p.add_argument("--batch-messages", type=int, default=64, help="messages of the batch row (default 64: 192 rows)")
    args = p.parse_args()
    from bigramlm.support.assistant import Assistant
    from bigramlm.training.threads import configure_threads

    assistant = Assistant.load(args.run, use_store=False)
    configure_threads(assistant.model, None)
    report = {"run": args.run, "desk": desk(assistant, args.seeds), "batch": batch(assistant, args.batch_messages),
              "bigram": bigram(assistant.tokenizer.vocab_size, 1_000_000), "pass_ms": pass_ms(assistant.model)}
    if args.json:
        print(json.dumps(report))
        return
    for name in ("desk", "batch"):
        r = report[name]
        s = r["speculative"]
        print(f"{name:6s} plain {r['plain']['seconds']} s ({r['plain']['passes']} passes), speculative {s['seconds']} s "
              f"({s['passes']} passes, drafts kept {s['acceptance']}, greedy rows {s['greedy_tokens_per_pass']} tokens a pass): "
              f"{r['plain_vs_speculative']}x")
    print(f"desk: {report['desk']['candidates_differing']} of {3 * report['desk']['requests']} candidates differ")
    print(f"bigram table sampler: {report['bigram']['tokens_per_s']:,} tokens/s (no speculation)")
    costs = report["pass_ms"]
    for b in sorted({int(k.split("x")[0]) for k in costs}):
        cells = " / ".join(f"{costs[f'{b}x{t}']}" for t in (1, 3, 5))
        print(f"one pass, {b:2d} rows, 1 / 3 / 5 positions: {cells} ms")


if __name__ == "__main__":
    main()
