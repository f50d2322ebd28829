"""Store targets (``--store``, ``BIGRAMLM_STORE``, ``store copy --to``): a URL that does not
parse, a file that is not a regular one and a foreign database are each one line with the
password masked, exit 2, nothing created; a copy of a store a desk is writing to leaves no
acknowledged case behind."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from bigramlm.cli import main
from bigramlm.errors import BigramLMError
from bigramlm.support.store import CaseStore, store_path
from desk_helpers import ThreadServer, train_support_run

#: Mistyped PostgreSQL URLs, each with the password PW, and what the refusal says of it.
MALFORMED = [
    ("postgresql:postgres:PW@127.0.0.1", "does not parse"),  # the probe's: no //
    ("postgres//postgres:PW@127.0.0.1/db", "does not parse"),  # no colon after the scheme
    ("postgresql://postgres:PW@127.0.0.1:abc/db", "does not parse"),  # a port that is not a number
    ("postgresql://postgres:P@W@127.0.0.1/db", "has an @ in its host"),  # an @ in the password, not escaped
    ("postgresql://postgres:PW@127.0.0.1:99999/db", "has port 99999"),
    ("postgresql://postgres:PW@[::1/db", "does not parse"),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    return train_support_run(tmp_path_factory.mktemp("targets"))


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A copy of the run, its own store and all."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


def _refused(capsys, argv: list[str], says: str) -> str:
    """``bigramlm ARGV`` exits 2 with one ``error:`` line that contains ``says``, and no password."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and says in err, err
    assert "PW" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize("url,why", MALFORMED)
def test_a_url_that_does_not_parse_is_one_line_with_its_password_masked_and_creates_nothing(run, tmp_path, capsys,
                                                                                         monkeypatch, url, why):
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    err = _refused(capsys, ["store", "info", str(run), "--store", url], why)
    assert err.startswith("error: --store '") and "***@" in err
    monkeypatch.setenv("BIGRAMLM_STORE", url)  # named as the variable it came from
    assert _refused(capsys, ["agents", "list", str(run)], why).startswith("error: BIGRAMLM_STORE '")
    monkeypatch.delenv("BIGRAMLM_STORE")
    assert _refused(capsys, ["store", "copy", str(run), "--to", url], why).startswith("error: --to '")
    monkeypatch.setenv("TEAM_STORE", url)
    assert _refused(capsys, ["store", "copy", str(run), "--to-env", "TEAM_STORE"], why).startswith(
        "error: --to-env TEAM_STORE '")
    assert sorted(os.listdir(tmp_path)) == before  # no SQLite file named after the URL


def test_the_probes_mistyped_url_is_one_line_through_the_real_command(run, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bigramlm", "store", "info", str(run)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120, stdin=subprocess.DEVNULL,
                          env={**os.environ, "BIGRAMLM_STORE": "postgresql:postgres:PW@127.0.0.1"})
    assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.count("\n") == 1, proc.stderr
    assert "PW" not in proc.stderr and "postgresql:postgres:***@127.0.0.1" in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["run"]


def test_a_file_path_with_an_at_or_a_colon_is_still_a_file(run, tmp_path):
    with CaseStore(tmp_path / "team@desk.sqlite") as one, CaseStore(tmp_path / "a:b.sqlite") as two:
        assert one.path == tmp_path / "team@desk.sqlite" and two.path == tmp_path / "a:b.sqlite"


def test_a_sqlite_target_that_is_not_a_regular_file_is_refused_creating_nothing(run, tmp_path, capsys):
    fifo, folder = tmp_path / "fifo", tmp_path / "folder"
    os.mkfifo(fifo)
    folder.mkdir()
    (tmp_path / "to-null").symlink_to(os.devnull)
    (tmp_path / "to-nothing").symlink_to(tmp_path / "gone" / "x.sqlite")
    before = sorted(os.listdir(tmp_path))
    device = "is not a regular file (a device, FIFO or socket)"
    _refused(capsys, ["store", "info", str(run), "--store", os.devnull], f"--store {os.devnull} {device}")
    _refused(capsys, ["store", "copy", str(run), "--to", "/dev/zero"], f"--to /dev/zero {device}")
    _refused(capsys, ["store", "copy", str(run), "--to", "sqlite:////dev/zero"], f"--to /dev/zero {device}")
    _refused(capsys, ["store", "info", str(run), "--store", str(fifo)], device)
    _refused(capsys, ["store", "info", str(run), "--store", str(tmp_path / "to-null")], device)
    _refused(capsys, ["store", "info", str(run), "--store", str(folder)], "is a directory")
    _refused(capsys, ["store", "info", str(run), "--store", str(tmp_path / "to-nothing")], "is a link to nothing")
    _refused(capsys, ["store", "info", str(run), "--store", str(tmp_path / "none" / "c.sqlite")], "no directory")
    for side in ("-journal", "-wal", "-shm"):
        assert not os.path.exists(os.devnull + side) and not os.path.exists("/dev/zero" + side)
    assert sorted(os.listdir(tmp_path)) == before and sorted(os.listdir(folder)) == []


def test_store_copy_takes_its_target_from_a_variable_or_a_file_instead_of_the_command_line(run, tmp_path, capsys,
                                                                                           monkeypatch):
    target = tmp_path / "team.sqlite"
    monkeypatch.setenv("TEAM_STORE", str(target))
    assert main(["store", "copy", str(run), "--to-env", "TEAM_STORE"]) == 0
    assert f"copied {store_path(run)} to {target}" in capsys.readouterr().out
    second = tmp_path / "second.sqlite"
    (tmp_path / "url").write_text(f"{second}\nignored\n", encoding="utf-8")
    assert main(["store", "copy", str(run), "--to-file", str(tmp_path / "url")]) == 0  # a moved store copies again
    with CaseStore(target) as one, CaseStore(second) as two:
        assert one.count() == two.count()
    _refused(capsys, ["store", "copy", str(run), "--to-env", "NO_SUCH_VARIABLE"], "--to-env NO_SUCH_VARIABLE: no such")
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    _refused(capsys, ["store", "copy", str(run), "--to-file", str(tmp_path / "empty")], "holds no store on its first line")
    with pytest.raises(SystemExit) as both:  # argparse's own one line
        main(["store", "copy", str(run), "--to-env", "TEAM_STORE", "--to", str(target)])
    assert both.value.code == 2 and "argument --to: not allowed with argument --to-env" in capsys.readouterr().err
    _refused(capsys, ["store", "info", str(run), "--to-env", "TEAM_STORE"], "--to-env TEAM_STORE is for `store copy`")


def test_the_readmes_move_with_the_team_store_exported_copies_the_runs_own_file(run, tmp_path, capsys, monkeypatch):
    team = str(tmp_path / "team.sqlite")  # PostgreSQL in docs/deployment.md; any store here
    monkeypatch.setenv("BIGRAMLM_STORE", team)
    assert main(["store", "copy", str(run), "--to-env", "BIGRAMLM_STORE"]) == 0
    assert f"copied {store_path(run)} to {team}" in capsys.readouterr().out
    assert main(["agents", "add", "ana", str(run)]) == 0  # on the team's store now
    with CaseStore(team) as copied:
        assert [a.name for a in copied.agents()] == ["ana"]


def _foreign(path: Path, revision: str) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL)")
        db.execute("DELETE FROM alembic_version")
        db.execute("INSERT INTO alembic_version VALUES (?)", (revision,))
    db.close()


def test_another_applications_alembic_history_is_named_as_such_not_as_a_newer_bigramlm(tmp_path, capsys):
    app = tmp_path / "app.sqlite"
    for revision in ("ae1027a6acf", "0042"):  # Alembic's own kind of id, and a number without our tables
        _foreign(app, revision)
        with pytest.raises(BigramLMError, match=f"the database at {app} holds another application's Alembic history "
                                                f"\\(revision '{revision}' is not bigramlm's\\)"):
            CaseStore(app)
    with sqlite3.connect(app) as db:  # refused before anything of ours was created in it
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["alembic_version"]
    db.close()
    ours = tmp_path / "ours.sqlite"
    CaseStore(ours).close()
    _foreign(ours, "0099")  # a later bigramlm's revision in a store of ours
    with pytest.raises(BigramLMError, match="written by a newer bigramlm"):
        CaseStore(ours)


def _post_cases(client: httpx.Client, answers: list[tuple[str, int, str]], stop: threading.Event) -> None:
    """A desk's agent resolving cases one after another, as fast as the desk answers (bounded)."""
    for i in range(3000):
        if stop.is_set():
            return
        r = client.post("/api/cases", json={"message": f"case {i}", "reply": "resolved"})
        answers.append((f"case {i}", r.status_code, r.json().get("detail", "")))


def _until(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def copy_while_a_desk_writes(run: Path, target: str) -> tuple[list[tuple[str, int, str]], int, httpx.Response]:
    """``store copy RUN --to TARGET`` while a desk on the run's SQLite store takes cases: the
    desk's answers in order, the copy's exit status, and the desk's answer to a case after it."""
    from bigramlm.serve.app import create_app

    answers: list[tuple[str, int, str]] = []
    stop = threading.Event()
    with ThreadServer(create_app(run)) as server, httpx.Client(base_url=server.base, timeout=60) as client:
        writer = threading.Thread(target=_post_cases, args=(client, answers, stop))
        writer.start()
        try:
            _until(lambda: len(answers) >= 20)
            status = main(["store", "copy", str(run), "--to", target])
            done = len(answers)
            _until(lambda: len(answers) >= done + 5)  # the desk goes on being asked after the copy
        finally:
            stop.set()
            writer.join(timeout=120)
        after = client.post("/api/cases", json={"message": "after the copy", "reply": "resolved"})
    return answers, status, after


def check_no_acknowledged_case_left_behind(answers: list[tuple[str, int, str]], target: str) -> None:
    acknowledged = {message for message, status, _ in answers if status == 201}
    with CaseStore(target) as copied:
        assert acknowledged - {c.case.message for c in copied.list_cases(limit=10_000)} == set()
        assert copied.count() == len(acknowledged)
    refused = [(status, detail) for _, status, detail in answers if status != 201]
    assert acknowledged and refused  # the desk wrote before the copy, and was refused after it
    # Refused while the copy held the lock (busy: try again) or after it (restart on the new store).
    assert all(status == 503 and ("try again" in detail or "restarted on the new store" in detail)
               for status, detail in refused), refused


def check_the_old_store_is_retired(after: httpx.Response, out: str, run: Path) -> None:
    """The copy's last line says to restart the desks; the desk still on the old store refuses."""
    assert out.splitlines()[-1].startswith(f"copied {store_path(run)} to ") and "restart every desk" in out
    assert after.status_code == 503 and "restarted on the new store" in after.json()["detail"]


def test_a_copy_while_a_desk_writes_leaves_no_acknowledged_case_behind(run, tmp_path, capsys):
    target = str(tmp_path / "team.sqlite")
    answers, status, after = copy_while_a_desk_writes(run, target)
    assert status == 0
    check_no_acknowledged_case_left_behind(answers, target)
    check_the_old_store_is_retired(after, capsys.readouterr().out, run)


def test_a_write_held_up_by_a_copy_past_the_busy_timeout_is_a_503_to_retry_storing_nothing(run, monkeypatch):
    """A copy longer than the desk's busy timeout (10 s; ``benchmarks/store_copy.py``: about
    140,000 rows fit in it on PostgreSQL): the desk's write gives up, stores nothing, and says try again."""
    from bigramlm.serve.app import create_app
    from bigramlm.support.store import database

    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 300)
    with ThreadServer(create_app(run)) as server, httpx.Client(base_url=server.base, timeout=60) as client:
        with CaseStore(store_path(run)) as copying, copying.db.write():  # what store copy holds on its source
            r = client.post("/api/cases", json={"message": "during the copy", "reply": "resolved"})
        assert r.status_code == 503 and r.json()["detail"].endswith("nothing was stored, try again")
        assert client.post("/api/cases", json={"message": "retried", "reply": "resolved"}).status_code == 201
    with CaseStore(store_path(run)) as store:
        assert [c.case.message for c in store.list_cases()] == ["retried"]


@pytest.mark.postgres
def test_a_copy_to_postgresql_while_a_desk_writes_leaves_no_acknowledged_case_behind(run, pg_url, capsys):
    """The move of a desk (docs/deployment.md) to the team's store, done while its agents work."""
    from bigramlm.data.cases import Case

    answers, status, after = copy_while_a_desk_writes(run, pg_url)
    assert status == 0
    check_no_acknowledged_case_left_behind(answers, pg_url)
    check_the_old_store_is_retired(after, capsys.readouterr().out, run)
    with CaseStore(pg_url) as team:  # the team's desks go on from the copied ids
        assert team.add_case(Case("next", "after the move")) == max(c.id for c in team.list_cases(limit=10_000))


def test_every_command_refuses_a_copied_store_naming_the_new_one(run, tmp_path, capsys):
    target = tmp_path / "team.sqlite"
    assert main(["store", "copy", str(run), "--to", str(target)]) == 0
    capsys.readouterr()
    moved = f"case store {store_path(run)} was copied to {target} by `bigramlm store copy` and takes no more writes"
    _refused(capsys, ["agents", "add", "ana", str(run)], moved)
    _refused(capsys, ["learn", str(run)], moved)
    _refused(capsys, ["serve", str(run), "--port", "0"], moved)
    assert main(["store", "info", str(run)]) == 0
    assert f"copied to {target}: it takes no more writes" in capsys.readouterr().out
    assert main(["agents", "add", "ana", str(run), "--store", str(target)]) == 0  # the new store takes them
