"""The one entry a caller with many requests decodes through: ``Decodes``.

A caller hands it plain prompts (a ``DecodeJob``) and gets ``(row, piece)`` pieces
(``stream``) or whole texts (``generate``). It decides where the decode runs: in the
decode shared by the requests of the same moment (``batcher.DecodeQueue``, the desk), or
in the caller's own thread (``engine.stream`` / ``engine.generate``), which a job larger
than one shared batch (a whole evaluation split) always takes. A request decodes the same
text either way (``tests/test_batcher.py``).
"""

from __future__ import annotations

from typing import Callable, Iterator

from bigramlm.generation.batch import Sampling, speculates
from bigramlm.generation.batcher import DecodeJob, DecodeQueue
from bigramlm.generation.engine import generate, stream
from bigramlm.generation.speculation import DecodeStats, Speculation
from bigramlm.models.base import LanguageModel
from bigramlm.tokenization import Tokenizer


class Decodes:
    """One model's decodes: shared between concurrent requests (``share``), else each in its caller's thread."""

    def __init__(self, model: LanguageModel, tokenizer: Tokenizer, speculate: Speculation | None, rows_per_batch: int,
                 share: bool = False):
        self.model, self.tokenizer, self.rows_per_batch = model, tokenizer, rows_per_batch
        #: The shared decode (``share``); None decodes every job in its caller's thread.
        self.queue = DecodeQueue(model, tokenizer, speculate, rows_per_batch) if share else None
        self._speculate = speculate

    @property
    def speculate(self) -> Speculation | None:
        """How every decode drafts (None: one token per pass); setting it changes the shared decode's too."""
        return self._speculate

    @speculate.setter
    def speculate(self, value: Speculation | None) -> None:
        self._speculate = value
        if self.queue is not None:
            self.queue.speculate = value

    def busy(self) -> bool:
        """Whether the shared decode has requests in hand now (never where each caller decodes in its own thread)."""
        return self.queue is not None and self.queue.requests > 0

    def drafts(self, rows: int) -> bool:
        """Whether a job of ``rows`` rows will draft (so its ``sources`` are worth making)."""
        return self.speculate is not None and speculates(min(rows, self.rows_per_batch))

    def stream(self, job: DecodeJob, check: Callable[[], None] | None = None,
               stats: DecodeStats | None = None) -> Iterator[tuple[int, str]]:
        """``(row, piece)`` as the job's rows grow; none for a job of no prompt.
        ``check`` runs between steps (what it raises ends the job); ``stats`` is filled in."""
        if not job.prompts:
            return iter(())
        if self.queue is not None:
            return self.queue.stream(job, check, stats)
        return stream(self.model, self.tokenizer, job.prompts, job.max_new_tokens, job.sampling, job.seed, job.stop,
                      greedy=job.greedy, rows_per_batch=self.rows_per_batch, check=check, speculate=self.speculate,
                      sources=job.sources, stats=stats, watches=job.watches)

    def generate(self, job: DecodeJob, check: Callable[[], None] | None = None, stats: DecodeStats | None = None,
                 on_progress: Callable[[int], None] | None = None) -> list[str]:
        """Each prompt's text: through the shared decode when the job fits one batch, else here
        (``on_progress`` hears of rows done then)."""
        if not job.prompts:
            return []
        if self.queue is not None and len(job.prompts) <= self.rows_per_batch:
            texts = [""] * len(job.prompts)
            for row, piece in self.queue.stream(job, check, stats):
                texts[row] += piece
            return texts
        return generate(self.model, self.tokenizer, job.prompts, job.max_new_tokens, job.sampling, job.seed, job.stop,
                        greedy=job.greedy, rows_per_batch=self.rows_per_batch, check=check, on_progress=on_progress,
                        speculate=self.speculate, sources=job.sources, stats=stats, watches=job.watches)


#: What a caller of the entry needs besides it: the job, how it samples, drafts and reports.
__all__ = ["DecodeJob", "DecodeStats", "Decodes", "Sampling", "Speculation"]
