"""Generation speed of the GPT: KV cache (one position per new token) against the naive
re-run of the whole cropped window, both measured here, same model, same seed.

    python benchmarks/gpt_generation.py [--preset small] [--tokens 500] [--repeats 3] [--json]

The model is the ``small`` preset (6 layers, 4 heads, 256 wide, block 128) at its
initialisation: speed does not depend on what the weights say. Goal: >= 5x.
Also reports 3 candidates grown side by side (what ``assist --n 3`` does), the cached
one-position step's lean path (``GPT._decode_step``) against the module-by-module forward
it replaces, cached generation with the weights held in bf16 against fp32, and the same 3
candidates (one greedy) with speculative decoding against the plain decoder: at its
initialisation the model's drafts are rarely right, so that row measures what verifying
costs; ``benchmarks/speculation.py`` measures what it gains on a trained support model.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch

from bigramlm.models import build_model
from bigramlm.models.presets import preset
from bigramlm.generation import Sampling, encode_prompt, generate_ids, stream
from bigramlm.generation.speculation import DecodeStats, Speculation
from bigramlm.training.threads import configure_cpu_threads
from bigramlm.tokenization import CharTokenizer


def tokens_per_second(model: torch.nn.Module, tokens: int, kv_cache: bool, repeats: int) -> tuple[float, list[int]]:
    rates, out = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        out = [t for chunk in generate_ids(model, [0], tokens, temperature=1.0, seed=0, kv_cache=kv_cache) for t in chunk]
        rates.append(tokens / (time.perf_counter() - started))
    return statistics.median(rates), out


@torch.no_grad()
def decode_step_ms(model: torch.nn.Module, positions: int, generic: bool) -> float:
    """ms per cached one-position step. ``generic``: the module-by-module forward, which
    a model in train mode takes (this model has dropout 0, so the numbers are the same)."""
    model.train(generic)
    idx = torch.randint(model.config.vocab_size, (1, positions), generator=torch.Generator().manual_seed(0))
    cache = model.new_cache(1)
    model(idx[:, :1], cache=cache)
    started = time.perf_counter()
    for t in range(1, positions):
        model(idx[:, t : t + 1], cache=cache)
    model.eval()
    return (time.perf_counter() - started) / (positions - 1) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description="GPT generation: KV cache vs naive")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: bigramlm's policy by model size)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    text = open(__file__, encoding="utf-8").read()  # any text: only the vocabulary size matters
    tokenizer = CharTokenizer.from_text(text + "".join(chr(c) for c in range(32, 127)))
    torch.manual_seed(0)
    config = {**preset(args.preset), "vocab_size": 65}
    model = build_model("gpt", config).eval()
    threads = configure_cpu_threads(model)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
        threads = args.threads
    # Interleaved rounds: a busy machine slows both paths alike.
    cached_rates, naive_rates = [], []
    for _ in range(args.repeats):
        rate, cached = tokens_per_second(model, args.tokens, True, 1)
        cached_rates.append(rate)
        rate, naive = tokens_per_second(model, args.tokens, False, 1)
        naive_rates.append(rate)
    cached_rate, naive_rate = statistics.median(cached_rates), statistics.median(naive_rates)
    block = config["block_size"]
    # Up to the first time the window fills, both paths compute the same thing.
    same_prefix = cached[: block - 1] == naive[: block - 1]

    # The lean one-position path against the module-by-module forward, interleaved.
    no_dropout = build_model("gpt", {**config, "dropout": 0.0})
    no_dropout.load_state_dict(model.state_dict())
    lean_ms, generic_ms = [], []
    for _ in range(args.repeats):
        lean_ms.append(decode_step_ms(no_dropout, block, generic=False))
        generic_ms.append(decode_step_ms(no_dropout, block, generic=True))
    lean, generic = statistics.median(lean_ms), statistics.median(generic_ms)
    # Weights held in bf16: half the bytes per cached step, but a one-row bf16 GEMM.
    bf16_rate, _ = tokens_per_second(copy.deepcopy(model).to(torch.bfloat16), args.tokens, True, args.repeats)

    model_c = build_model("gpt", {**preset(args.preset), "vocab_size": tokenizer.vocab_size}).eval()
    prompts = [encode_prompt(tokenizer, "Hello")] * 3
    timings = {}
    for kv in (True, False):
        started = time.perf_counter()
        list(stream(model_c, tokenizer, prompts, args.tokens, Sampling(1.0), 0, kv_cache=kv, within_block=False, speculate=None))
        timings[kv] = time.perf_counter() - started
    # Speculative against plain, within the block (where speculation runs): one greedy row, two sampled.
    spec, spec_stats = {}, {}
    for name, speculate in (("speculative", Speculation()), ("plain", None)):
        stats, texts = DecodeStats(), ["", "", ""]
        started = time.perf_counter()
        for index, piece in stream(model_c, tokenizer, prompts, args.tokens, Sampling(0.8, None, 0.95), 0,
                                   greedy=[True, False, False], speculate=speculate, stats=stats):
            texts[index] += piece
        spec[name], spec_stats[name] = (time.perf_counter() - started, texts), stats

    result = {
        "preset": args.preset,
        "config": config,
        "threads": threads,
        "new_tokens": args.tokens,
        "kv_cache_tokens_per_s": round(cached_rate, 1),
        "naive_tokens_per_s": round(naive_rate, 1),
        "speedup": round(cached_rate / naive_rate, 2),
        "identical_until_window_full": same_prefix,
        "candidates_n3_kv_s": round(timings[True], 3),
        "candidates_n3_naive_s": round(timings[False], 3),
        "candidates_speedup": round(timings[False] / timings[True], 2),
        "cached_step_ms_lean": round(lean, 3),
        "cached_step_ms_module_by_module": round(generic, 3),
        "lean_step_ratio": round(lean / generic, 3),
        "kv_cache_bf16_weights_tokens_per_s": round(bf16_rate, 1),
        "bf16_to_fp32_ratio": round(bf16_rate / cached_rate, 2),
        "speculative_n3_s": round(spec["speculative"][0], 3),
        "plain_n3_s": round(spec["plain"][0], 3),
        "speculative_speedup": round(spec["plain"][0] / spec["speculative"][0], 2),
        "speculative_same_text": spec["speculative"][1] == spec["plain"][1],
        "speculative_decode": spec_stats["speculative"].as_dict(),
        "goal": ">= 5x",
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.preset} preset, {args.tokens} new tokens, {threads} thread(s)")
        print(f"KV cache : {cached_rate:8.1f} tokens/s")
        print(f"naive    : {naive_rate:8.1f} tokens/s")
        print(f"speedup  : {cached_rate / naive_rate:.2f}x (goal >= 5x); identical until the window is full: {same_prefix}")
        print(f"3 candidates x {args.tokens} tokens: {timings[True]:.2f} s with the cache, {timings[False]:.2f} s without "
              f"({timings[False] / timings[True]:.2f}x)")
        print(f"cached step: lean path {lean:.2f} ms, module-by-module {generic:.2f} ms ({lean / generic:.2f}x)")
        print(f"KV cache with bf16 weights: {bf16_rate:.1f} tokens/s ({bf16_rate / cached_rate:.2f}x fp32)")
        d = spec_stats["speculative"]
        print(f"3 candidates within the block, speculative {spec['speculative'][0]:.2f} s vs plain {spec['plain'][0]:.2f} s "
              f"({spec['plain'][0] / spec['speculative'][0]:.2f}x), same text: {spec['speculative'][1] == spec['plain'][1]}; "
              f"drafts kept {d.acceptance or 0:.0%}, greedy row {d.greedy_tokens_per_pass or 0:.2f} tokens a pass")


if __name__ == "__main__":
    main()
