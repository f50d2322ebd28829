"""Docs name what exists: every module, class or function a docstring or comment of the
package names in double backquotes resolves, and every file of the repository it cites is
there. A rename that leaves its docs behind fails here instead of misleading a reader."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest

import bigramlm

SRC = Path(bigramlm.__file__).resolve().parent
ROOT = SRC.parent.parent
DOTTED = re.compile(r"``([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)``")
CAMEL = re.compile(r"``([A-Z][a-z0-9]{2,}[A-Z]\w*)``")  # CamelCase: a class
CITED_FILE = re.compile(r"(?<![\w/.])((?:tests|benchmarks|scripts|docs|src/bigramlm)/[\w/.-]*\w\.(?:py|sh|md|png|jsonl))")
MODULES = sorted(m.name for m in pkgutil.walk_packages(bigramlm.__path__, "bigramlm.") if m.name != "bigramlm.__main__")
#: ``config.json`` and its kind are file names, not dotted names.
FILE_SUFFIXES = {"json", "jsonl", "safetensors", "gz", "npz", "sqlite", "png", "toml", "csv", "txt", "py", "md", "sh"}


def _resolve(path: str) -> object | None:
    """The object a full dotted path names (a module, or attributes of one), or None."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return None
            obj = getattr(obj, attr)
        return obj
    return None


def _bases(module: str) -> list[str]:
    """Where a name in ``module``'s docs may be relative to: the module, its packages, bigramlm's parent."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)] + [""]


def _problems(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    path = Path(module.__file__ or "")
    text = path.read_text(encoding="utf-8")
    problems = []
    for name in DOTTED.findall(text):
        head = name.split(".")[0]
        if name.rsplit(".", 1)[1] in FILE_SUFFIXES:
            continue
        anchored = [b for b in _bases(module_name) if _resolve(f"{b}.{head}".lstrip(".")) is not None]
        # A first part that is nothing of ours (``torch.optim``, ``run.model``) is not a reference to check.
        if anchored and head in _package_names() | {"bigramlm"} and not any(_resolve(f"{b}.{name}".lstrip(".")) for b in anchored):
            problems.append(f"{path.relative_to(ROOT)}: ``{name}`` names nothing")
    for name in CAMEL.findall(text):
        if not _defined_anywhere(name, module, text):
            problems.append(f"{path.relative_to(ROOT)}: ``{name}`` is no class of the package or of what it imports")
    for cited in CITED_FILE.findall(text):
        if not (ROOT / cited).exists():
            problems.append(f"{path.relative_to(ROOT)}: cites {cited}, which does not exist")
    return problems


def _package_names() -> set[str]:
    """The last part of every module of the package (``ranking``, ``engine``, ``store``, ...)."""
    return {m.rsplit(".", 1)[1] for m in MODULES}


def _defined_anywhere(name: str, module: ModuleType, text: str) -> bool:
    if any(hasattr(importlib.import_module(m), name) for m in MODULES):
        return True
    imported = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom):
            imported |= {a.asname or a.name for a in node.names} | {node.module or ""}
        elif isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
    return name in imported or any(hasattr(_resolve(i) or object(), name) for i in imported if i)


@pytest.mark.parametrize("module_name", MODULES)
def test_names_in_docs_exist(module_name: str) -> None:
    assert _problems(module_name) == []


def test_docs_outside_the_package_cite_files_that_exist() -> None:
    problems = []
    for doc in [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "benchmarks").glob("*.py"))]:
        for cited in CITED_FILE.findall(doc.read_text(encoding="utf-8")):
            if not (ROOT / cited).exists():
                problems.append(f"{doc.name} cites {cited}")
    assert problems == []
