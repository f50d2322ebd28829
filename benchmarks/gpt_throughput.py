"""Training throughput of the GPT on this CPU, as tokens/s and as a fraction of the
CPU's matmul peak, which this benchmark measures itself (fp32 and bf16 GEMM).

    python benchmarks/gpt_throughput.py [--steps 40] [--json]

Two training configurations run in the same process, alternating, so that a busy
machine slows both alike:
  - ours: the ``--model gpt`` default recipe (cpu preset, batch 16 x 64, bf16 autocast
    where the CPU has AMX, the thread policy of ``bigramlm.training.threads``);
  - reference: the same model in plain fp32, batch 12 x 64, torch's default threads
    (nanoGPT's CPU recipe settings).
Model FLOPs per token follow the usual count: 6 x (non-embedding parameters + head)
plus 12 x layers x block x width for attention (forward + backward).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time

import torch

from bigramlm.data.batching import get_batch
from bigramlm.models import build_model
from bigramlm.models.presets import preset
from bigramlm.training.threads import DEFAULT_THREADS, configure_cpu_threads
from bigramlm.training import GPT_TRAIN_DEFAULTS, TrainConfig
from bigramlm.training.amp import cpu_has_fast_bf16
from bigramlm.training.optim import make_optimizer


def matmul_peak(dtype: torch.dtype, threads: int, n: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s of an n x n x n GEMM (best of repeats: the machine's capability)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - started) / 1e9)
    return best


def flops_per_token(model: torch.nn.Module) -> float:
    c = model.config
    params = sum(p.numel() for p in model.parameters()) - model.pos_emb.weight.numel()
    # the tied embedding matrix is used as the head (a real matmul); its lookup is free
    return 6 * params + 12 * c.n_layer * c.block_size * c.n_embd


class Trainer:
    def __init__(self, batch: int, amp: bool, threads: int | None):
        torch.manual_seed(0)
        self.model = build_model("gpt", {**preset("cpu"), "vocab_size": 65})
        self.threads = threads
        self.batch, self.amp = batch, amp
        cfg = TrainConfig(**{k: v for k, v in GPT_TRAIN_DEFAULTS.items() if k != "amp"})
        self.optimizer = make_optimizer(self.model, cfg)
        self.data = torch.randint(65, (200_000,))
        self.generator = torch.Generator().manual_seed(0)

    def steps(self, n: int) -> float:
        if self.threads is None:
            configure_cpu_threads(self.model)
        else:
            torch.set_num_threads(self.threads)
        ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if self.amp else contextlib.nullcontext
        started = time.perf_counter()
        for _ in range(n):
            x, y = get_batch(self.data, self.batch, 64, self.generator)
            with ctx():
                _, loss = self.model(x, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
        return n * self.batch * 64 / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description="GPT training throughput and matmul-peak fraction")
    parser.add_argument("--steps", type=int, default=40, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    peak_fp32 = matmul_peak(torch.float32, DEFAULT_THREADS)
    peak_bf16 = matmul_peak(torch.bfloat16, DEFAULT_THREADS)
    amp = cpu_has_fast_bf16()
    ours = Trainer(GPT_TRAIN_DEFAULTS["batch_size"], amp, None)
    ref = Trainer(12, False, DEFAULT_THREADS)
    ours.steps(5), ref.steps(5)  # warm-up
    ours_rates, ref_rates = [], []
    for _ in range(args.rounds):
        ours_rates.append(ours.steps(args.steps))
        ref_rates.append(ref.steps(args.steps))
    fpt = flops_per_token(ours.model)
    o, r = statistics.median(ours_rates), statistics.median(ref_rates)
    result = {
        "matmul_peak_gflops_fp32": round(peak_fp32, 1),
        "matmul_peak_gflops_bf16": round(peak_bf16, 1),
        "model_flops_per_token": fpt,
        "ours": {"batch": ours.batch, "bf16": amp, "threads": None,
                 "tokens_per_s": round(o), "gflops": round(o * fpt / 1e9, 1),
                 "fraction_of_fp32_peak": round(o * fpt / 1e9 / peak_fp32, 3)},
        "reference_fp32_b12": {"tokens_per_s": round(r), "gflops": round(r * fpt / 1e9, 1),
                               "fraction_of_fp32_peak": round(r * fpt / 1e9 / peak_fp32, 3)},
        "speedup": round(o / r, 2),
    }
    configure_cpu_threads(ours.model)
    result["ours"]["threads"] = torch.get_num_threads()
    if args.json:
        print(json.dumps(result))
    else:
        print(f"matmul peak ({DEFAULT_THREADS} threads): fp32 {peak_fp32:.0f} GFLOP/s, bf16 {peak_bf16:.0f} GFLOP/s")
        print(f"model: {fpt / 1e6:.2f} MFLOP per training token (cpu preset)")
        print(f"ours (batch {ours.batch}, bf16={amp}, {result['ours']['threads']} thread(s)): {o:,.0f} tokens/s = "
              f"{o * fpt / 1e9:.1f} GFLOP/s = {o * fpt / 1e9 / peak_fp32:.1%} of fp32 peak")
        print(f"reference (fp32, batch 12, {DEFAULT_THREADS} threads): {r:,.0f} tokens/s = {r * fpt / 1e9 / peak_fp32:.1%} of fp32 peak")
        print(f"speedup: {o / r:.2f}x")


if __name__ == "__main__":
    main()
