"""Which database a store target names, checked before anything is opened or created.

A target (``--store``, ``BIGRAMLM_STORE``, ``store copy --to``) is either a database URL
(``postgresql://USER:PASSWORD@HOST:PORT/DATABASE``) or a SQLite file. What looks like a
URL is parsed as one and never taken for a file name: a mistyped URL
(``postgresql:user:pw@host``) would otherwise become a private SQLite file in the working
directory, and a desk started on it would keep its cases to itself. Every message shows a
target with its password masked, parsed or not. A SQLite target must be a regular file, or
a new one in an existing directory: SQLite would otherwise write its journal beside a
device (``/dev/null-journal``) or open a FIFO and wait.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from sqlalchemy import exc, make_url
from sqlalchemy.engine import URL

from bigramlm.errors import BigramLMError

#: SQLAlchemy's dialect names: ``NAME:...`` with one of them is a URL even without ``//``.
DIALECTS = frozenset({"postgresql", "postgres", "psql", "pg", "sqlite", "mysql", "mariadb", "oracle", "mssql"})
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_USER_PASSWORD = re.compile(r"[^/:@]+:[^/@]*@")
#: A password in a query string (``?password=...``), which libpq reads too.
_QUERY_PASSWORD = re.compile(r"(?i)(password=)[^&]*")
HINT = "postgresql://USER:PASSWORD@HOST:PORT/DATABASE, with an @, : or / in the password written as %40, %3A, %2F"


def looks_like_url(name: str) -> bool:
    """Whether ``name`` is meant as a database URL: a scheme (``word:``) followed by ``//``,
    or with an ``@`` after it, or a dialect's name as the scheme; or, scheme mistyped, a
    ``user:password@``. A file path (``runs/cases.sqlite``, ``./a@b.sqlite``) has neither."""
    if _USER_PASSWORD.search(name):
        return True
    scheme = _SCHEME.match(name)
    if scheme is None:
        return False
    dialect = scheme.group()[:-1].split("+")[0].lower()
    return name[scheme.end():].startswith("//") or "@" in name or dialect in DIALECTS


def masked(name: str) -> str:
    """``name`` with any password in it replaced by ``***``, whether it parses or not: what
    follows the user's ``:`` up to the last ``@``, and a ``password=`` in the query."""
    scheme = _SCHEME.match(name)
    start = scheme.end() if scheme else 0
    start += 2 if name[start:].startswith("//") else 0
    at = name.rfind("@")
    user_end = name.find(":", start, at) if at > start else -1
    if user_end >= 0:
        name = name[: user_end + 1] + "***" + name[at:]
    return _QUERY_PASSWORD.sub(r"\1***", name)


def shown(url: URL) -> str:
    """A parsed URL as messages show it: without its password."""
    return masked(url.render_as_string(hide_password=True))


def store_url(target: str | os.PathLike[str]) -> URL:
    """The SQLAlchemy URL of a store: a file path is SQLite; ``postgresql://`` (or
    ``postgres://``) is PostgreSQL through psycopg 3. A URL that does not parse, or names
    another database, is one line naming ``store``, its password masked."""
    name = os.fspath(target)
    if not looks_like_url(name):
        return URL.create("sqlite", database=str(Path(name).absolute()))
    url = _parse(name)
    if url.get_backend_name() in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite" and url.database:
        return url
    raise BigramLMError(f"store {shown(url)!r} is neither a SQLite file nor PostgreSQL "
                        "(postgresql://USER@HOST/DATABASE)", param="store")


def _parse(name: str) -> URL:
    try:
        url = make_url(name)  # a port that is not a number is a ValueError
    except (exc.ArgumentError, ValueError):
        url = None
    if url is None:
        why = "does not parse"
    elif "@" in (url.host or ""):  # an unescaped @ in the password: the rest of it became the host
        why = "has an @ in its host"
    elif url.port is not None and not 0 < url.port < 65536:
        why = f"has port {url.port}, not 1..65535"
    else:
        return url
    raise BigramLMError(f"store {masked(name)!r} looks like a database URL but {why}: write {HINT}", param="store")


def sqlite_path(target: str | os.PathLike[str]) -> Path | None:
    """The SQLite file a store target names, or None for a database server."""
    url = store_url(target)
    return None if url.get_backend_name() == "postgresql" else Path(str(url.database))


def check_sqlite_file(path: Path) -> None:
    """Refuse, in one line naming ``store``, a SQLite target that is not a regular file (a
    device, a FIFO, a socket, a directory, a link to one or to nothing) or whose directory
    does not exist; nothing is created."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as failure:
        raise BigramLMError(f"store {path} cannot be used: {failure.strerror}", param="store") from None
    if mode is None and path.is_symlink():
        raise BigramLMError(f"store {path} is a link to nothing: name a SQLite file", param="store")
    if mode is not None and stat.S_ISDIR(mode):
        raise BigramLMError(f"store {path} is a directory, not a database file", param="store")
    if mode is not None and not stat.S_ISREG(mode):
        raise BigramLMError(f"store {path} is not a regular file (a device, FIFO or socket): name a SQLite file, "
                            "existing or new, in an existing directory", param="store")
    if not path.parent.is_dir():
        raise BigramLMError(f"store {path} cannot be created: no directory {path.parent}", param="store")
