"""Models: every model behind the ``LanguageModel`` interface, and their registry.

``registry`` builds a model from its name and config dict (what ``config.json``
stores); ``bigram`` and ``gpt`` are the models, ``presets`` the GPT's named sizes.

The names below load on first use, like ``import bigramlm``'s: ``models.presets`` is
torch-free so that ``bigramlm train --help`` lists the presets without waiting for
torch (1.7 s on quiet cores, 11-15 s on busy ones), and importing it runs this file.
"""

from __future__ import annotations

from bigramlm._lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)

__all__ = sorted(_PUBLIC)
