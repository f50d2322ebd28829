"""Similar-case candidates, found by the store's own engine (schema 8, ``migrations/versions/0008_case_search.py``).

The caller (``support.retrieval.CaseSearch``) picks the query's most informative character
trigrams and re-scores what comes back in its own TF-IDF space; the store only has to
return the cases that share the most of those trigrams, without a scan of every case:

- SQLite: an FTS5 trigram index; the trigrams are OR-ed, and FTS5's bm25 orders the newest
  ``WINDOW`` matches (FTS5 walks its postings newest first, so that costs the same at any size);
- PostgreSQL: the newest ``POSTGRESQL_WINDOW`` cases, matching or not, are tested with one
  case-insensitive regular expression of the trigrams (``pg_trgm``'s GIN index answers it
  where the trigrams are rare), and the matches ordered by the summed weights (the caller's
  idf) of the trigrams they contain. See ``POSTGRESQL_WINDOW`` for why rows, not matches.

Both indexes are kept by the database in the transaction that stores a case, so a case
accepted on one desk is a candidate on every desk once its write commits.
"""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import Connection, text

from bigramlm.support.store.cases import COLUMNS, StoredCase, from_row, last_id

#: A trigram of a query (lowercase letters only: nothing to escape in MATCH or ILIKE) and its weight.
Gram = tuple[str, float]

#: How many of the newest matches are ranked. Ranking every match of a message's trigrams
#: walks a share of the whole store: on 1,000,000 synthetic cases (SQLite, 2 cores) 4 to 93 ms
#: a query for the benchmark's messages ("can I change the delivery address" matches 118,410
#: cases), against 4 to 11 ms with the newest 5,000 (2,000: 3 to 9 ms; 10,000: 4 to 16 ms).
#: A store with fewer matches than this ranks them all, as before.
WINDOW = 5000

#: How many of the newest cases a PostgreSQL search tests. PostgreSQL cannot walk a GIN
#: index newest first, so "the newest 5,000 matches" (``WINDOW``) became a backward walk of
#: the primary key that tests every row until 5,000 match: the rarer the trigrams, the longer
#: the walk. On 1,000,000 synthetic cases (2-core AMD EPYC, benchmarks/store_search.py) 15
#: messages took 264 ms median and 1.7 s at most, through the whole table where the trigrams
#: were rare. Bounding the rows instead: 18 ms median / 33 ms max for 5,000, 38 / 64 ms for
#: 10,000, 47 / 74 ms for 20,000 (the planner takes the GIN index for rare trigrams and the
#: key's range for common ones). The cost: a case older than the newest 10,000 (ten days of
#: a team accepting 1,000 a day) is no longer among a PostgreSQL desk's similar cases.
POSTGRESQL_WINDOW = 10_000


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
        args["q"], args["window"] = " OR ".join(f'"{g}"' for g, _ in grams), WINDOW
        newest = ("SELECT rowid AS id, bm25(cases_fts) AS score FROM cases_fts WHERE cases_fts MATCH :q"
                  " ORDER BY rowid DESC LIMIT :window")
        sql = (f"SELECT {_prefixed('c')} FROM ({newest}) m JOIN cases c ON c.id = m.id"
               f" WHERE 1 = 1{where} ORDER BY m.score, c.id LIMIT :n")
    else:
        args["floor"], args["pattern"] = last_id(conn) - POSTGRESQL_WINDOW, "(" + "|".join(g for g, _ in grams) + ")"
        for i, (g, w) in enumerate(grams):
            args[f"g{i}"], args[f"w{i}"] = f"%{g}%", float(w)
        weight = " + ".join(f"CASE WHEN c.message ILIKE :g{i} THEN :w{i} ELSE 0 END" for i in range(len(grams)))
        # The floor is a literal to the planner (not a subquery), so it can weigh the key's
        # range against the GIN index for these trigrams.
        sql = (f"SELECT {_prefixed('c')} FROM cases c WHERE c.id > :floor AND c.message ~* :pattern{where}"
               f" ORDER BY {weight} DESC, c.id LIMIT :n")
    return [from_row(r) for r in conn.execute(text(sql), args).fetchall()]


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{name.strip()}" for name in COLUMNS.split(","))
