"""Shared decodes (generation.batcher): requests that run at the same time share their
passes, joining a running batch between passes, and each decodes exactly what it would
decode alone; a request that goes away leaves without disturbing the others."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import replace

import pytest
import torch

from bigramlm.generation import Sampling, encode_prompt, generate, stream
from bigramlm.generation.batcher import DecodeJob, DecodeQueue
from bigramlm.generation.speculation import DecodeStats, Speculation
from bigramlm.models.registry import build_model
from bigramlm.tokenization.char import CharTokenizer

from conftest import REPLY

SAMPLED = Sampling(temperature=0.9, top_p=0.95)


def _jobs(tokenizer: CharTokenizer, count: int, sampling: Sampling = SAMPLED, n: int = 3) -> list[DecodeJob]:
    """Jobs like the desk's: ``n`` rows of one prompt, the first greedy, each with its seed."""
    rng = random.Random(1)
    text = (REPLY + " ") * 2
    jobs = []
    for i in range(count):
        start = rng.randrange(60)
        prompt = encode_prompt(tokenizer, text[start : start + rng.randrange(2, 40)])
        sources = [encode_prompt(tokenizer, REPLY)]
        jobs.append(DecodeJob([prompt] * n, rng.randrange(20, 70), sampling, seed=100 + i, stop=("\n",),
                              greedy=[True] + [False] * (n - 1), sources=[sources] * n))
    return jobs


def _alone(model, tokenizer, job: DecodeJob) -> list[str]:
    texts = [""] * len(job.prompts)
    for index, piece in stream(model, tokenizer, job.prompts, job.max_new_tokens, job.sampling, job.seed, job.stop,
                               greedy=job.greedy, speculate=None, sources=job.sources, watches=job.watches):
        texts[index] += piece
    return texts


def _together(queue: DecodeQueue, jobs: list[DecodeJob]) -> list[list[str] | BaseException]:
    """Each job from its own thread, each one sent once the job before it has its first
    piece (its batch is running), so later ones join a running batch."""
    results: list[list[str] | BaseException] = [[] for _ in jobs]
    streaming = [threading.Event() for _ in jobs]

    def run(i: int) -> None:
        try:
            if i and not streaming[i - 1].wait(30):
                raise TimeoutError(f"job {i - 1} never started decoding")
            texts = [""] * len(jobs[i].prompts)
            for index, piece in queue.stream(jobs[i]):
                streaming[i].set()
                texts[index] += piece
            results[i] = texts
        except BaseException as exc:  # handed to the test
            results[i] = exc
        finally:
            streaming[i].set()  # the next job goes, whatever became of this one

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.mark.parametrize("speculate", [None, Speculation()], ids=["plain", "speculative"])
def test_requests_that_share_a_decode_say_what_they_say_alone(repeating_gpt, speculate) -> None:
    model, tokenizer = repeating_gpt
    jobs = _jobs(tokenizer, 10)
    alone = [_alone(model, tokenizer, job) for job in jobs]
    queue = DecodeQueue(model, tokenizer, speculate)
    assert _together(queue, jobs) == alone
    assert queue.joined > 0, "no request joined a running batch: the test did not test joining"
    assert queue.batches < len(jobs)


def test_greedy_requests_joining_in_any_order_are_plain_decoding() -> None:
    """Prompts of many lengths, a cache that fills and compacts, rows that finish early."""
    tokenizer = CharTokenizer.from_text(REPLY + "abcdefghijklmnopqrstuvwxyz\n")
    torch.manual_seed(3)
    model = build_model("gpt", {"vocab_size": tokenizer.vocab_size, "block_size": 48, "n_layer": 2, "n_head": 2,
                                "n_embd": 16}).eval()
    jobs = _jobs(tokenizer, 12, Sampling(temperature=0), n=2)
    alone = [_alone(model, tokenizer, job) for job in jobs]
    queue = DecodeQueue(model, tokenizer, None)
    assert _together(queue, jobs) == alone
    assert queue.joined > 0


def test_the_bigram_shares_decodes_too() -> None:
    tokenizer = CharTokenizer.from_text(REPLY + "\n")
    torch.manual_seed(0)
    model = build_model("bigram", {"vocab_size": tokenizer.vocab_size}).eval()
    jobs = _jobs(tokenizer, 6)
    alone = [_alone(model, tokenizer, job) for job in jobs]
    assert _together(DecodeQueue(model, tokenizer, None), jobs) == alone


def test_a_request_that_goes_away_leaves_the_others_alone(repeating_gpt) -> None:
    model, tokenizer = repeating_gpt
    jobs = [DecodeJob(j.prompts, 300, j.sampling, j.seed, (), j.greedy, j.sources) for j in _jobs(tokenizer, 3)]
    alone = [_alone(model, tokenizer, job) for job in jobs]
    queue = DecodeQueue(model, tokenizer, None)
    pieces = 0

    def impatient() -> None:
        if pieces >= 5:
            raise TimeoutError("deadline")

    results: list[object] = [None, None]

    def run_other(i: int) -> None:
        texts = [""] * 3
        for index, piece in queue.stream(jobs[i]):
            texts[index] += piece
        results[i - 1] = texts

    threads = [threading.Thread(target=run_other, args=(i,)) for i in (1, 2)]
    for t in threads:
        t.start()
    with pytest.raises(TimeoutError):
        for _ in queue.stream(jobs[0], check=impatient):
            pieces += 1
    for t in threads:
        t.join(60)
    assert results == alone[1:]


def test_different_sampling_waits_for_its_own_batch(repeating_gpt) -> None:
    model, tokenizer = repeating_gpt
    jobs = _jobs(tokenizer, 2) + _jobs(tokenizer, 2, Sampling(temperature=0))
    alone = [_alone(model, tokenizer, job) for job in jobs]
    queue = DecodeQueue(model, tokenizer, None)
    assert _together(queue, jobs) == alone
    assert queue.batches >= 2


def test_stats_say_how_many_requests_shared_the_passes(repeating_gpt) -> None:
    model, tokenizer = repeating_gpt
    job = _jobs(tokenizer, 1)[0]
    stats = DecodeStats()
    queue = DecodeQueue(model, tokenizer, None)
    texts = [""] * 3
    for index, piece in queue.stream(job, stats=stats):
        texts[index] += piece
    assert stats.requests == 1 and stats.passes > 0
    # One character a token; a row that stopped also drew its stop string's "\n".
    shown = sum(len(t) for t in texts)
    assert shown <= stats.tokens <= shown + len(texts)


def test_the_worker_thread_ends_when_idle(repeating_gpt) -> None:
    model, tokenizer = repeating_gpt
    queue = DecodeQueue(model, tokenizer, None, idle_s=0.05)
    list(queue.stream(_jobs(tokenizer, 1)[0]))
    deadline = time.monotonic() + 5
    while queue._worker is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert queue._worker is None
    assert list(queue.stream(_jobs(tokenizer, 1)[0]))  # and starts again


def test_a_failed_decode_reaches_its_requests_and_the_next_request_is_served(repeating_gpt, monkeypatch):
    from bigramlm.generation import batch as batch_module

    model, tokenizer = repeating_gpt
    job = _jobs(tokenizer, 1)[0]
    queue = DecodeQueue(model, tokenizer, None)
    real = batch_module.DecodeBatch.run
    calls = []

    def failing_once(self):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the model broke")
        return real(self)

    monkeypatch.setattr(batch_module.DecodeBatch, "run", failing_once)
    with pytest.raises(RuntimeError, match="the model broke"):
        list(queue.stream(job))
    texts = [""] * 3
    for index, piece in queue.stream(job):
        texts[index] += piece
    assert texts == _alone(model, tokenizer, job)


class _UntilWord:
    """A row's watch (``generation.text.Watch``): the row is done once its text holds ``word``."""

    def __init__(self, word: str):
        self.word, self.text = word, ""

    def __call__(self, piece: str) -> bool:
        self.text += piece
        return self.word in self.text


def _watched(jobs: list[DecodeJob]) -> list[DecodeJob]:
    """The jobs with a fresh watch on every sampled row (the greedy rows run to their end)."""
    return [replace(j, max_new_tokens=120, watches=[(lambda piece: False) if g else _UntilWord("the")
                                                    for g in (j.greedy or [])])
            for j in jobs]


@pytest.mark.parametrize("speculate", [None, Speculation()], ids=["plain", "speculative"])
def test_a_watch_ends_its_row_early_alike_alone_shared_and_not_streamed(repeating_gpt, speculate) -> None:
    model, tokenizer = repeating_gpt
    jobs = _jobs(tokenizer, 6)
    unwatched = [_alone(model, tokenizer, replace(j, max_new_tokens=120)) for j in jobs]
    alone = [_alone(model, tokenizer, j) for j in _watched(jobs)]
    for before, after in zip(unwatched, alone):
        assert after[0] == before[0]  # the unwatched greedy row runs on
        for full, ended in zip(before[1:], after[1:]):
            assert full.startswith(ended) and ("the" not in full or ended.endswith("the"))
    assert any(len(ended) < len(full) for b, a in zip(unwatched, alone) for full, ended in zip(b, a))
    assert _together(DecodeQueue(model, tokenizer, speculate), _watched(jobs)) == alone
    for job, texts in zip(_watched(jobs), alone):
        assert generate(model, tokenizer, job.prompts, job.max_new_tokens, job.sampling, job.seed, job.stop,
                        greedy=job.greedy, speculate=speculate, sources=job.sources, watches=job.watches) == texts
