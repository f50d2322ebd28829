"""Is the device a run asks for here? One-line errors instead of torch's tracebacks.

``TrainConfig.validate`` checks the name's form (cpu, cuda, cuda:N, mps); whether this
machine has that device is only known to torch, so it is checked where the device is
set up, before anything is built on it.
"""

from __future__ import annotations

import torch

from bigramlm.errors import BigramLMError


def check_device(name: str) -> None:
    """Raise a one-line BigramLMError (param ``device``) if ``name`` is not usable here."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BigramLMError(f"unknown device {name!r} (use cpu, cuda, cuda:N or mps)", param="device") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BigramLMError(f"device {name} is not available: torch sees no CUDA GPU on this machine; use cpu", param="device")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise BigramLMError(
                f"device {name} is out of range: this machine has {count} CUDA device{'s' if count != 1 else ''} "
                f"(cuda:0..cuda:{count - 1})",
                param="device",
            )
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise BigramLMError(f"device {name} is not available: this machine has no Apple MPS GPU; use cpu", param="device")
    elif device.type != "cpu":
        raise BigramLMError(f"unknown device {name!r} (use cpu, cuda, cuda:N or mps)", param="device")
