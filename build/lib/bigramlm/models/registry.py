"""The explicit registry of every model behind the ``LanguageModel`` interface.

A model is built from its name and a config dict, which is what ``config.json``
stores. A new model is a module with a config dataclass and a ``LanguageModel``
subclass, plus one line in ``MODELS``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bigramlm.errors import BigramLMError
from bigramlm.models.base import LanguageModel
from bigramlm.models.bigram import BigramConfig, BigramLanguageModel
from bigramlm.models.gpt import GPT, GPTConfig

MODELS: dict[str, tuple[type, type[LanguageModel]]] = {
    "bigram": (BigramConfig, BigramLanguageModel),
    "gpt": (GPTConfig, GPT),
}


def register_model(name: str, config_cls: type, model_cls: type[LanguageModel]) -> None:
    """Add a model at run time (notebooks, tests); the built-in ones are listed above."""
    MODELS[name] = (config_cls, model_cls)


def model_names() -> list[str]:
    return sorted(MODELS)


def build_model(name: str, config: dict[str, Any]) -> LanguageModel:
    if name not in MODELS:
        raise BigramLMError(f"unknown model {name!r} (known: {', '.join(sorted(MODELS))})", param="model")
    if not isinstance(config, dict):
        raise BigramLMError(f"the {name} config must be a mapping of settings (got {type(config).__name__})")
    config_cls, model_cls = MODELS[name]
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(config) - fields
    if unknown:
        raise BigramLMError(f"unknown {name} config keys: {', '.join(sorted(unknown))}")
    try:
        return model_cls(config_cls(**config))
    except TypeError as exc:  # a required key is missing or a value has the wrong type
        raise BigramLMError(f"bad {name} config: {exc}") from None


def model_config_dict(model: LanguageModel) -> dict[str, Any]:
    return dataclasses.asdict(model.config)

