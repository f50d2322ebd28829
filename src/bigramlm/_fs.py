"""Atomic file writes and checksums: the one implementation every module uses.

A file is written to a temporary name in its own folder and renamed onto its path, so a
reader, or a crash halfway, sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable

from bigramlm.errors import BigramLMError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Every file we write gets the mode a plain ``open()`` would give it (0644 under the
#: usual umask 022), not mkstemp's 0600: one rule for every file of a run.
FILE_MODE = 0o666 & ~_umask()


def check_writable(path: str | os.PathLike[str], param: str, directory: bool = False) -> None:
    """Refuse, in one line naming ``param``, a path that cannot be written.

    ``path`` is a file to write (or replace), or with ``directory`` a folder to create
    or fill. Checked before any work starts, so that a long run does not end in a
    traceback from ``mkdir`` or ``os.replace``: a path under a regular file, a file
    where a folder should be (and the reverse), or a folder the user cannot write to.
    """
    path = Path(path)
    if path.is_dir() and not directory:
        raise BigramLMError(f"{param} {path} is a directory; give a file path", param=param)
    # Writing renames a new file over the path: a link, a device or a FIFO would be replaced
    # by a plain file (as root, --out /dev/null would break the machine). New names and
    # regular files only.
    if not directory and (path.is_symlink() or (path.exists() and not path.is_file())):
        raise BigramLMError(f"{param} {path} is not a regular file; give a new file name or a regular file", param=param)
    if path.exists() and directory and not path.is_dir():
        raise BigramLMError(f"{param} {path} exists and is not a directory", param=param)
    folder = path if directory else path.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise BigramLMError(f"{param} {path}: {existing} is a file, not a directory", param=param)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BigramLMError(f"{param} {path}: {existing} is not writable", param=param)


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], object], mode: int = FILE_MODE) -> None:
    """Call ``write(tmp_path)`` (what it returns is ignored), then rename the temporary file onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike[str], text: str, newline: str | None = None) -> None:
    """Write UTF-8 text atomically and fsync it; ``newline=""`` keeps the bytes as given."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline=newline) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


def read_checked(path: str | os.PathLike[str], sha256: str) -> bytes:
    """The bytes of a file, read once; ValueError when their sha256 is not ``sha256``."""
    data = Path(path).read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{Path(path).name} does not match its recorded sha256")
    return data


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
