"""The typed records that describe a run, as ``config.json`` stores them.

``TrainConfig`` says how a model is fitted, ``RunConfig`` what a run is: its model,
training, data, tokenizer. Training writes them, everything that loads a run reads
them; so they sit at the bottom of the package, and import neither torch nor anything
above them (``bigramlm --help`` stays instant).

Files written by earlier versions load too: sections they lack get their defaults, and
keys this version does not know are kept as they were.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from bigramlm import __version__
from bigramlm.errors import BigramLMError

#: Bounds that reject absurd values at the edge, before any memory is allocated: a
#: batch of more than 4 M tokens, or more steps than a run could ever take.
MAX_STEPS = 1_000_000_000
MAX_BATCH_TOKENS = 1 << 22
MAX_BLOCK_SIZE = 1 << 16
MAX_VOCAB_SIZE = 1 << 20
MIN_BPE_VOCAB = 257
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|mps)$")


@dataclass
class TrainConfig:
    """How to fit a model. Defaults are the notebook's: lr 1e-3, batch 32, block 8, 10k steps."""

    method: str = "sgd"  # "sgd" or "counts"
    steps: int = 10_000  # with time_limit: an upper bound
    learning_rate: float = 1e-3
    batch_size: int = 32  # windows per micro-batch, per rank
    block_size: int = 8
    weight_decay: float = 0.01  # torch's AdamW default, which the notebook uses
    seed: int = 1337
    eval_every: int = 1000
    checkpoint_every: int = 1000
    log_every: int = 10
    alpha: float = 1.0  # additive smoothing of the counts fit
    ema_decay: float = 0.98  # smoothing of the displayed train loss
    device: str = "cpu"
    beta1: float = 0.9
    beta2: float = 0.999  # torch's default, as the notebook
    grad_clip: float = 0.0  # max global gradient norm; 0 disables clipping
    grad_accum: int = 1  # micro-batches per optimizer step
    warmup_steps: int = 0
    lr_schedule: str = "constant"  # "constant", "cosine" or "linear" (down to min_lr_ratio * lr)
    min_lr_ratio: float = 0.1
    time_limit: float | None = None  # seconds of wall time, process start included
    eval_tokens: int = 0  # periodic evals use this many val tokens; 0 = the whole split
    keep_best: bool = False  # model.safetensors = the weights of the best periodic eval
    tokenizer: str = "char"  # "char" or "bpe"
    vocab_size: int | None = None  # BPE vocabulary size
    amp: str = "none"  # "none", "bf16" (autocast), or "auto": bf16 where the hardware has fast bf16
    compile: bool = False  # torch.compile the training forward
    threads: int | None = None  # intra-op CPU threads; None = the policy of training/threads.py (model size, idle cores)
    batching: str = "windows"  # "windows" anywhere in the text, or "rows": windows start where a row starts

    def validate(self) -> None:
        """Every value in range, every number finite; a one-line error naming the parameter."""
        check_types(self)
        _check_choices(self)
        _check_counts(self)
        _check_rates(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """The config recorded in a run's ``config.json`` (unknown keys are ignored)."""
        if not isinstance(data, dict):
            raise BigramLMError("the training section of config.json is not a mapping")
        known = {f.name for f in fields(cls)}
        config = cls(**{k: v for k, v in data.items() if k in known})
        config.validate()
        return config


_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def check_types(config: Any) -> None:
    """Every field of a settings dataclass holds its declared type (bool is no int), finite if a float."""
    for f in fields(config):
        value = getattr(config, f.name)
        kinds = str(f.type).replace(" ", "").split("|")
        if value is None and "None" in kinds:
            continue
        allowed = tuple(t for kind in kinds for t in _TYPES.get(kind, ()))
        # bool is an int in Python; an int field given true/false is still a mistake.
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise BigramLMError(f"{f.name} must be {' or '.join(kinds)} (got {value!r})", param=f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise BigramLMError(f"{f.name} must be a finite number (got {value})", param=f.name)


def _check_choices(config: TrainConfig) -> None:
    choices = {
        "method": ("sgd", "counts"),
        "lr_schedule": ("constant", "cosine", "linear"),
        "tokenizer": ("char", "bpe"),
        "amp": ("none", "bf16", "auto"),
        "batching": ("windows", "rows"),
    }
    for name, allowed in choices.items():
        if getattr(config, name) not in allowed:
            raise BigramLMError(f"unknown {name} {getattr(config, name)!r} (use {', '.join(allowed)})", param=name)
    if not _DEVICE.match(config.device):
        raise BigramLMError(f"unknown device {config.device!r} (use cpu, cuda, cuda:N or mps)", param="device")


def check_count(config: Any, name: str, low: int, high: int | None = None) -> None:
    """The field ``name`` of ``config`` lies in ``low..high``; a one-line error naming the parameter."""
    value = getattr(config, name)
    if value < low or (high is not None and value > high):
        bound = f"in {low}..{high:,}" if high is not None else f"at least {low}"
        raise BigramLMError(f"{name} must be {bound} (got {value})", param=name)


def _check_counts(config: TrainConfig) -> None:
    check_count(config, "steps", 0 if config.method == "counts" else 1, MAX_STEPS)  # counts runs record 0
    check_count(config, "block_size", 1, MAX_BLOCK_SIZE)
    check_count(config, "batch_size", 1, MAX_BATCH_TOKENS // config.block_size)
    for name in ("eval_every", "checkpoint_every", "log_every", "grad_accum"):
        check_count(config, name, 1, MAX_STEPS)
    check_count(config, "warmup_steps", 0, MAX_STEPS)
    check_count(config, "eval_tokens", 0)
    check_count(config, "seed", 0, 2**63 - 1)
    if config.threads is not None:
        check_count(config, "threads", 1, 1024)
    if config.vocab_size is not None:
        check_count(config, "vocab_size", MIN_BPE_VOCAB, MAX_VOCAB_SIZE)
    if config.warmup_steps and config.warmup_steps >= config.steps:
        raise BigramLMError(
            f"warmup_steps ({config.warmup_steps}) must be fewer than steps ({config.steps}), "
            "or the learning rate is never reached",
            param=("warmup_steps", "steps"),
        )


def check_rate(config: Any, name: str, low: float, high: float, low_open: bool = False, high_open: bool = False) -> None:
    """The field ``name`` of ``config`` lies between ``low`` and ``high`` (each end open or closed)."""
    value = getattr(config, name)
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if below or above:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise BigramLMError(f"{name} must be in {interval} (got {value})", param=name)


def _check_rates(config: TrainConfig) -> None:
    # AdamW moves each weight by about lr per step: beyond 1 a run can only diverge.
    check_rate(config, "learning_rate", 0.0, 1.0, low_open=True)
    check_rate(config, "weight_decay", 0.0, 10.0)
    check_rate(config, "beta1", 0.0, 1.0, high_open=True)
    check_rate(config, "beta2", 0.0, 1.0, high_open=True)
    check_rate(config, "ema_decay", 0.0, 1.0, high_open=True)
    check_rate(config, "min_lr_ratio", 0.0, 1.0)
    check_rate(config, "grad_clip", 0.0, 1e6)
    # alpha 0 would give an unseen pair probability 0, and the val loss infinity.
    check_rate(config, "alpha", 0.0, 1e6, low_open=True)
    if config.time_limit is not None:
        check_rate(config, "time_limit", 0.0, 1e7, low_open=True, high_open=True)


#: The version of the config.json layout.
FORMAT_VERSION = 1
CONFIG = "config.json"


@dataclass
class ModelSpec:
    """Which model, and its config dataclass as a mapping (``models.build_model`` takes both)."""

    name: str
    config: dict[str, Any]


@dataclass
class TokenizerSpec:
    type: str
    vocab_size: int
    #: Fingerprint of ``tokenizer.json``: the weights must never load under another vocabulary.
    sha256: str | None = None


@dataclass
class RunConfig:
    model: ModelSpec
    training: TrainConfig
    #: Where the data came from and how it was split and formatted (``bigramlm.data``).
    data: dict[str, Any]
    tokenizer: TokenizerSpec
    world_size: int = 1
    format_version: int = FORMAT_VERSION
    bigramlm_version: str = __version__
    #: Sections written by other code (e.g. the budget recipe), kept as they are.
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def is_instruction_run(self) -> bool:
        return self.data.get("kind") == "instructions"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "bigramlm_version": self.bigramlm_version,
            "model": asdict(self.model),
            "training": asdict(self.training),
            "data": self.data,
            "tokenizer": asdict(self.tokenizer),
            "distributed": {"world_size": self.world_size},
            **self.extras,
        }

    @classmethod
    def from_dict(cls, raw: Any, source: str = CONFIG) -> "RunConfig":
        """Parse and check a ``config.json`` object; a wrong shape is a one-line error."""
        if not isinstance(raw, dict):
            raise BigramLMError(f"corrupt {source}: not a JSON object")
        model = raw.get("model")
        if not isinstance(model, dict) or not isinstance(model.get("name"), str):
            raise BigramLMError(f"corrupt {source}: the model section needs a name")
        model_config = model.get("config", {})
        if not isinstance(model_config, dict):
            raise BigramLMError(f"corrupt {source}: model.config must be a mapping")
        try:
            training = TrainConfig.from_dict(raw.get("training") or {})
        except BigramLMError as exc:
            raise BigramLMError(f"corrupt {source}: training: {exc}") from None
        data = raw.get("data") or {}
        tokenizer = raw.get("tokenizer") or {}
        if not isinstance(data, dict) or not isinstance(tokenizer, dict):
            raise BigramLMError(f"corrupt {source}: the data and tokenizer sections must be mappings")
        known = {"format_version", "bigramlm_version", "model", "training", "data", "tokenizer", "distributed"}
        return cls(
            model=ModelSpec(model["name"], dict(model_config)),
            training=training,
            data=data,
            tokenizer=TokenizerSpec(
                type=str(tokenizer.get("type", "char")),
                vocab_size=int(tokenizer.get("vocab_size") or model_config.get("vocab_size") or 0),
                sha256=tokenizer.get("sha256"),
            ),
            world_size=int((raw.get("distributed") or {}).get("world_size", 1)),
            format_version=int(raw.get("format_version", FORMAT_VERSION)),
            bigramlm_version=str(raw.get("bigramlm_version", "")),
            extras={k: v for k, v in raw.items() if k not in known},
        )
