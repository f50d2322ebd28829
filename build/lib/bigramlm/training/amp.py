"""Mixed precision: bf16 autocast where the hardware has fast bf16, fp32 elsewhere."""

from __future__ import annotations

import contextlib

import torch


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with AMX-BF16 tiles (Sapphire Rapids and later), where bf16
    matmuls were measured ~3.5x faster than fp32. Without them bf16 is emulated and slower."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:
        pass
    return False


def resolve_amp(amp: str, device: torch.device) -> str:
    """``auto`` becomes ``bf16`` on CUDA GPUs with bf16 and on CPUs with AMX, else ``none``."""
    if amp != "auto":
        return amp
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "none"
    return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "none"


def autocast(amp: str, device: torch.device) -> contextlib.AbstractContextManager:
    if amp == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
