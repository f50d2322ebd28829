"""Learning from resolved cases, measured end to end on the Bitext sample.

1. A new kind of request. The support recipe trains with one intent left out entirely
   (``--exclude-intents``). Then, for k = 5, 20 and 50, a copy of that run ``learn``s k
   resolved cases of the new intent (its would-be train rows), and the assistant is
   measured on the new intent's test rows (``recall``: intent accuracy; ``chrf`` of the
   top suggestion) and on every other intent's test rows (``others_*``: forgetting).
   The reference is retrieval: the reply of the nearest instruction, once the k cases
   are in the index.
2. Team edits, through the desk's own path (suggest, edit the top suggestion, accept it
   with its ``suggestion_id``), for three kinds of edit on one intent: a sign-off
   appended, a sentence prepended, a phrase replaced. After m = 1, 3, 5 and 10 accepted
   edits, with no ``learn``, the share of new top suggestions for the intent's test rows
   that carry the edit, and for other intents' rows (spill-over); the seconds from the
   accept to the first suggestion that carries it; and the share after a ``learn``.

Prints one JSON object with ``--json``, and writes a plot of recall and chrF against k.
The same scenarios run on the bigram (``--model bigram``) for comparison.

    python benchmarks/learning.py --json                          # trains its base run (20 min) once
    python benchmarks/learning.py --json --base-run runs/learn-base   # reuse a base run
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import DEFAULT_DATA_DIR, ROOT, parser

NEW_INTENT = "track_refund"
SIGN_OFF = "Warm regards, the Acme Care Team."


def sample_csv() -> Path:
    os.environ.setdefault("BIGRAMLM_DATA_DIR", str(DEFAULT_DATA_DIR))
    return Path(os.environ["BIGRAMLM_DATA_DIR"]) / "bitext" / "bitext-sample.csv"


def train_base(out: Path, model: str, time_limit: float) -> None:
    from bigramlm.data import load_data
    from bigramlm.support.recipe import train_support

    data = load_data(str(sample_csv()), labels=True, exclude_intents=[NEW_INTENT])
    train_support(data, out, model_name=model, time_limit=time_limit, progress=False,
                  log=lambda m: print(m, file=sys.stderr))


def measure(run: Path, rows: list[Any], others: list[Any]) -> tuple[dict[str, float], dict[str, float]]:
    """(new intent's {recall, chrf}, other intents' {accuracy, chrf}) of the assistant now."""
    import sacrebleu

    from bigramlm.support.assistant import Assistant
    from bigramlm.support.settings import SuggestSettings

    assistant = Assistant.load(run, use_store=True)
    settings = SuggestSettings(n=3, drafts=3, max_new_tokens=400, temperature=0.8, top_p=0.95, seed=1337)
    out = []
    for group in (rows, others):
        results = assistant.suggest_many([r.message for r in group], settings)
        accuracy = sum(r.intent == g.intent for r, g in zip(results, group)) / len(group)
        chrf = sacrebleu.corpus_chrf([r.top_reply for r in results], [[g.reply for g in group]]).score
        out.append({"accuracy": round(accuracy, 4), "chrf": round(float(chrf), 2)})
    assistant.store.close()
    return {"recall": out[0]["accuracy"], "chrf": out[0]["chrf"]}, out[1]


def write_cases(path: Path, rows: list[Any], edit: bool = False) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["instruction", "response", "intent", "category"])
        for r in rows:
            writer.writerow([r.message, f"{r.reply}\n\n{SIGN_OFF}" if edit else r.reply, r.intent, r.category])
    return path


def retrieval_chrf(run: Path, rows: list[Any]) -> float:
    """The reply of the nearest instruction (train rows plus the learned cases) against the references."""
    import sacrebleu

    from bigramlm.support.assistant import Assistant

    assistant = Assistant.load(run, use_store=True)
    hits = assistant.index.search_many([r.message for r in rows], k=1)
    assistant.store.close()
    return round(float(sacrebleu.corpus_chrf([h[0][0].reply for h in hits], [[r.reply for r in rows]]).score), 2)


def new_intent(base: Path, work: Path, ks: list[int]) -> dict[str, Any]:
    from bigramlm.checkpoint import read_config
    from bigramlm.data.instructions import excluded_rows, read_split_rows
    from bigramlm.data.instructions import load_run_files
    from bigramlm.support.learning import learn

    spec = read_config(base).data
    cases = excluded_rows(spec, "train")
    test = read_split_rows(spec, load_run_files(base, spec), "test")
    rows = [r for r in test if r.intent == NEW_INTENT]
    others = [r for r in test if r.intent != NEW_INTENT]
    before, others_before = measure(base, rows, others)
    runs = []
    for k in ks:
        run = work / f"k{k}"
        shutil.copytree(base, run)
        result = learn(run, cases_path=write_cases(work / f"cases{k}.csv", cases[:k]))
        after, others_after = measure(run, rows, others)
        runs.append({"cases": k, "before": before, "after": after, "others_before": others_before,
                     "others_after": others_after, "learn_seconds": result.seconds,
                     "retrieval_chrf_after": retrieval_chrf(run, rows)})
        print(json.dumps(runs[-1]), file=sys.stderr)
    return {"intent": NEW_INTENT, "test_rows": len(rows), "runs": runs}


#: The three kinds of team edit, each made by agents on one intent's suggestions.
EDITS = {
    "sign-off appended": lambda text: f"{text}\n\n{SIGN_OFF}",
    "sentence prepended": lambda text: f"{GREETING} {text}",
    "phrase replaced": lambda text: text.replace(OLD_PHRASE, NEW_PHRASE),
}
EDIT_INTENT = "check_refund_policy"
GREETING = "Thank you for contacting Acme Care."
OLD_PHRASE, NEW_PHRASE = "terms and conditions", "Refund Charter of 2026"
#: Accepted edits after which the share of suggestions carrying the edit is measured.
EDIT_COUNTS = (1, 3, 5, 10)
#: Other intents' test rows measured for spill-over.
SPILL_ROWS = 40


def carried(kind: str, texts: list[str]) -> float | None:
    """Share of ``texts`` with the edit made (for a replaced phrase, of those that had it to replace)."""
    if kind == "sign-off appended":
        flags = [t.rstrip().endswith(SIGN_OFF) for t in texts]
    elif kind == "sentence prepended":
        flags = [t.lstrip().startswith(GREETING) for t in texts]
    else:
        flags = [NEW_PHRASE in t and OLD_PHRASE not in t for t in texts if OLD_PHRASE in t or NEW_PHRASE in t]
    return round(sum(flags) / len(flags), 4) if flags else None


def _tops(assistant: Any, rows: list[Any]) -> list[str]:
    from bigramlm.support.settings import SuggestSettings

    results = assistant.suggest_many([r.message for r in rows], SuggestSettings(n=3, drafts=3, max_new_tokens=400, temperature=0.8, top_p=0.95, seed=1337))
    return [r.suggestions[0].filled_text if r.suggestions else "" for r in results]


def _accept_edited(client: Any, row: Any, edit: Any) -> float:
    """Suggest, edit the top suggestion, accept it with its id, as an agent does; the time of the accept."""
    r = client.post("/api/suggest", json={"message": row.message, "n": 3, "seed": 7}).json()
    top = r["suggestions"][0]
    client.post("/api/cases", json={"message": row.message, "reply": edit(top["filled_text"]), "suggestion_id": top["id"],
                                    "intent": r["intent"], "category": r["category"]})
    return time.perf_counter()


def team_edit(base: Path, work: Path, kind: str) -> dict[str, Any]:
    """One kind of edit through the desk: after m accepted edits, the share of new top
    suggestions of the intent that carry it (and of other intents: spill-over), the seconds
    from the accept that made it a rule to the first suggestion carrying it, and after a learn."""
    from fastapi.testclient import TestClient

    from bigramlm.checkpoint import read_config
    from bigramlm.data.instructions import load_run_files, read_split_rows
    from bigramlm.serve.app import create_app
    from bigramlm.support.learning import learn

    spec = read_config(base).data
    files = load_run_files(base, spec)
    accepts = [r for r in files.train_rows if r.intent == EDIT_INTENT][: max(EDIT_COUNTS)]
    test = read_split_rows(spec, files, "test")
    rows = [r for r in test if r.intent == EDIT_INTENT]
    others = [r for r in test if r.intent != EDIT_INTENT][::7][:SPILL_ROWS]
    run = work / kind.replace(" ", "-")
    shutil.copytree(base, run)
    points, first_seconds = [], None
    with TestClient(create_app(run)) as client:
        assistant = client.app.state.desk.assistant
        done = 0
        for m in EDIT_COUNTS:
            while done < m:
                accepted_at = _accept_edited(client, accepts[done], EDITS[kind])
                done += 1
                if first_seconds is None:
                    r = client.post("/api/suggest", json={"message": rows[0].message, "n": 3, "seed": 1}).json()
                    if carried(kind, [s["filled_text"] for s in r["suggestions"][:1]]):
                        first_seconds = round(time.perf_counter() - accepted_at, 3)
            points.append({"accepted_edits": m, "rate": carried(kind, _tops(assistant, rows)),
                           "spill_over": carried(kind, _tops(assistant, others)) or 0.0})
            print(json.dumps({"edit": kind, **points[-1]}), file=sys.stderr)
    result = learn(run)
    with TestClient(create_app(run)) as client:
        after_learn = carried(kind, _tops(client.app.state.desk.assistant, rows))
    return {"kind": kind, "intent": EDIT_INTENT, "test_rows": len(rows), "by_accepted_edits": points,
            "seconds_to_first_carrying_suggestion": first_seconds, "rate_after_learn": after_learn,
            "learn_weights_kept": result.weights_kept, "learn_seconds": result.seconds}


def team_edits(base: Path, work: Path) -> list[dict[str, Any]]:
    return [team_edit(base, work, kind) for kind in EDITS]


def plot(report: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.6), dpi=100)
    recall_ax, chrf_ax = fig.subplots(1, 2)
    for name, block in report["models"].items():
        runs = block["new_intent"]["runs"]
        ks = [0] + [r["cases"] for r in runs]
        recall_ax.plot(ks, [runs[0]["before"]["recall"]] + [r["after"]["recall"] for r in runs], "o-", label=name)
        chrf_ax.plot(ks, [runs[0]["before"]["chrf"]] + [r["after"]["chrf"] for r in runs], "o-", label=name)
        chrf_ax.plot(ks[1:], [r["retrieval_chrf_after"] for r in runs], "x--", label=f"retrieval ({name} run)")
    recall_ax.set(title=f"new intent {NEW_INTENT}: recall", xlabel="resolved cases learned (k)", ylim=(-0.02, 1.02))
    chrf_ax.set(title="top suggestion chrF", xlabel="resolved cases learned (k)")
    for ax in (recall_ax, chrf_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png")


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--base-run", type=Path, default=None, help="reuse this support run trained without the new intent")
    p.add_argument("--bigram-run", type=Path, default=None, help="reuse this bigram run trained without it")
    p.add_argument("--time-limit", type=float, default=1200.0, help="budget of the base run (default 1200 s)")
    p.add_argument("--ks", type=int, nargs="+", default=[5, 20, 50])
    p.add_argument("--models", nargs="+", choices=["bigram", "gpt"], default=["bigram", "gpt"],
                   help="which models to measure (default both)")
    p.add_argument("--plot", type=Path, default=ROOT / "docs" / "learning.png")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bigramlm-learning-"))
    report: dict[str, Any] = {"models": {}}
    # The bigram first: its base run takes a minute, so a broken scenario shows up early.
    for model, given in (("bigram", args.bigram_run), ("gpt", args.base_run)):
        if model not in args.models:
            continue
        base = given or work / f"base-{model}"
        if given is None:
            started = time.time()
            train_base(base, model, args.time_limit)
            print(f"{model} base run trained in {time.time() - started:.0f} s", file=sys.stderr)
        report["models"][model] = {"team_edits": team_edits(base, work / model),
                                   "new_intent": new_intent(base, work / model, args.ks)}
    # The support recipe's model is the one the goals are about: its figures at the top level.
    report.update(report["models"].get("gpt", {}))
    plot(report, args.plot)
    report["plot"] = str(args.plot)
    print(json.dumps(report, indent=None if args.json else 2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
