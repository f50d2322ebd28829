"""Moving a store to another database (``bigramlm store copy``), checked by counts and checksums.

A desk that outgrows its SQLite file moves its cases, feedback, agents and learns to the
team's PostgreSQL database (or back) without losing an id: every row is copied as it is,
in one write transaction on the target, which must be empty. Then each table is read
again on both sides and compared: its row count, and a checksum of its content that does
not depend on row order or on how the back-end sorts text (the sorted sha256 of each
row's values, as JSON, under its column names).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Iterator

from sqlalchemy import Connection, text

from bigramlm.errors import BigramLMError
from bigramlm.support.store.case_store import CaseStore

#: Every table, parents before the rows that name them (feedback names suggestions).
TABLES = ("meta", "agents", "suggestions", "cases", "learns", "feedback", "rule_settings")
#: Tables whose ids a sequence gives on PostgreSQL (set past the copied ids afterwards).
SERIAL = ("cases", "learns", "feedback")
#: Each store keeps its own schema version in ``meta``; everything else there is copied.
OWN_META = "schema_version"
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
        if not (table == "meta" and row["key"] == OWN_META):
            yield dict(row)


def _check(conn: Connection, table: str) -> tuple[int, str]:
    digests = sorted(hashlib.sha256(json.dumps(row, sort_keys=True, ensure_ascii=False).encode("utf-8")).digest()
                     for row in _rows(conn, table))
    return len(digests), hashlib.sha256(b"".join(digests)).hexdigest()


def _refuse_nonempty(conn: Connection, name: str) -> None:
    for table in TABLES[1:]:
        if conn.execute(text(f"SELECT 1 FROM {table} LIMIT 1")).first() is not None:
            raise BigramLMError(f"target {name} is not empty (its {table} table has rows): copy into a new, empty database",
                                param="target")


def _insert(conn: Connection, table: str, rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    names, values = ", ".join(columns), ", ".join(f":{c}" for c in columns)
    upsert = " ON CONFLICT(key) DO UPDATE SET value = excluded.value" if table == "meta" else ""
    conn.execute(text(f"INSERT INTO {table} ({names}) VALUES ({values}){upsert}"), rows)


def copy_store(source: CaseStore, target: CaseStore) -> CopyResult:
    """Copy every row of ``source`` into the empty ``target`` (one transaction), then compare
    each table's count and checksum on both sides."""
    if source.name == target.name:
        raise BigramLMError(f"target is the store being copied ({source.name})", param="target")
    with source.db.read(snapshot=True) as src, target.db.write() as dst:
        _refuse_nonempty(dst, target.name)
        for table in TABLES:
            batch: list[dict[str, Any]] = []
            for row in _rows(src, table):
                batch.append(row)
                if len(batch) == BATCH:
                    _insert(dst, table, batch)
                    batch = []
            if batch:
                _insert(dst, table, batch)
        if target.db.postgresql:  # the next id each sequence gives is past the copied ones
            for table in SERIAL:
                dst.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                                 f" (SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"))
    checks = []
    with source.db.read(snapshot=True) as src, target.db.read(snapshot=True) as dst:
        for table in TABLES:
            (rows, digest), (target_rows, target_digest) = _check(src, table), _check(dst, table)
            checks.append(TableCheck(table, rows, target_rows, digest, target_digest))
    return CopyResult(source.name, target.name, checks)
