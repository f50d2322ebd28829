"""Names a package exports that load on first use, so that importing the package (and so
``bigramlm --help``) does not pay for torch: 1.7 s on quiet cores, 11-15 s on busy ones."""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Any, Callable


def lazy_exports(package: str, public: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose ``public`` maps each exported
    name to the module that defines it."""

    def __getattr__(name: str) -> Any:
        if name in public:
            value = getattr(import_module(public[name]), name)
            setattr(sys.modules[package], name, value)  # later lookups skip this function
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted([*vars(sys.modules[package]), *public])

    return __getattr__, __dir__
