"""Similar-case candidates, found by the store's own engine (schema 8, ``migrations/versions/0008_case_search.py``).

The caller (``support.retrieval.CaseSearch``) picks the query's most informative character
trigrams and re-scores what comes back in its own TF-IDF space; the store only has to
return the cases that share the most of those trigrams, without a scan of every case:

- SQLite: an FTS5 trigram index; the trigrams are OR-ed and FTS5's bm25 orders the matches;
- PostgreSQL: ``pg_trgm``'s GIN index answers each ``ILIKE '%abc%'``; the matches are
  ordered by the summed weights (the caller's idf) of the trigrams they contain.

Both indexes are kept by the database in the transaction that stores a case, so a case
accepted on one desk is a candidate on every desk once its write commits.
"""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import Connection, text

from bigramlm.support.store.cases import COLUMNS, StoredCase, from_row

#: A trigram of a query (lowercase letters only: nothing to escape in MATCH or ILIKE) and its weight.
Gram = tuple[str, float]


def candidates(conn: Connection, grams: Sequence[Gram], limit: int, intent: str | None = None) -> list[StoredCase]:
    """Up to ``limit`` cases sharing the most (weighted) ``grams``, of ``intent`` only when given."""
    grams = [(g, w) for g, w in grams if len(g) == 3 and g.isalpha() and g.islower()]
    if not grams or limit <= 0:
        return []
    args: dict[str, Any] = {"n": int(limit)}
    where = ""
    if intent is not None:
        args["intent"], where = intent, " AND c.intent = :intent"
    if conn.dialect.name == "sqlite":
        args["q"] = " OR ".join(f'"{g}"' for g, _ in grams)
        sql = (f"SELECT {_prefixed('c')} FROM cases_fts JOIN cases c ON c.id = cases_fts.rowid"
               f" WHERE cases_fts MATCH :q{where} ORDER BY cases_fts.rank, c.id LIMIT :n")
    else:
        for i, (g, w) in enumerate(grams):
            args[f"g{i}"], args[f"w{i}"] = f"%{g}%", float(w)
        matches = " OR ".join(f"c.message ILIKE :g{i}" for i in range(len(grams)))
        weight = " + ".join(f"CASE WHEN c.message ILIKE :g{i} THEN :w{i} ELSE 0 END" for i in range(len(grams)))
        sql = (f"SELECT {_prefixed('c')} FROM cases c WHERE ({matches}){where}"
               f" ORDER BY {weight} DESC, c.id LIMIT :n")
    return [from_row(r) for r in conn.execute(text(sql), args).fetchall()]


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{name.strip()}" for name in COLUMNS.split(","))
