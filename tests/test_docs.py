"""Docs name what exists: every module, class or function a docstring or comment of the
package names in double backquotes resolves, and every file of the repository it cites is
there; the pages (README.md, CONTRIBUTING.md, docs/*.md) name only files, modules, classes and
attributes that exist, and their links between pages, anchors included, resolve. A rename that
leaves its docs behind fails here instead of misleading a reader."""

from __future__ import annotations

import ast
import builtins
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


#: The pages a reader reads: the front door, the contributor's guide and every page under docs/.
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCED = re.compile(r"^```.*?^```", re.S | re.M)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
PY_PATH = re.compile(r"[\w./-]+\.py")
DOTTED_SPAN = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
LINK = re.compile(r"\]\(([^)\s]+)\)")
#: Spans in the pages that look like names of ours and are not, each with what it is.
NOT_OURS = {
    "models.retrieve": "the openai client's method",
    "bigramlm.messages_ignored": "a field of the chat completion's JSON",
    "ChatOpenAI": "LangChain's chat model",
    "bigram.py": "ng-video-lecture's script, fetched outside the repository",
}
#: Where a bare or package-relative file name in the pages may live.
FILE_HOMES = [ROOT, SRC, SRC.parent, ROOT / "benchmarks", ROOT / "scripts", ROOT / "tests"]


def _spans(page: Path) -> list[str]:
    """The inline code of a page (fenced blocks left out), a call's arguments cut off."""
    return [s.split("(")[0] for s in CODE_SPAN.findall(FENCED.sub("", page.read_text(encoding="utf-8")))]


def _owners(head: str) -> list[object]:
    """What a name's first part may be of ours: the package, a module by its last part, a class defined in one."""
    if head == "bigramlm":
        return [bigramlm]
    owners: list[object] = [importlib.import_module(m) for m in MODULES if m.rsplit(".", 1)[1] == head]
    for module in MODULES:
        obj = getattr(importlib.import_module(module), head, None)
        if isinstance(obj, type):
            owners.append(obj)
    return owners


def _has_path(owner: object, attrs: list[str]) -> bool:
    for attr in attrs:
        if not hasattr(owner, attr):
            return False
        owner = getattr(owner, attr)
    return True


def _span_problem(span: str) -> str | None:
    if span in NOT_OURS or "your" in span:  # "models/yourmodel.py": CONTRIBUTING's placeholders
        return None
    if PY_PATH.fullmatch(span):
        return None if any((home / span).exists() for home in FILE_HOMES) else f"`{span}` is no file"
    if DOTTED_SPAN.fullmatch(span) and span.rsplit(".", 1)[1] not in FILE_SUFFIXES:
        head, *attrs = span.split(".")
        owners = _owners(head)
        if owners and not any(_has_path(o, attrs) for o in owners):
            return f"`{span}` names nothing"
    elif CAMEL.fullmatch(f"``{span}``") and not _owners(span) and not hasattr(builtins, span):
        return f"`{span}` is no class of the package"
    return None


def test_docs_outside_the_package_cite_files_that_exist() -> None:
    problems = []
    for doc in [*PAGES, *sorted((ROOT / "benchmarks").glob("*.py"))]:
        for cited in CITED_FILE.findall(doc.read_text(encoding="utf-8")):
            if not (ROOT / cited).exists():
                problems.append(f"{doc.name} cites {cited}")
    assert problems == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_names_in_the_pages_exist(page: Path) -> None:
    """Every module file, class, function or attribute a page names in code is there."""
    problems = [p for p in map(_span_problem, _spans(page)) if p is not None]
    assert problems == []


def _anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces to
    hyphens, and -1, -2, ... after a repeated one."""
    counts: dict[str, int] = {}
    anchors = set()
    for line in FENCED.sub("", page.read_text(encoding="utf-8")).splitlines():
        if re.match(r"#{1,6} ", line):
            slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            seen = counts.get(slug, 0)
            anchors.add(slug if seen == 0 else f"{slug}-{seen}")
            counts[slug] = seen + 1
    return anchors


def _link_problems(page: Path) -> list[str]:
    problems = []
    for target in LINK.findall(FENCED.sub("", page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue  # https://, mailto: are not ours to check offline
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            problems.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            problems.append(f"{target}: no heading with that anchor")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_between_pages_resolve(page: Path) -> None:
    """A relative link names a file that exists and, with #anchor, a heading of that page."""
    assert _link_problems(page) == []


def test_the_page_checks_catch_what_is_gone(tmp_path: Path) -> None:
    """The checks above can fail: a file, a class, an attribute or an anchor that is not there."""
    assert _span_problem("support/no_such_module.py") is not None
    assert _span_problem("CaseStore.no_such_method") is not None
    assert _span_problem("MadeUpWidget") is not None
    assert _span_problem("CaseStore.for_run") is None and _span_problem("support/scope.py") is None
    page = tmp_path / "page.md"
    page.write_text("# The recipe (`train --recipe`)\n## Twice\n## Twice\n"
                    "[a](#the-recipe-train---recipe) [b](#twice-1) [c](#twice-2) [d](gone.md) [e](page.md#twice)\n",
                    encoding="utf-8")
    assert _link_problems(page) == ["#twice-2: no heading with that anchor", "gone.md: no such file"]
