"""The fluency check's floor and what it costs a run's load.

On a support run (``--run``): builds what a draft is read against (``readability.RunText``:
the run's words and the word trigram model of its replies, ``support.fluency``) as the
assistant does at load, and times it against the reference of the same run, the words
alone (``readability.Vocabulary``, what the load built before the fluency check); prints
the floor, the share of the run's val replies below it (real replies it would refuse), and
the score of the issue's broken example.

    .venv/bin/python benchmarks/fluency.py --run runs/support [--repeats 3] [--json]
"""

from __future__ import annotations

import json
import sys

from _common import best_of, parser

#: The draft issue 26 saw shown: every word real, the whole broken.
EXAMPLE = ("I apologize for my best! I'm here to help you're here to assist you with finding the order number "
           "{{Order Number}}.")


def main() -> int:
    from bigramlm.data.instructions import load_run_files, read_split_rows
    from bigramlm.checkpoint import load_run
    from bigramlm.support.assistant import require_instruction_run
    from bigramlm.support.readability import RunText, Vocabulary

    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="a support run directory")
    args = p.parse_args()
    run = load_run(args.run)
    spec = require_instruction_run(run)
    files = load_run_files(run.path, spec)
    rows = files.train_rows
    words_s, _ = best_of(lambda: Vocabulary.of([t for r in rows for t in (r.message, r.reply)]), args.repeats)
    both_s, reading = best_of(lambda: RunText.of(rows), args.repeats)
    fluency = reading.fluency
    val = [r.reply for r in read_split_rows(spec, files, "val")]
    below = sum(fluency.below_floor(reply) for reply in val)
    out = {"train_replies": len(rows), "words_only_s": round(words_s, 3), "with_fluency_s": round(both_s, 3),
           "ratio": round(both_s / words_s, 2), "floor": round(fluency.floor, 3), "held_out": fluency.held_out,
           "val_replies": len(val), "val_below_floor": below, "example_score": round(fluency.score(EXAMPLE) or 0.0, 3)}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"load: the run's words alone {words_s:.3f} s; with the word model and its floor {both_s:.3f} s "
          f"({out['ratio']}x), {len(rows):,} train replies")
    print(f"floor {out['floor']} (1st percentile of {fluency.held_out} held-out train replies); val replies below it: "
          f"{below} of {len(val)} ({100 * below / max(1, len(val)):.1f}%); the issue's example scores {out['example_score']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
