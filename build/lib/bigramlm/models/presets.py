"""Named GPT sizes, in a module without torch so that the CLI's ``--help`` stays instant."""

from __future__ import annotations

from typing import Any

from bigramlm.errors import BigramLMError

#: ``cpu`` is the default of ``--model gpt`` on a small CPU (see
#: ``training.recipes.GPT_TRAIN_DEFAULTS``); ``baby`` is the lecture's final model.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"n_layer": 2, "n_head": 2, "n_embd": 64, "block_size": 32, "dropout": 0.0},
    "cpu": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "dropout": 0.0},
    "small": {"n_layer": 6, "n_head": 4, "n_embd": 256, "block_size": 128, "dropout": 0.1},
    "baby": {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256, "dropout": 0.2},
}


def preset(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise BigramLMError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})", param="preset")
    return dict(PRESETS[name])
