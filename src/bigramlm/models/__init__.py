"""Model registry. Every model shares makemore's small interface:

``forward(idx, targets=None) -> (logits, loss)`` with logits of shape (B, T, V), and
``get_block_size()``; so training, evaluation, sampling and the assistant work for any
of them. A model is built from its name and a config dict, which is what
``config.json`` stores.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch.nn as nn

from ..errors import BigramLMError
from .bigram import BigramConfig, BigramLanguageModel

MODELS: dict[str, tuple[type, type]] = {
    "bigram": (BigramConfig, BigramLanguageModel),
}


def register_model(name: str, config_cls: type, model_cls: type) -> None:
    MODELS[name] = (config_cls, model_cls)


def _load_optional_models() -> None:
    # The GPT lives in its own module; importing it registers it.
    try:
        from . import gpt  # noqa: F401
    except ImportError:
        pass


def model_names() -> list[str]:
    _load_optional_models()
    return sorted(MODELS)


def build_model(name: str, config: dict[str, Any]) -> nn.Module:
    _load_optional_models()
    if name not in MODELS:
        raise BigramLMError(f"unknown model {name!r} (known: {', '.join(sorted(MODELS))})")
    config_cls, model_cls = MODELS[name]
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(config) - fields
    if unknown:
        raise BigramLMError(f"unknown {name} config keys: {', '.join(sorted(unknown))}")
    return model_cls(config_cls(**config))


def model_config_dict(model: nn.Module) -> dict[str, Any]:
    return dataclasses.asdict(model.config)


__all__ = ["BigramConfig", "BigramLanguageModel", "build_model", "model_config_dict", "model_names", "register_model"]
