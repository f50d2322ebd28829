"""Agents with names (support.store.agents): tokens kept hashed, every route guarded once a
run has agents (the stream and the OpenAI routes too), and what each agent does recorded
under its name."""

from __future__ import annotations

import sqlite3

import httpx
import pytest
from fastapi.testclient import TestClient

from bigramlm.cli import main
from bigramlm.serve.app import create_app
from bigramlm.support.store import CaseStore, store_path
from desk_helpers import ROUTES, train_support_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_support_run(tmp_path_factory.mktemp("agents"))


def _token(run_dir, name: str, capsys) -> str:
    assert main(["agents", "add", name, str(run_dir)]) == 0
    return capsys.readouterr().out.strip()


def test_agents_are_added_with_a_token_kept_only_as_its_digest(run, capsys):
    token = _token(run, "ana", capsys)
    assert token.startswith("bla_") and len(token) > 40
    with sqlite3.connect(store_path(run)) as db:
        (stored,) = db.execute("SELECT token_sha256 FROM agents WHERE name = 'ana'").fetchone()
    assert token not in stored and len(stored) == 64
    assert main(["agents", "add", "ana", str(run)]) == 2  # one token per agent: rotate gives a new one
    assert "exists already" in capsys.readouterr().err
    assert main(["agents", "add", "bad name!", str(run)]) == 2
    assert "agent name" in capsys.readouterr().err
    assert main(["agents", "list", str(run), "--json"]) == 0
    assert '"name": "ana"' in capsys.readouterr().out
    assert main(["agents", "remove", "ana", str(run)]) == 0 and main(["agents", "remove", "ana", str(run)]) == 2
    capsys.readouterr()




def test_a_desk_with_agents_takes_only_active_agents_tokens_on_every_route(run, capsys):
    ben = _token(run, "ben", capsys)
    gone = _token(run, "gus", capsys)
    assert main(["agents", "remove", "gus", str(run)]) == 0
    with TestClient(create_app(run, token="the-shared-token")) as c:
        for method, path, body in ROUTES:
            for header in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {gone}"},
                           {"Authorization": "Bearer the-shared-token"}):  # with agents, the shared token is no pass
                r = c.request(method, path, json=body, headers=header)
                assert r.status_code == 401, (path, header, r.status_code)
        assert c.get("/healthz").status_code == 200 and c.get("/").status_code == 200  # still open
        assert c.get("/api/me", headers={"Authorization": f"Bearer {ben}"}).json() == {"agent": "ben"}
        with c.stream("POST", "/api/suggest/stream", json=ROUTES[5][2], headers={"Authorization": f"Bearer {ben}"}) as r:
            assert r.status_code == 200 and "event: done" in "".join(r.iter_text())
    assert main(["agents", "remove", "ben", str(run)]) == 0
    capsys.readouterr()


def test_what_an_agent_does_is_recorded_under_its_name(run, capsys):
    tokens = {name: _token(run, name, capsys) for name in ("cleo", "dan")}
    auth = {name: {"Authorization": f"Bearer {t}"} for name, t in tokens.items()}
    with TestClient(create_app(run)) as c:
        shown = c.post("/api/suggest", json={"message": "please cancel my purchase", "n": 2, "seed": 1},
                       headers=auth["cleo"]).json()["suggestions"]
        first, second = shown[0], shown[1]
        r = c.post("/api/cases", json={"message": "please cancel my purchase", "reply": first["filled_text"] + " Thanks!",
                                       "suggestion_id": first["id"]}, headers=auth["cleo"])
        assert r.status_code == 201
        assert c.post("/api/feedback", json={"suggestion_id": second["id"], "action": "dismiss"},
                      headers=auth["dan"]).status_code == 201
        cleo = c.get("/api/stats", params={"agent": "cleo"}, headers=auth["dan"]).json()
        dan = c.get("/api/stats", params={"agent": "dan"}, headers=auth["dan"]).json()
        everyone = c.get("/api/stats", headers=auth["dan"]).json()
        assert c.get("/api/stats", params={"agent": "no such!"}, headers=auth["dan"]).status_code == 422
    assert cleo["accepted"] == 1 and cleo["accepted_edited"] == 1 and cleo["acceptance_rate"] == 1.0
    assert cleo["suggestions_shown"] == len(shown) and cleo["dismissed"] == 0
    assert dan["accepted"] == 0 and dan["dismissed"] == 1 and dan["suggestions_shown"] == 0
    assert everyone["accepted"] >= 1 and everyone["dismissed"] >= 1
    with CaseStore.for_run(run) as store:
        assert store.list_cases(limit=10**6)[-1].agent == "cleo"
    for name in tokens:
        assert main(["agents", "remove", name, str(run)]) == 0
    capsys.readouterr()


def test_without_agents_the_loopback_desk_works_as_before(run):
    with TestClient(create_app(run)) as c:
        assert c.get("/api/stats").status_code == 200 and c.get("/api/me").json() == {"agent": None}


def test_serving_beyond_loopback_is_allowed_with_agents_instead_of_a_token(run, capsys):
    from bigramlm.serve.network import check_exposure
    from bigramlm.support.store import run_has_agents

    assert not run_has_agents(run)
    with pytest.raises(Exception, match="bigramlm agents add"):
        check_exposure("0.0.0.0", None, run_has_agents(run))
    _token(run, "eve", capsys)
    check_exposure("0.0.0.0", None, run_has_agents(run))
    assert main(["agents", "remove", "eve", str(run)]) == 0


def test_two_desks_on_one_run_see_each_others_cases_at_once(tmp_path):
    """Two desk processes' worth of apps on one run (one SQLite store in WAL mode): a case
    accepted on one is among the other's similar cases on its next request, and the figures
    are the team's. (Several machines need the PostgreSQL store, which is not built yet.)"""
    from desk_helpers import ThreadServer

    run_dir = train_support_run(tmp_path)
    message = "my parcel from order 7731 is stuck in customs, what now?"
    with ThreadServer(create_app(run_dir)) as one, ThreadServer(create_app(run_dir)) as two:
        shown = httpx.post(f"{one.base}/api/suggest", json={"message": message, "n": 1, "seed": 1}, timeout=30).json()
        reply = "Customs holds are released within 3 days; we have asked them about order 7731."
        saved = httpx.post(f"{one.base}/api/cases", json={"message": message, "reply": reply,
                                                           "suggestion_id": shown["suggestions"][0]["id"]}, timeout=30)
        assert saved.status_code == 201
        seen = httpx.post(f"{two.base}/api/suggest", json={"message": message, "n": 1, "seed": 1}, timeout=30).json()
        assert seen["similar_cases"][0]["reply"] == reply and seen["similar_cases"][0]["id"] == saved.json()["id"]
        assert httpx.get(f"{two.base}/api/stats").json()["accepted"] == 1
