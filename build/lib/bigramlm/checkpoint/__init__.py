"""The run directory: its typed ``config.json``, safetensors weights, resume checkpoints,
and ``load_run``, which gives back everything eval, sample and the assistant need."""

from bigramlm.checkpoint.config import read_config, write_config
from bigramlm.checkpoint.layout import CONFIG, EVAL, LOSS_PLOT, METRICS, RESUME, TOKENIZER, WEIGHTS
from bigramlm.config import ModelSpec, RunConfig, TokenizerSpec
from bigramlm.checkpoint.run import Run, check_tokenizer_matches, load_run, save_run_files
from bigramlm.checkpoint.weights import save_weights, unwrap

__all__ = [
    "CONFIG",
    "EVAL",
    "LOSS_PLOT",
    "METRICS",
    "ModelSpec",
    "RESUME",
    "Run",
    "RunConfig",
    "TOKENIZER",
    "TokenizerSpec",
    "WEIGHTS",
    "check_tokenizer_matches",
    "load_run",
    "read_config",
    "save_run_files",
    "save_weights",
    "unwrap",
    "write_config",
]
