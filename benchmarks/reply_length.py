"""What a short reply (``support.length``) costs: chrF against the reference replies, words,
and the readability gate, as the replies are and short, in one run.

On a run's split (the test rows by default), each row's reply is taken the two ways the
desk offers resolved replies without a model: the reply of the nearest training row of the
row's own intent, and the consensus of its 10 nearest of that intent (the most central
reply). Each is scored as it is and short (its leading 1, 2 or 3 sentences and its closing
line) against the reference as it is, and, for short, also against the reference made
short the same way (what the team would write if short were its house style). The
readability gate (``readability.check``: no unknown word, no loop) is run on every text.

    .venv/bin/python benchmarks/reply_length.py --run runs/support [--split test] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from unittest import mock

from bigramlm.data.instructions import load_run_files, read_split_rows
from bigramlm.support import length as length_module
from bigramlm.support.metrics import reply_figures
from bigramlm.support.ranking import most_central
from bigramlm.support.readability import Vocabulary, check
from bigramlm.support.retrieval import INDEX_FILE, CaseIndex


def _figures(name: str, replies: list[str], references: list[str], intents: list[str | None],
             vocabulary: Vocabulary) -> dict[str, object]:
    figures = reply_figures(replies, references, intents)
    words = [len(r.split()) for r in replies]
    return {"replies": name, "chrf": round(figures.chrf, 2), "chrf_macro": round(figures.chrf_macro or 0.0, 2),
            "median_words": statistics.median(words), "mean_words": round(statistics.mean(words), 1),
            "readable": round(sum(check(r, vocabulary).ok for r in replies) / len(replies), 4)}


def _short(texts: list[str], lead: int) -> list[str]:
    with mock.patch.object(length_module, "LEAD_SENTENCES", lead):
        return [length_module.shorten(t) for t in texts]


def main() -> int:
    from bigramlm.checkpoint import read_config

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="an instruction run directory")
    p.add_argument("--split", default="test")
    p.add_argument("--data", default=None, help="the run's dataset, where it was not trained from")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    spec = read_config(args.run).data
    files = load_run_files(args.run, spec, args.data)
    rows = read_split_rows(spec, files, args.split, args.data)
    index = CaseIndex.cached(files.train_rows, f"{args.run}/{INDEX_FILE}")
    vocabulary = Vocabulary.of([t for r in files.train_rows for t in (r.message, r.reply)])
    intents = [r.intent for r in rows]
    hits = index.search_many([r.message for r in rows], 10, within=intents)
    groups = [[c.reply for c, _ in found] for found in hits]
    sources = {"nearest": [g[0] for g in groups], "consensus": [g[i] for g, i in zip(groups, most_central(groups))]}
    references = [r.reply for r in rows]
    table = [_figures("reference itself", references, references, intents, vocabulary)]
    for name, replies in sources.items():
        table.append(_figures(f"{name}, as is", replies, references, intents, vocabulary))
        for lead in (1, 2, 3):
            short = _short(replies, lead)
            table.append(_figures(f"{name}, short (lead {lead})", short, references, intents, vocabulary))
            table.append(_figures(f"{name}, short (lead {lead}) vs short reference", short, _short(references, lead),
                                  intents, vocabulary))
    if args.json:
        print(json.dumps({"run": args.run, "split": args.split, "rows": len(rows), "table": table}, indent=2))
        return 0
    print(f"reply length on {len(rows)} {args.split} rows of {args.run} (chrF micro / macro over intents)")
    for t in table:
        print(f"  {t['replies']:52s} {t['chrf']:6.2f} / {t['chrf_macro']:6.2f}   words median {t['median_words']:>5}, "
              f"mean {t['mean_words']:>6}   readable {100 * float(t['readable']):5.1f}%")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
