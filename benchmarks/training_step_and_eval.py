"""Training step and evaluation.

Steps: steps/s of bigramlm's real training loop (``bigramlm.training.train``, timed
between its first and last step through ``on_step``, so batching, the optimizer,
logging and the EMA are all in) against the notebook's loop (Python-loop batches,
``torch.optim.AdamW``; timed with torch's default threads and with 1, keeping the
faster, so a busy machine does not flatter the ratio), both at batch 32 x block 8.

Evaluation: the exact loss over the whole val split (every one of its 111,539 targets,
non-overlapping windows) against the notebook-style estimate (200 random batches of
32 x 8 = 51,200 targets, drawn with replacement). Both times and both losses are reported.

    .venv/bin/python benchmarks/training_step_and_eval.py [--json] [--steps 2000]
"""

from __future__ import annotations

import statistics
import tempfile
import time

import torch

from _common import parser, report, shakespeare_path
from bigramlm.data import load_data
from bigramlm.evaluation import evaluate_ids
from bigramlm.models import build_model
from bigramlm.tokenization import CharTokenizer
from bigramlm.training import TrainConfig, train


def notebook_steps_per_s(train_ids: torch.Tensor, vocab: int, steps: int) -> float:
    # The notebook's training cell: batches by a Python loop + torch.stack, AdamW lr 1e-3.
    torch.manual_seed(1337)
    model = build_model("bigram", {"vocab_size": vocab, "block_size": 8})
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def batch():
        ix = torch.randint(len(train_ids) - 8, (32,))
        return torch.stack([train_ids[i : i + 8] for i in ix]), torch.stack([train_ids[i + 1 : i + 9] for i in ix])

    for _ in range(20):  # warm-up, like ours (its first step is excluded below)
        x, y = batch()
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    start = time.perf_counter()
    for _ in range(steps):
        x, y = batch()
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()  # the notebook reads the loss to print it
    return steps / (time.perf_counter() - start)


def our_steps_per_s(data, steps: int) -> float:
    marks: dict[int, float] = {}

    def on_step(step: int, loss: float) -> None:
        if step in (20, steps + 20):
            marks[step] = time.perf_counter()

    config = TrainConfig(steps=steps + 20, eval_every=10**9, checkpoint_every=10**9)
    with tempfile.TemporaryDirectory() as tmp:
        train(data, tmp, config=config, progress=False, on_step=on_step)
    return steps / (marks[steps + 20] - marks[20])


def notebook_estimate(model, val_ids: torch.Tensor, iters: int = 200) -> float:
    losses = torch.zeros(iters)
    with torch.no_grad():
        for k in range(iters):
            ix = torch.randint(len(val_ids) - 8, (32,))
            x = torch.stack([val_ids[i : i + 8] for i in ix])
            y = torch.stack([val_ids[i + 1 : i + 9] for i in ix])
            _, loss = model(x, y)
            losses[k] = loss.item()
    return losses.mean().item()


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--steps", type=int, default=2000, help="timed steps per measurement")
    args = p.parse_args()
    data = load_data(str(shakespeare_path()))
    tok = CharTokenizer.from_text(data.vocab_text)
    train_ids = torch.from_numpy(tok.encode(data.train_text))
    val_ids = torch.from_numpy(tok.encode(data.val_text))
    default_threads = torch.get_num_threads()

    ref_rates, our_rates = [], []
    for _ in range(max(1, args.repeats // 2)):  # interleaved
        best = 0.0
        for threads in sorted({default_threads, 1}):
            torch.set_num_threads(threads)
            best = max(best, notebook_steps_per_s(train_ids, tok.vocab_size, args.steps))
        ref_rates.append(best)
        our_rates.append(our_steps_per_s(data, args.steps))  # sets its own thread policy
    ref_rate, our_rate = statistics.median(ref_rates), statistics.median(our_rates)

    # Evaluation, on a counts-fitted model (any model would do; this one is meaningful).
    from bigramlm.training.counts import fit_counts

    torch.set_num_threads(1)
    model = build_model("bigram", {"vocab_size": tok.vocab_size, "block_size": 8})
    model.load_log_probs(fit_counts(train_ids, tok.vocab_size))
    exact_times, est_times, estimates = [], [], []
    exact = None
    for seed in range(max(1, args.repeats)):
        t = time.perf_counter()
        exact = evaluate_ids(model, val_ids, "val").loss
        exact_times.append(time.perf_counter() - t)
        torch.manual_seed(seed)
        t = time.perf_counter()
        estimates.append(notebook_estimate(model, val_ids))
        est_times.append(time.perf_counter() - t)
    t_exact, t_est = statistics.median(exact_times), statistics.median(est_times)
    spread = max(estimates) - min(estimates)
    result = {
        "notebook_steps_per_s": round(ref_rate),
        "ours_steps_per_s": round(our_rate),
        "step_speedup": round(our_rate / ref_rate, 2),
        "exact_eval_seconds": round(t_exact, 4),
        "exact_eval_loss": round(exact, 5),
        "exact_eval_targets": len(val_ids) - 1,
        "estimate_200_batches_seconds": round(t_est, 4),
        "estimate_losses": [round(e, 4) for e in estimates],
        "estimate_spread": round(spread, 4),
        "exact_over_estimate_time": round(t_exact / t_est, 3),
    }
    report("training_step_and_eval", result, args.json, [
        f"training step (batch 32 x block 8): notebook loop {ref_rate:,.0f} steps/s (best of {default_threads} and 1 threads), "
        f"bigramlm train loop {our_rate:,.0f} steps/s -> {our_rate / ref_rate:.1f}x",
        f"exact val eval ({len(val_ids) - 1:,} targets): {t_exact * 1000:.1f} ms, loss {exact:.4f}",
        f"notebook 200-batch estimate (51,200 random targets): {t_est * 1000:.1f} ms, "
        f"losses {min(estimates):.4f}..{max(estimates):.4f} over {len(estimates)} seeds",
        f"exact eval takes {t_exact / t_est:.2f}x the estimate's time, with no sampling noise",
    ])


if __name__ == "__main__":
    main()
