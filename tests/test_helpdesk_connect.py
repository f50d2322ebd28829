"""``bigramlm connect``: secrets from a file or the environment, never a flag, never in an error."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bigramlm.errors import BigramLMError
from bigramlm.helpdesk.secrets import Secret, read_secret_file, secret


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "bigramlm", *args], capture_output=True, text=True, timeout=120,
                          env={**{k: v for k, v in os.environ.items() if not k.endswith(("_TOKEN", "_SECRET"))}, **(env or {})})


def test_secrets_come_from_the_environment_or_a_file(tmp_path):
    path = tmp_path / "secrets.env"
    path.write_text("# the helpdesk's\nCHATWOOT_API_TOKEN = 'from-file'\nBIGRAMLM_HOOK_SECRET=s3\n")
    values = read_secret_file(path)
    assert secret("CHATWOOT_API_TOKEN", values, environ={}) == Secret("from-file")
    assert secret("CHATWOOT_API_TOKEN", values, environ={"CHATWOOT_API_TOKEN": "from-env"}) == Secret("from-env")
    assert "from-env" not in repr(Secret("from-env")) and "from-env" not in f"{Secret('from-env')}"
    with pytest.raises(BigramLMError, match="ZAMMAD_API_TOKEN is not set"):
        secret("ZAMMAD_API_TOKEN", values, environ={})
    path.write_text("just-a-token-value\n")
    with pytest.raises(BigramLMError, match="line 1 is not KEY=value") as info:
        read_secret_file(path)
    assert "just-a-token-value" not in str(info.value)


def test_connect_refuses_in_one_line_without_a_secret(tmp_path):
    r = run_cli("connect", "chatwoot", str(tmp_path), "--url", "http://127.0.0.1:9")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "CHATWOOT_API_TOKEN is not set" in r.stderr
    r = run_cli("connect", "zammad", str(tmp_path), "--url", "ftp://x", env={"ZAMMAD_API_TOKEN": "tok-value-1"})
    assert r.returncode == 2 and "url must be" in r.stderr and "tok-value-1" not in r.stderr
    r = run_cli("connect", "rt", str(tmp_path), "--url", "http://127.0.0.1:9")
    assert r.returncode == 2 and "RT_TOKEN" in r.stderr
    assert run_cli("connect", "--help").returncode == 0
    assert "--token" not in run_cli("connect", "--help").stdout  # no secret is ever a flag


def test_connect_chatwoot_posts_a_note_and_never_logs_a_secret(tmp_path):
    """The command end to end: secrets from a file, a webhook in, the note out to a fake
    Chatwoot on loopback, and neither secret in what the connector printed."""
    import os
    import time

    import httpx
    from desk_helpers import ThreadServer, free_port, train_support_run, wait_healthy
    from helpdesk_fake import FakeHelpdesk, fixture

    run, port = train_support_run(tmp_path), free_port()
    secrets = tmp_path / "secrets.env"
    secrets.write_text("CHATWOOT_API_TOKEN=api-t0ken-value\nBIGRAMLM_HOOK_SECRET=hook-s3cret-value\n")
    fake = FakeHelpdesk("chatwoot", "api-t0ken-value")
    log = tmp_path / "connect.log"
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_TOKEN", "_SECRET"))}
    with ThreadServer(fake.app()) as api, open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bigramlm", "connect", "chatwoot", str(run), "--url", api.base,
                                 "--port", str(port), "--secrets", str(secrets), "--store", str(tmp_path / "cases.sqlite")],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_healthy(base, timeout=120, proc=proc)
            r = httpx.post(f"{base}/hooks/chatwoot?secret=hook-s3cret-value", json=fixture("chatwoot", "webhook_message_created.json"))
            assert r.json() == {"status": "queued"}
            assert httpx.post(f"{base}/hooks/chatwoot?secret=wrong", json={}).status_code == 401
            deadline = time.monotonic() + 120
            while not fake.named("create message") and time.monotonic() < deadline:
                time.sleep(0.2)  # waiting on the note, bounded by the deadline
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert len(fake.named("create message")) == 1 and fake.violations == []
    printed = log.read_text()
    assert "note posted on conversation 12" in printed  # it logs what it does
    assert "api-t0ken-value" not in printed and "hook-s3cret-value" not in printed
