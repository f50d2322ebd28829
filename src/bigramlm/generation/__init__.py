"""Generation: one decode path for one or many prompts and candidates, streamed or not,
over the fastest decoder a model supports (Markov table, KV cache, or re-run window);
``batcher`` shares that decode between the requests of a server that run at the same time,
and ``entry.Decodes`` is the one entry that chooses between the two for a caller.

``checks`` (the bounds of the settings) is torch-free, so that the CLI can check its
flags before it loads a model; the names below load on first use, as ``bigramlm``'s do.
"""

from __future__ import annotations

from bigramlm._lazy import lazy_exports

#: Public name -> the module that defines it.
_PUBLIC = {
    "CachedDecoder": "bigramlm.generation.decoding",
    "DecodeJob": "bigramlm.generation.batcher",
    "DecodeQueue": "bigramlm.generation.batcher",
    "Decodes": "bigramlm.generation.entry",
    "MAX_NEW_TOKENS": "bigramlm.generation.checks",
    "MAX_SEED": "bigramlm.generation.checks",
    "MarkovChainSampler": "bigramlm.generation.markov",
    "Detokenizer": "bigramlm.generation.text",
    "Sampling": "bigramlm.generation.batch",
    "StopScanner": "bigramlm.generation.text",
    "check_new_tokens": "bigramlm.generation.checks",
    "check_sampling": "bigramlm.generation.checks",
    "check_seed": "bigramlm.generation.checks",
    "filter_logits": "bigramlm.generation.filters",
    "encode_prompt": "bigramlm.generation.engine",
    "generate": "bigramlm.generation.engine",
    "generate_ids": "bigramlm.generation.engine",
    "generate_text": "bigramlm.generation.engine",
    "make_decoder": "bigramlm.generation.decoding",
    "stream": "bigramlm.generation.engine",
}


__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)

__all__ = sorted(_PUBLIC)
