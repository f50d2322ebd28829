"""Where corpora come from: a small registry of named corpora, local paths, and downloads.

A named corpus is resolved in this order:

1. ``$BIGRAMLM_DATA_DIR/<name>/<file_name>`` (offline copies, e.g. ``../shared/data``);
2. the user cache, ``$XDG_CACHE_HOME/bigramlm/<name>/<file_name>`` (``~/.cache`` by default);
3. a download, written atomically and checked against the registry's sha256.

Anything else is taken as a path to a file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import BigramLMError

DATA_DIR_ENV = "BIGRAMLM_DATA_DIR"


@dataclass(frozen=True)
class Corpus:
    """One entry of the registry: enough to find, fetch and verify a named corpus."""

    name: str
    file_name: str
    sha256: str
    url: str | None = None
    #: "text" is plain text split by characters; "instructions" is a table of rows.
    kind: str = "text"
    #: Optional custom fetcher ``fetch(corpus, dest_path)`` used instead of a plain URL
    #: download (the Bitext corpus comes through huggingface_hub).
    fetch: Callable[["Corpus", Path], None] | None = None


REGISTRY: dict[str, Corpus] = {}


def register(corpus: Corpus) -> Corpus:
    """Add a named corpus to the registry (a new corpus is a few lines)."""
    REGISTRY[corpus.name] = corpus
    return corpus


register(
    Corpus(
        name="tinyshakespeare",
        file_name="input.txt",
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    )
)


def data_dir() -> Path | None:
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bigramlm"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _where_to_put(corpus: Corpus) -> str:
    cached = cache_dir() / corpus.name / corpus.file_name
    return (
        f"put {corpus.file_name} at ${DATA_DIR_ENV}/{corpus.name}/{corpus.file_name} "
        f"or {cached}"
    )


def download(url: str, dest: Path, sha256: str | None, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``dest`` atomically; nothing is left at ``dest`` on failure.

    The body goes to a temporary file in the destination folder, is checked for a
    truncated transfer (Content-Length) and for its sha256, and only then renamed.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    received = 0
    try:
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                expected = response.headers.get("Content-Length")
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
        if expected is not None and received != int(expected):
            raise BigramLMError(
                f"download of {url} was truncated: got {received} of {expected} bytes"
            )
        if sha256 is not None and digest.hexdigest() != sha256:
            raise BigramLMError(
                f"download of {url} failed its checksum: sha256 {digest.hexdigest()} != {sha256}"
            )
        os.replace(tmp, dest)
        return dest
    except BigramLMError:
        raise
    except urllib.error.HTTPError as exc:
        raise BigramLMError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except Exception as exc:  # URLError, timeouts, http.client.IncompleteRead (a cut body)
        reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
        raise BigramLMError(f"download of {url} failed: {reason}") from None
    finally:
        tmp.unlink(missing_ok=True)


def ensure_corpus(corpus: Corpus) -> Path:
    """Return a local, verified path for a named corpus, downloading it if needed."""
    root = data_dir()
    if root is not None:
        candidate = root / corpus.name / corpus.file_name
        if candidate.is_file():
            return candidate
    cached = cache_dir() / corpus.name / corpus.file_name
    if cached.is_file():
        return cached
    try:
        if corpus.fetch is not None:
            corpus.fetch(corpus, cached)
        elif corpus.url is not None:
            download(corpus.url, cached, corpus.sha256)
        else:
            raise BigramLMError(f"corpus {corpus.name!r} has no download source")
    except BigramLMError as exc:
        raise BigramLMError(f"{exc}; offline? {_where_to_put(corpus)}") from None
    return cached


def resolve_source(source: str | os.PathLike[str]) -> tuple[Path, Corpus | None]:
    """Map ``--data`` to a local file: a registry name or a path.

    Returns the path and the registry entry (``None`` for a plain path).
    """
    name = str(source)
    if name in REGISTRY:
        corpus = REGISTRY[name]
        return ensure_corpus(corpus), corpus
    path = Path(name).expanduser()
    if not path.exists():
        known = ", ".join(sorted(REGISTRY))
        raise BigramLMError(f"no such file or named corpus: {name} (named corpora: {known})")
    if path.is_dir():
        raise BigramLMError(f"{name} is a directory; give a file or a named corpus")
    return path, None


def read_text_file(path: Path) -> str:
    """Read a UTF-8 text file, with one-line errors for the usual mistakes."""
    if path.is_dir():
        raise BigramLMError(f"{path} is a directory, not a text file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BigramLMError(f"no such file: {path}") from None
    except OSError as exc:
        raise BigramLMError(f"cannot read {path}: {exc.strerror}") from None
    if not data:
        raise BigramLMError(f"{path} is empty")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BigramLMError(
            f"{path} is not UTF-8 text (bad byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
