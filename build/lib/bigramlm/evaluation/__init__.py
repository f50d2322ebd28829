"""Evaluation of language models: exact loss over whole splits, and exact
log-likelihoods of continuations (what the assistant scores and ranks with)."""

from bigramlm.evaluation.lm import EvalResult, evaluate_ids, summarize, total_nats
from bigramlm.evaluation.scoring import continuation_logprob_sums, continuation_logprobs

__all__ = ["EvalResult", "continuation_logprob_sums", "continuation_logprobs", "evaluate_ids", "summarize", "total_nats"]
