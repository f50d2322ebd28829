"""Generation: one sampling path for one or many candidates, over the fastest decoder
a model supports (Markov table, KV cache, or re-run window)."""

from bigramlm.generation.batch import generate_batch
from bigramlm.generation.decoding import CachedDecoder, make_decoder
from bigramlm.generation.filters import MAX_NEW_TOKENS, check_new_tokens, check_sampling, filter_logits
from bigramlm.generation.generate import StopScanner, generate_candidates, generate_ids, generate_text, sample_tokens
from bigramlm.generation.markov import MarkovChainSampler

__all__ = [
    "CachedDecoder",
    "MAX_NEW_TOKENS",
    "MarkovChainSampler",
    "StopScanner",
    "check_new_tokens",
    "check_sampling",
    "filter_logits",
    "generate_batch",
    "generate_candidates",
    "generate_ids",
    "generate_text",
    "make_decoder",
    "sample_tokens",
]
