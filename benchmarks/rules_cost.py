"""What the team edit rules cost a desk as accepts grow: an accept, GET /api/rules, and the
rules step of the first suggestion after an accept, at 0, 100, 1,000 and 10,000 accepts.

Issue 27 measured GET /api/rules at 0.04 s with no accepts and 6.1 s after 1,500 edited
ones: the rules were worked out again from every recent accept at each request. Now a
rule book reads each accept once (``support/rulebook.py``), so the figures at 10,000 are
printed as a ratio of those at 100 (and 0), measured in the same run. With
``--before-src`` (the ``src/`` of an older checkout, e.g. ``git worktree add ../before
506c02d``) the same steps run on it too, in their own process.

The accepts are a desk's mix on the tiny support run of the tests (4 intents): a 60-word
suggestion edited with one of 20 sign-offs, often a changed phrase, in one of four a note
of its own; one in ten says it is of a made-up intent (as the probe did); a quarter come
from each of 3 named agents, a quarter from none. They are stored in batches (the
store's own ``accept``), then each measured step is one more accept through the API.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _common import parser, report

SIZES = (0, 100, 1_000, 10_000)
INTENTS = ("cancel_order", "track_order", "get_refund", "contact_human_agent")
SIGN_OFFS = [f"Kind regards, team {k} of Acme Care." for k in range(20)]
BASE = ("I understand you want to cancel order 5521 and I am sorry it did not work out. Visit the website, sign in, "
        "open My Orders and choose Cancel next to the order. The refund reaches your card within 5 business days. "
        "If the order has shipped already, refuse the parcel or return it within 30 days. We are here to help you.")


def _sent(rng: random.Random) -> str:
    """An agent's reply: a sign-off, often a changed phrase, and in one of four a note of its own."""
    sent = BASE.replace("here to help", rng.choice(["glad to help", "here to help", "happy to assist"]))
    note = f" Your ticket is {rng.randrange(10**5)}." if rng.random() < 0.25 else ""
    return f"{sent}{note} {rng.choice(SIGN_OFFS)}"


def _fill(store: Any, n: int, rng: random.Random) -> None:
    """``n`` accepts of the desk's mix, stored in batches of 1,000 (one transaction each)."""
    from bigramlm.data.cases import Case
    from bigramlm.support.store import StoredCase

    for start in range(0, n, 1000):
        rows = []
        for _ in range(min(1000, n - start)):
            sid = uuid.uuid4().hex
            intent = f"zz_{rng.randrange(10**6)}" if rng.random() < 0.1 else rng.choice(INTENTS)
            rows.append((sid, intent, _sent(rng), rng.choice([None, "ann", "bo", "cy"])))
        store.record_suggestions([(sid, BASE, -1.0) for sid, *_ in rows])
        store.accept([StoredCase(Case("message", sent, intent), None, sid, True, 0.2, agent) for sid, intent, sent, agent in rows])


def _step(client: Any, desk: Any, rng: random.Random) -> tuple[float, float, float]:
    """One accept through the API, then the rules step of the next suggestion, then GET /api/rules: seconds each."""
    sid = uuid.uuid4().hex
    desk.store.record_suggestions([(sid, BASE, -1.0)])
    body = {"message": "please cancel my purchase", "reply": _sent(rng), "suggestion_id": sid,
            "intent": rng.choice(INTENTS)}
    start = time.perf_counter()
    assert client.post("/api/cases", json=body).status_code == 201
    accepted = time.perf_counter()
    desk.assistant.refresh_cases()  # what a suggestion does first (the similar cases), before its rules
    ruled = time.perf_counter()
    desk.assistant.rules()
    ruled_end = time.perf_counter()
    assert client.get("/api/rules").status_code == 200
    return accepted - start, ruled_end - ruled, time.perf_counter() - ruled_end


def worker(run_dir: str, repeats: int) -> dict[str, Any]:
    """Every size's median seconds, and the first GET /api/rules of a desk started on 10,000."""
    from fastapi.testclient import TestClient

    from bigramlm.serve.app import create_app

    rng, points, done = random.Random(27), [], 0
    with TestClient(create_app(run_dir)) as client:
        desk = client.app.state.desk  # type: ignore[attr-defined]
        for size in SIZES:
            _fill(desk.store, size - done, rng)
            client.get("/api/rules")  # the accepts stored in bulk read, as a desk would have read them one by one
            steps = [_step(client, desk, rng) for _ in range(repeats)]
            done = size + repeats
            points.append({"accepts": size, **{name: round(statistics.median(s[i] for s in steps) * 1000, 3)
                                               for i, name in enumerate(("accept_ms", "rules_step_ms", "get_rules_ms"))}})
    with TestClient(create_app(run_dir)) as client:
        start = time.perf_counter()
        rules = client.get("/api/rules").json()["rules"]
        cold = time.perf_counter() - start
    return {"points": points, "cold_first_get_rules_ms": round(cold * 1000, 1), "rules_at_the_end": len(rules)}


def measure(label: str, run_dir: Path, src: str | None, repeats: int) -> dict[str, Any]:
    """``worker`` in a fresh process of the tree at ``src`` (this checkout's when None: named,
    so that an installed bigramlm elsewhere is not the one measured)."""
    env = dict(os.environ)
    tree = Path(src) if src is not None else Path(__file__).resolve().parents[1] / "src"
    env["PYTHONPATH"] = str(tree.resolve()) + os.pathsep + env.get("PYTHONPATH", "")
    code = f"import json, rules_cost; print(json.dumps(rules_cost.worker({str(run_dir)!r}, {repeats})))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=Path(__file__).parent, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"{label} failed: {out.stderr.strip()[-2000:]}")
    return {"code": label, **json.loads(out.stdout.strip().splitlines()[-1])}


def _lines(result: dict[str, Any]) -> list[str]:
    by = {p["accepts"]: p for p in result["points"]}
    out = [f"-- {result['code']} (first GET /api/rules of a desk started on 10,000: {result['cold_first_get_rules_ms']} ms)"]
    for name in ("accept_ms", "rules_step_ms", "get_rules_ms"):
        row = "  ".join(f"{by[s][name]:>9.3f}" for s in SIZES)
        ratios = "  ".join(f"/ {s:,}: {by[SIZES[-1]][name] / max(by[s][name], 1e-6):.2f}x" for s in SIZES[:-1])
        out.append(f"{name:<14} {row}   10,000 {ratios}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--before-src", default=None, help="the src/ folder of an older checkout, measured the same way")
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from desk_helpers import train_support_run

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        base = train_support_run(Path(tmp))
        trees = [("this checkout", None)] + ([("before", args.before_src)] if args.before_src else [])
        for label, src in trees:
            run = Path(tmp) / label.replace(" ", "-")
            shutil.copytree(base, run)
            results.append(measure(label, run, src, args.repeats))
    header = "ms at accepts " + "  ".join(f"{s:>9,}" for s in SIZES)
    lines = [header] + [line for r in results for line in _lines(r)]
    report("rules_cost", {"sizes": list(SIZES), "repeats": args.repeats, "results": results}, args.json, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
