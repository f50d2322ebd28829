"""Reading and writing ``config.json`` (the typed ``RunConfig`` of ``bigramlm.config``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bigramlm._fs import atomic_write_text
from bigramlm.checkpoint.layout import CONFIG
from bigramlm.config import RunConfig
from bigramlm.errors import BigramLMError


def write_config(run_dir: Path, config: RunConfig) -> None:
    atomic_write_text(Path(run_dir) / CONFIG, json.dumps(config.to_dict(), indent=2, ensure_ascii=False))


def read_config(run_dir: str | os.PathLike[str]) -> RunConfig:
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise BigramLMError(f"no such run directory: {run_dir}")
    if not run_dir.is_dir():
        raise BigramLMError(f"{run_dir} is not a run directory")
    path = run_dir / CONFIG
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BigramLMError(f"{run_dir} has no {CONFIG}; is it a bigramlm run directory?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BigramLMError(f"corrupt {path}: {exc}") from None
    return RunConfig.from_dict(raw, str(path))
