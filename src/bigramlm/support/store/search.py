"""Similar-case candidates, found by the store's own engine (schema 8, ``migrations/versions/0008_case_search.py``).

The caller (``support.retrieval.CaseSearch``) picks the query's most informative character
trigrams and re-scores what comes back in its own TF-IDF space; the store only has to
return the cases that share the most of those trigrams, without a scan of every case:

- SQLite: an FTS5 trigram index; the trigrams are OR-ed and FTS5's bm25 orders the matches;
- PostgreSQL: ``pg_trgm``'s GIN index answers each ``ILIKE '%abc%'``; the matches are
  ordered by the summed weights (the caller's idf) of the trigrams they contain.

Either ranks only the newest ``WINDOW`` matches, so a search costs the same at any store
size: ranking every match grows with the store (see ``WINDOW``).

Both indexes are kept by the database in the transaction that stores a case, so a case
accepted on one desk is a candidate on every desk once its write commits.
"""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import Connection, text

from bigramlm.support.store.cases import COLUMNS, StoredCase, from_row

#: A trigram of a query (lowercase letters only: nothing to escape in MATCH or ILIKE) and its weight.
Gram = tuple[str, float]

#: How many of the newest matches are ranked. Ranking every match of a message's trigrams
#: walks a share of the whole store: on 1,000,000 synthetic cases (SQLite, 2 cores) 4 to 93 ms
#: a query for the benchmark's messages ("can I change the delivery address" matches 118,410
#: cases), against 4 to 11 ms with the newest 5,000 (2,000: 3 to 9 ms; 10,000: 4 to 16 ms).
#: A store with fewer matches than this ranks them all, as before.
WINDOW = 5000


def candidates(conn: Connection, grams: Sequence[Gram], limit: int, intent: str | None = None) -> list[StoredCase]:
    """Up to ``limit`` cases sharing the most (weighted) ``grams``, of ``intent`` only when given."""
    grams = [(g, w) for g, w in grams if len(g) == 3 and g.isalpha() and g.islower()]
    if not grams or limit <= 0:
        return []
    args: dict[str, Any] = {"n": int(limit), "window": WINDOW}
    where = ""
    if intent is not None:
        args["intent"], where = intent, " AND c.intent = :intent"
    if conn.dialect.name == "sqlite":
        args["q"] = " OR ".join(f'"{g}"' for g, _ in grams)
        newest = ("SELECT rowid AS id, bm25(cases_fts) AS score FROM cases_fts WHERE cases_fts MATCH :q"
                  " ORDER BY rowid DESC LIMIT :window")
        sql = (f"SELECT {_prefixed('c')} FROM ({newest}) m JOIN cases c ON c.id = m.id"
               f" WHERE 1 = 1{where} ORDER BY m.score, c.id LIMIT :n")
    else:
        for i, (g, w) in enumerate(grams):
            args[f"g{i}"], args[f"w{i}"] = f"%{g}%", float(w)
        matches = " OR ".join(f"c.message ILIKE :g{i}" for i in range(len(grams)))
        weight = " + ".join(f"CASE WHEN c.message ILIKE :g{i} THEN :w{i} ELSE 0 END" for i in range(len(grams)))
        newest = f"SELECT c.id FROM cases c WHERE ({matches}) ORDER BY c.id DESC LIMIT :window"
        sql = (f"SELECT {_prefixed('c')} FROM cases c WHERE c.id IN ({newest}){where}"
               f" ORDER BY {weight} DESC, c.id LIMIT :n")
    return [from_row(r) for r in conn.execute(text(sql), args).fetchall()]


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{name.strip()}" for name in COLUMNS.split(","))
