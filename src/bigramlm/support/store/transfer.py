"""Moving a store to another database (``bigramlm store copy``), checked by counts and checksums.

A desk that outgrows its SQLite file moves its cases, feedback, agents and learns to the
team's PostgreSQL database (or back) without losing an id: every row is copied as it is,
in one write transaction on the target, which must be empty. Then each table is read
again on both sides and compared: its row count, and a checksum of its content that does
not depend on row order or on how the back-end sorts text (the sorted sha256 of each
row's values, as JSON, under its column names).

A desk may still be writing to the source: the copy holds the source's write lock from
the first row read to the last check, and then marks the source as moved (``meta``'s
``moved_to``), so the desk's later writes are refused with a 503 that says to restart it
on the new store, and no case it acknowledged is left behind.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Iterator

from sqlalchemy import Connection, text

from bigramlm.errors import BigramLMError
from bigramlm.support.store.case_store import CaseStore
from bigramlm.support.store.database import MOVED_KEY, set_meta

#: Every table, parents before the rows that name them (feedback names suggestions).
TABLES = ("meta", "agents", "suggestions", "cases", "learns", "feedback", "rule_settings", "conversation_cases",
          "helpdesk_deliveries")
#: Tables whose ids a sequence gives on PostgreSQL (set past the copied ids afterwards).
SERIAL = ("cases", "learns", "feedback")
#: Each store keeps its own schema version and move in ``meta``; everything else there is copied.
OWN_META = ("schema_version", MOVED_KEY)
BATCH = 1000


@dataclass(frozen=True)
class TableCheck:
    table: str
    rows: int
    target_rows: int
    sha256: str
    target_sha256: str

    @property
    def same(self) -> bool:
        return self.rows == self.target_rows and self.sha256 == self.target_sha256


@dataclass(frozen=True)
class CopyResult:
    source: str
    target: str
    tables: list[TableCheck]

    @property
    def same(self) -> bool:
        return all(t.same for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "same": self.same,
                "tables": [{**asdict(t), "same": t.same} for t in self.tables]}


def _rows(conn: Connection, table: str) -> Iterator[dict[str, Any]]:
    result = conn.execution_options(yield_per=BATCH).execute(text(f"SELECT * FROM {table}"))
    for row in result.mappings():
        if not (table == "meta" and row["key"] in OWN_META):
            yield dict(row)


def _check(conn: Connection, table: str) -> tuple[int, str]:
    digests = sorted(hashlib.sha256(json.dumps(row, sort_keys=True, ensure_ascii=False).encode("utf-8")).digest()
                     for row in _rows(conn, table))
    return len(digests), hashlib.sha256(b"".join(digests)).hexdigest()


def _empty(conn: Connection) -> bool:
    return all(conn.execute(text(f"SELECT 1 FROM {table} LIMIT 1")).first() is None for table in TABLES[1:])


def _insert(conn: Connection, table: str, rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    names, values = ", ".join(columns), ", ".join(f":{c}" for c in columns)
    upsert = " ON CONFLICT(key) DO UPDATE SET value = excluded.value" if table == "meta" else ""
    conn.execute(text(f"INSERT INTO {table} ({names}) VALUES ({values}){upsert}"), rows)


def _copy_rows(src: Connection, dst: Connection, postgresql: bool) -> None:
    for table in TABLES:
        batch: list[dict[str, Any]] = []
        for row in _rows(src, table):
            batch.append(row)
            if len(batch) == BATCH:
                _insert(dst, table, batch)
                batch = []
        if batch:
            _insert(dst, table, batch)
    if postgresql:  # the next id each sequence gives is past the copied ones
        for table in SERIAL:
            dst.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                             f" (SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"))


def _compare(src: Connection, target: CaseStore) -> list[TableCheck]:
    checks = []
    with target.db.read(snapshot=True) as dst:
        for table in TABLES:
            (rows, digest), (target_rows, target_digest) = _check(src, table), _check(dst, table)
            checks.append(TableCheck(table, rows, target_rows, digest, target_digest))
    return checks


def copy_store(source: CaseStore, target: CaseStore) -> CopyResult:
    """Copy every row of ``source`` into the empty ``target`` (one transaction), compare each
    table's count and checksum on both sides, and when they agree mark ``source`` as moved
    to ``target``.

    The whole copy holds the source's write lock, so a desk writing to it meanwhile waits
    (or, past its busy timeout, answers 503 and stores nothing); once the source is marked,
    its writes are refused (``StoreMoved``): no case a desk acknowledged stays behind. A
    target that already holds exactly the source's rows (a copy whose end was interrupted)
    is taken as the copy.
    """
    if source.name == target.name:
        raise BigramLMError(f"target is the store being copied ({source.name})", param="target")
    with source.db.write(moved_ok=True) as src:
        with target.db.write() as dst:
            empty = _empty(dst)
            if empty:
                _copy_rows(src, dst, target.db.postgresql)
        result = CopyResult(source.name, target.name, _compare(src, target))
        if not empty and not result.same:
            raise BigramLMError(f"target {target.name} is not empty and differs from {source.name}: copy into a new, "
                                "empty database", param="target")
        if result.same:
            set_meta(src, MOVED_KEY, target.name)
    return result
