"""Where corpora come from: local copies, the user cache, and checked downloads.

A named corpus is resolved in this order:

1. ``$BIGRAMLM_DATA_DIR/<name>/<file_name>`` (offline copies, e.g. ``../shared/data``);
2. the user cache, ``$XDG_CACHE_HOME/bigramlm/<name>/<file_name>`` (``~/.cache`` by default);
3. a download, written atomically and checked against the registry's sha256.

The registry of named corpora is ``bigramlm.data.registry``; anything else is a path.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bigramlm._fs import sha256_of
from bigramlm.errors import BigramLMError

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
    #: For hub-hosted corpora: the dataset repository and the pinned commit.
    repo_id: str | None = None
    revision: str | None = None


def data_dir() -> Path | None:
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bigramlm"


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


def _verified(path: Path, corpus: Corpus) -> Path:
    """``path`` if its bytes are the registry's; a local copy is checked like a download."""
    digest = sha256_of(path)
    if digest != corpus.sha256:
        raise BigramLMError(
            f"checksum mismatch: {path} has sha256 {digest[:12]}..., but {corpus.name} is "
            f"{corpus.sha256[:12]}...; replace or delete that file"
        )
    return path


def ensure_corpus(corpus: Corpus) -> Path:
    """Return a local, verified path for a named corpus, downloading it if needed."""
    root = data_dir()
    if root is not None:
        candidate = root / corpus.name / corpus.file_name
        if candidate.is_file():
            return _verified(candidate, corpus)
    cached = cache_dir() / corpus.name / corpus.file_name
    if cached.is_file():
        return _verified(cached, corpus)
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


#: The largest data file we read into memory (the full Bitext CSV is 19 MB): beyond it,
#: or for anything that is not a regular file (/dev/zero, a FIFO), we refuse at once.
MAX_INPUT_BYTES = 1 << 30


def check_input_file(path: Path, what: str = "data file") -> None:
    """A regular file of at most ``MAX_INPUT_BYTES``, or a one-line error saying why not."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise BigramLMError(f"no such file: {path}") from None
    except OSError as exc:
        raise BigramLMError(f"cannot read {path}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise BigramLMError(f"{path} is a directory, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise BigramLMError(f"{path} is not a regular file (a device, FIFO or socket); give a {what}")
    if st.st_size > MAX_INPUT_BYTES:
        raise BigramLMError(f"{path} is {st.st_size:,} bytes; the limit for a {what} is {MAX_INPUT_BYTES:,}")


def read_text_file(path: Path) -> str:
    """Read a UTF-8 text file, with one-line errors for the usual mistakes."""
    check_input_file(path, "text file")
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
