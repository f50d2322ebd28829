"""The case store on PostgreSQL: the same behaviour as on SQLite, shared by several processes.

Each test gets its own database on a throwaway server (``pg_url``, ``tests/pg_cluster.py``).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from bigramlm.data.cases import Case
from bigramlm.errors import BigramLMError
from bigramlm.support.store import SCHEMA_VERSION, AcceptedReply, CaseStore, LearnChanges, StoredCase, SuggestionConflict

pytestmark = pytest.mark.postgres


def test_a_fresh_database_gets_the_schema_and_keeps_what_the_sqlite_store_keeps(pg_url):
    with CaseStore(pg_url) as store:
        assert store.path is None and "postgresql" in store.name and store.count() == 0
        ids = [store.add_case(Case(f"message {i}", f"reply {i}", intent="track_order", category="ORDER"))
               for i in range(5)]
        assert ids == sorted(ids) and [c.case.message for c in store.list_cases(offset=1, limit=2)] == ["message 1", "message 2"]
        assert store.list_cases(after_id=ids[3])[0].id == ids[4]
        store.record_learn([Case("file q", "file r", "track_order", "ORDER")], ids[:3], LearnChanges("w0", "w1", token="t1"))
        store.record_learn([Case("file q", "file r", "track_order", "ORDER")], [], LearnChanges("w1", "w2"))
        assert store.count() == 6  # the file's case is stored once however often it is learned
        assert [c.id for c in store.cases_since_last_learn()] == ids[3:]
        assert store.learn_by_token("t1").cases == 4 and store.last_learn().changes.weights_after == "w2"
        store.record_suggestions([("s1", "Shown one", -1.0, "Base one"), ("s2", "Shown two", -2.0)], "r1", agent="ann")
        case_id = store.add_case(Case("q", "Shown one, edited", intent="track_order"), suggestion_id="s1", edited=True,
                                 edit_distance=0.2)
        assert store.accept([StoredCase(Case("q", "again"), suggestion_id="s1")]) == [(case_id, False)]
        with pytest.raises(SuggestionConflict):
            store.dismiss_suggestion("s1")
        first = store.dismiss_suggestion("s2", "off-brand", agent="ann")
        assert first.created and store.dismiss_suggestion("s2").created is False
        with pytest.raises(SuggestionConflict):
            store.add_case(Case("q", "Shown two"), suggestion_id="s2")
        assert store.dismissed_texts() == ["Shown two"] and store.dismissed_texts(exclude_reasons=["off-brand"]) == []
        replies, top = store.accepted_replies({"track_order"}, 5)
        assert replies == [AcceptedReply(case_id, "track_order", None, "Base one", "Shown one", "Shown one, edited")]
        assert store.accepted_replies({"track_order"}, 5, after_id=top) == ([], top)  # read once
        stats = store.desk_stats()
        assert (stats.accepted, stats.dismissed, stats.acceptance_rate, stats.light_edit_acceptance_rate) == (1, 1, 1.0, 1.0)
        assert stats.last_learned_id == ids[-1] + 1 and stats.cases_since_last_learn == 3  # the file case, learned
        assert store.desk_stats("ann").dismissed == 1 and store.desk_stats("bob").suggestions_shown == 0
        store.set_rule("r-1", False, "a rule")
        store.set_rule("r-1", True, "a rule")
        assert store.rule_settings() == {"r-1": True}
        token = store.add_agent("ann")
        assert store.identify(token.encode()) == (True, "ann") and store.identify(b"wrong") == (True, None)
        assert store.remove_agent("ann") and store.identify(token.encode()) == (False, None)
        assert store.undo_learn(store.last_learn().id) == 0 and store.integrity_check() == "ok"
    with psycopg.connect(pg_url) as conn:  # the schema Alembic made, and the version mirrored for people
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(f"{SCHEMA_VERSION:04d}",)]
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
        kind = conn.execute("SELECT data_type FROM information_schema.columns WHERE table_name = 'cases'"
                            " AND column_name = 'created_at'").fetchone()
        assert kind == ("double precision",)  # not REAL: a timestamp keeps its fraction of a second


def test_a_store_of_a_newer_schema_is_refused_in_one_line(pg_url):
    CaseStore(pg_url).close()
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    with pytest.raises(BigramLMError, match="newer bigramlm"):
        CaseStore(pg_url)


def test_another_applications_alembic_history_is_named_as_such(pg_url):
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('1975ea83b712')")
    with pytest.raises(BigramLMError, match="holds another application's Alembic history "
                                            r"\(revision '1975ea83b712' is not bigramlm's\): give the case store a database") as e:
        CaseStore(pg_url)
    assert str(e.value).startswith(f"the database at {pg_url} holds")
    with psycopg.connect(pg_url) as conn:  # nothing of ours was created beside the other application's tables
        tables = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'").fetchall()
        assert tables == [("alembic_version",)]


def test_a_server_that_is_not_there_is_one_line():
    with pytest.raises(BigramLMError, match=r"cannot open case store postgresql://nobody:\*\*\*@127.0.0.1:9/none: .*refused") as e:
        CaseStore("postgresql://nobody:secret@127.0.0.1:9/none")
    assert "secret" not in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(BigramLMError, match="neither a SQLite file nor PostgreSQL"):
        CaseStore("mysql://x@y/z")


def test_desks_racing_on_the_same_suggestions_store_each_case_once(pg_url):
    """Two store objects (two desks) and 16 threads accept and dismiss the same 60
    suggestions at once: each ends accepted once or dismissed, never both, never twice."""
    stores = [CaseStore(pg_url), CaseStore(pg_url)]
    try:
        stores[0].record_suggestions([(f"s{i}", f"text {i}", -1.0) for i in range(60)], "r")
        outcomes: list[tuple[str, str, object]] = []
        lock = threading.Lock()

        def act(n: int) -> None:
            store, sid = stores[n % 2], f"s{(n * 7) % 60}"
            try:
                if n % 3 == 0:
                    result: object = store.dismiss_suggestion(sid)
                    kind = "dismiss"
                else:
                    result, kind = store.accept([StoredCase(Case("q", f"reply {n}"), suggestion_id=sid)])[0], "accept"
            except SuggestionConflict:
                result, kind = None, "conflict"
            with lock:
                outcomes.append((kind, sid, result))

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(act, range(360)))
        cases = stores[1].list_cases(limit=10_000)
        accepted = [c.suggestion_id for c in cases]
        assert len(accepted) == len(set(accepted))  # a suggestion is one case however many accepted it
        dismissed = {sid for kind, sid, r in outcomes if kind == "dismiss" and r is not None}
        assert not dismissed & set(accepted)  # never both
        acknowledged = {r[0] for kind, _, r in outcomes if kind == "accept"}  # type: ignore[index]
        assert acknowledged == {c.id for c in cases}  # every acknowledged case is there
        assert stores[0].desk_stats().accepted == len(cases)
    finally:
        for s in stores:
            s.close()


def test_one_learner_at_a_time_on_a_shared_store(pg_url):
    one, two = CaseStore(pg_url), CaseStore(pg_url)
    try:
        with one.learn_lock():
            with pytest.raises(BigramLMError, match="another learn .* is running on the store postgresql"):
                with two.learn_lock():
                    pass
        with two.learn_lock():  # released with the block
            pass
    finally:
        one.close()
        two.close()


@pytest.fixture(scope="module")
def support_run(tmp_path_factory):
    from desk_helpers import train_support_run

    return train_support_run(tmp_path_factory.mktemp("pg-run"))


def _fill(store: CaseStore) -> None:
    """A bit of everything a desk writes: cases (one learned), suggestions, a dismissal, a rule, an agent."""
    store.add_agent("ann")
    store.record_suggestions([("s1", "Shown one 🙂", -1.25, "Base"), ("s2", "Shown two", None)], "r1", agent="ann")
    store.add_case(Case("q1", "Shown one 🙂 edited", "track_order", "ORDER"), suggestion_id="s1", edited=True, edit_distance=0.1)
    store.dismiss_suggestion("s2", "wrong intent", agent="ann")
    store.record_learn([Case("file q", "file r")], [1], LearnChanges("w0", "w1", token="tok"))
    store.set_rule("rule-a", False, "Say 'kind regards'")


def test_store_copy_moves_a_sqlite_store_to_postgresql_checked(support_run, pg_url, tmp_path, capsys):
    import json
    import shutil

    from bigramlm.cli import main
    from bigramlm.support.store import store_path

    run = tmp_path / "run"
    shutil.copytree(support_run, run)
    with CaseStore.for_run(run) as local:
        _fill(local)
        before = [c.to_dict() for c in local.list_cases(limit=100)]
    assert main(["store", "copy", str(run), "--to", pg_url, "--json"]) == 0
    copied = json.loads(capsys.readouterr().out)
    assert copied["same"] and {t["table"]: t["rows"] for t in copied["tables"]} == {
        "meta": 1, "agents": 1, "suggestions": 2, "cases": 2, "learns": 1, "feedback": 1, "rule_settings": 1,
        "conversation_cases": 0, "helpdesk_deliveries": 0}
    with CaseStore(pg_url) as team:
        assert [c.to_dict() for c in team.list_cases(limit=100)] == before  # ids, timestamps and all
        with CaseStore.for_run(run, moved_ok=True) as old:  # the old store, moved: only read now
            assert team.desk_stats().to_dict() == old.desk_stats().to_dict()
        assert team.add_case(Case("new", "after the copy")) == 3  # the sequence continues past the copied ids
        assert team.rule_settings() == {"rule-a": False} and team.agents()[0].name == "ann"
    # The target must be empty: a second copy into it is refused in one line.
    assert main(["store", "copy", str(run), "--to", pg_url]) == 2
    assert capsys.readouterr().err.startswith("error: --to postgresql://postgres@127.0.0.1:")  # and "is not empty"
    assert main(["store", "copy", str(run), "--to", "mysql://a@b/c"]) == 2
    assert capsys.readouterr().err == "error: --to 'mysql://a@b/c' is neither a SQLite file nor PostgreSQL (postgresql://USER@HOST/DATABASE)\n"
    # Every command that reads the store takes --store (or BIGRAMLM_STORE).
    assert main(["store", "info", str(run), "--store", pg_url, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["cases"] == 3 and info["schema_version"] == SCHEMA_VERSION and info["store"].startswith("postgresql://")
    assert main(["rules", str(run), "--store", pg_url, "--json"]) == 0
    assert main(["agents", "list", str(run), "--store", pg_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["agents"][0]["name"] == "ann"
    assert store_path(run).stat().st_size > 0  # the SQLite store is left as it was


def test_a_second_learn_on_the_shared_store_is_refused_in_one_line(support_run, pg_url, tmp_path):
    """The run directory's own lock cannot see another machine; the store's advisory lock can:
    a learn on a second copy of the run (another machine's shared folder) is refused while one runs."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    run = tmp_path / "run"
    shutil.copytree(support_run, run)
    with CaseStore(pg_url) as store, store.learn_lock():
        proc = subprocess.run([sys.executable, "-m", "bigramlm", "learn", str(run), "--store", pg_url], capture_output=True,
                              text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "another learn (or undo) is running on the store postgresql://" in proc.stderr
    with CaseStore(pg_url) as store:
        store.add_case(Case("How do I track my order?", "Your order ships today."))
    ok = subprocess.run([sys.executable, "-m", "bigramlm", "learn", str(run), "--store", pg_url, "--json", "--steps", "2"],
                        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                        env={**os.environ, "BIGRAMLM_STORE": "/nonexistent/ignored.sqlite"})
    assert ok.returncode == 0, ok.stderr  # --store wins over BIGRAMLM_STORE
    assert json.loads(ok.stdout)["cases"] == 1 and json.loads(ok.stdout)["weights_kept"]
    with CaseStore(pg_url) as store:  # the learn is recorded in the team's store, its case marked learned
        assert store.cases_since_last_learn() == [] and store.last_learn().cases == 1


def test_two_learns_at_once_on_two_machines_one_runs_one_is_refused(support_run, pg_url, tmp_path):
    """Two copies of the run (two machines' folders, so the run directory's lock cannot see
    both) on one store: of two learns started together, one runs and one is refused."""
    import os
    import shutil
    import subprocess
    import sys

    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        shutil.copytree(support_run, run)
    with CaseStore(pg_url) as store:
        store.add_cases([StoredCase(Case(f"How do I track order {i}?", f"Order {i} ships today.")) for i in range(20)])
    # Long enough (a time limit, not a step count) that the two overlap whatever the machine.
    argv = ["learn", "--store", pg_url, "--steps", "1000000", "--time-limit", "6", "--json"]
    procs = [subprocess.Popen([sys.executable, "-m", "bigramlm", argv[0], str(run), *argv[1:]], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, env=dict(os.environ))
             for run in runs]
    outcomes = sorted((p.wait(timeout=300), p.stderr.read()) for p in procs)
    assert [code for code, _ in outcomes] == [0, 2], outcomes
    refused = outcomes[1][1]
    assert refused.count("\n") == 1 and "another learn (or undo) is running on the store postgresql://" in refused
    with CaseStore(pg_url) as store:
        assert len(store.recent_learns(10)) == 1 and store.cases_since_last_learn() == []


def test_without_the_postgresql_extra_a_store_url_is_one_line_naming_it(support_run):
    import subprocess
    import sys

    code = ("import sys; sys.modules['psycopg'] = None; from bigramlm.cli import main; "
            f"sys.exit(main(['store', 'info', {str(support_run)!r}, '--store', 'postgresql://x@127.0.0.1:9/y']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "pip install 'bigramlm[postgresql]'" in proc.stderr


def test_a_resolved_conversation_is_one_case_on_postgresql(pg_url):
    from bigramlm.data.conversation import Turn, conversation

    with CaseStore(pg_url) as store:
        conv = conversation("T-9", "zammad", [Turn("customer", "cancel order 5521"), Turn("agent", "Cancelled.")])
        case = StoredCase(Case("cancel order 5521", "Cancelled.", "cancel_order", None, "helpdesk"))
        first, again = store.add_conversation_case(conv, case), store.add_conversation_case(conv, case)
        assert first[1] and again == (first[0], False) and store.count() == 1
        source = store.conversation_source(first[0])
        assert source is not None and (source.helpdesk, source.conversation_id) == ("zammad", "T-9")
        assert store.claim_delivery("zammad", "d-1") and not store.claim_delivery("zammad", "d-1")
