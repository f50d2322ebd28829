"""What makes GPT training fast on this CPU: each switch measured against its baseline
in the same run (ms per training step of the ``cpu`` preset, batch x 64 tokens).

    python benchmarks/gpt_cpu_tuning.py [--steps 20] [--no-compile] [--json]

Rows (the first of each group is the baseline the others are compared with):
  threads x precision  1 or 2 intra-op threads, fp32 or bf16 autocast (AMX);
  attention            SDPA flash in fp32 vs bf16 vs the math kernel vs hand-written;
  GELU                 exact (erf) vs tanh approximation;
  optimizer            LeanAdamW (what the trainer runs on CPU) vs torch's AdamW loop
                       (its CPU default), foreach and fused;
  torch.compile        compile time and step time;
  batch shape          tokens/s at batch 8, 12, 16, 32;
  data loading         one get_batch gather against one training step.
Timings are medians over interleaved rounds, so a busy machine slows every row alike.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F

from bigramlm.data.batching import get_batch
from bigramlm.models import build_model
from bigramlm.models.presets import preset
from bigramlm.training.optim import LeanAdamW

T = 64


def make_step(batch: int, threads: int, amp: bool, optimizer: str = "lean", compile: bool = False,
              gelu: str = "none") -> tuple[Callable[[], None], float]:
    torch.manual_seed(0)
    model = build_model("gpt", {**preset("cpu"), "vocab_size": 65})
    if gelu == "tanh":
        for block in model.blocks:
            mlp = block.mlp
            mlp.forward = (lambda m: (lambda x: m.dropout(m.proj(F.gelu(m.fc(x), approximate="tanh")))))(mlp)
    if optimizer == "lean":
        opt = LeanAdamW(model.optimizer_groups(0.1), lr=1e-3, betas=(0.9, 0.99))
    else:
        kwargs = {"foreach": {"foreach": True}, "fused": {"fused": True}, "loop": {"foreach": False}}[optimizer]
        opt = torch.optim.AdamW(model.optimizer_groups(0.1), lr=1e-3, betas=(0.9, 0.99), **kwargs)
    fn = model
    compile_s = 0.0
    data = torch.randint(65, (200_000,))
    gen = torch.Generator().manual_seed(0)
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if amp else contextlib.nullcontext

    def step() -> None:
        if torch.get_num_threads() != threads:  # re-creating the thread pool is not free
            torch.set_num_threads(threads)
        x, y = get_batch(data, batch, T, gen)
        with ctx():
            _, loss = fn(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    if compile:
        fn = torch.compile(model)
        started = time.perf_counter()
        step()
        step()
        compile_s = time.perf_counter() - started
    return step, compile_s


def time_rows(rows: dict[str, Callable[[], None]], steps: int, rounds: int) -> dict[str, float]:
    for step in rows.values():
        for _ in range(3):
            step()
    samples: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(rounds):
        for name, step in rows.items():
            started = time.perf_counter()
            for _ in range(steps):
                step()
            samples[name].append((time.perf_counter() - started) / steps * 1e3)
    return {name: statistics.median(v) for name, v in samples.items()}


def attention_rows(batch: int, threads: int, repeats: int = 30) -> dict[str, float]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.set_num_threads(threads)
    c = preset("cpu")
    heads, dim = c["n_head"], c["n_embd"] // c["n_head"]
    mask = torch.ones(T, T, dtype=torch.bool).tril()

    def flash(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def math_kernel(q, k, v):
        with sdpa_kernel(SDPBackend.MATH):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def manual(q, k, v):
        att = (q @ k.transpose(-1, -2)) * dim**-0.5
        return att.masked_fill(~mask, float("-inf")).softmax(-1) @ v

    out = {}
    for name, fn, dtype in [("flash fp32", flash, torch.float32), ("flash bf16", flash, torch.bfloat16),
                            ("math bf16", math_kernel, torch.bfloat16), ("manual bf16", manual, torch.bfloat16)]:
        q, k, v = (torch.randn(batch, heads, T, dim, dtype=dtype, requires_grad=True) for _ in range(3))
        grad = torch.randn(batch, heads, T, dim, dtype=dtype)
        for _ in range(3):
            fn(q, k, v).backward(grad)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            fn(q, k, v).backward(grad)
            times.append(time.perf_counter() - started)
        out[name] = statistics.median(times) * 1e3
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="GPT CPU tuning measurements")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    b = args.batch
    groups: dict[str, dict[str, float]] = {}

    groups["threads x precision (ms/step)"] = time_rows({
        "1 thread fp32": make_step(b, 1, False)[0],
        "2 threads fp32": make_step(b, 2, False)[0],
        "1 thread bf16": make_step(b, 1, True)[0],
        "2 threads bf16": make_step(b, 2, True)[0],
    }, args.steps, args.rounds)
    groups["attention fwd+bwd per layer (ms), 1 thread"] = attention_rows(b, 1)
    groups["GELU (ms/step, 1 thread bf16)"] = time_rows({
        "erf": make_step(b, 1, True)[0], "tanh": make_step(b, 1, True, gelu="tanh")[0]}, args.steps, args.rounds)
    groups["AdamW (ms/step, 1 thread bf16)"] = time_rows({
        "LeanAdamW": make_step(b, 1, True)[0], "torch loop": make_step(b, 1, True, optimizer="loop")[0],
        "torch foreach": make_step(b, 1, True, optimizer="foreach")[0],
        "torch fused": make_step(b, 1, True, optimizer="fused")[0]}, args.steps, args.rounds)
    if not args.no_compile:
        compiled, compile_s = make_step(b, 1, True, compile=True)
        rows = time_rows({"eager": make_step(b, 1, True)[0], "compiled": compiled}, args.steps, args.rounds)
        rows["compile time (s)"] = compile_s
        groups["torch.compile (ms/step, 1 thread bf16)"] = rows
    shapes = time_rows({f"batch {n}": make_step(n, 1, True)[0] for n in (8, 12, 16, 32)}, args.steps, args.rounds)
    groups["batch shape (tokens/s, 1 thread bf16)"] = {k: int(k.split()[1]) * T / (v / 1e3) for k, v in shapes.items()}
    data = torch.randint(65, (1_000_000,))
    gen = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    for _ in range(1000):
        get_batch(data, b, T, gen)
    groups["data loading (ms)"] = {"get_batch": (time.perf_counter() - started), "one training step": groups["threads x precision (ms/step)"]["1 thread bf16"]}

    if args.json:
        print(json.dumps({k: {n: round(v, 3) for n, v in rows.items()} for k, rows in groups.items()}))
        return
    for title, rows in groups.items():
        print(title)
        base = next(iter(rows.values()))
        for name, value in rows.items():
            print(f"  {name:22s} {value:12.3f}   ratio to first {value / base:6.2f}")


if __name__ == "__main__":
    main()
