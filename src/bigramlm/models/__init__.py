"""Models: every model behind the ``LanguageModel`` interface, and their registry.

``registry`` builds a model from its name and config dict (what ``config.json``
stores); ``bigram`` and ``gpt`` are the models, ``presets`` the GPT's named sizes.

The names below load on first use, like ``import bigramlm``'s: ``models.presets`` is
torch-free so that ``bigramlm train --help`` lists the presets without waiting for
torch (1.7 s on quiet cores, 11-15 s on busy ones), and importing it runs this file.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: Public name -> the module that defines it.
_PUBLIC = {
    "BigramConfig": "bigramlm.models.bigram",
    "BigramLanguageModel": "bigramlm.models.bigram",
    "GPT": "bigramlm.models.gpt",
    "GPTConfig": "bigramlm.models.gpt",
    "LanguageModel": "bigramlm.models.base",
    "MODELS": "bigramlm.models.registry",
    "build_model": "bigramlm.models.registry",
    "model_config_dict": "bigramlm.models.registry",
    "model_names": "bigramlm.models.registry",
    "register_model": "bigramlm.models.registry",
}


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(import_module(_PUBLIC[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'bigramlm.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


__all__ = sorted(_PUBLIC)
