"""Helpers for the desk tests: a tiny support run, free ports, a server in a thread."""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import httpx

INTENTS = {
    "cancel_order": ("ORDER", ["I want to cancel order {{Order Number}}", "please cancel my purchase",
                               "how can I cancel the order I made", "cancel my last order now"],
                     "I understand you want to cancel order {{Order Number}}. Visit {{Website URL}} and choose Cancel."),
    "track_order": ("ORDER", ["where is my package", "track my order please", "my order has not arrived",
                              "when will my order {{Order Number}} arrive"],
                    "You can track order {{Order Number}} at {{Website URL}} under My Orders."),
    "get_refund": ("REFUND", ["I want my money back", "how do I get a refund", "refund my payment please",
                              "can I be refunded for this"],
                   "I am sorry to hear that. Call {{Customer Support Phone Number}} and we will start your refund."),
    "contact_human_agent": ("CONTACT", ["let me talk to a person", "I need a human agent", "can I speak with someone",
                                        "put me through to an agent"],
                            "Of course, I am connecting you with a human agent of {{Company Name}} now."),
}
#: A second wording of each intent's reply, as agents vary theirs: the desk then has two
#: resolved replies to offer beside the model's drafts.
SECOND_REPLIES = {
    "cancel_order": "Sure, order {{Order Number}} can be cancelled: visit {{Website URL}} and choose Cancel.",
    "track_order": "Order {{Order Number}} can be tracked at {{Website URL}} under My Orders.",
    "get_refund": "Sorry about that! Call {{Customer Support Phone Number}} and we will start your refund today.",
    "contact_human_agent": "Certainly, a human agent of {{Company Name}} will be with you now.",
}


def write_support_csv(path: Path, copies: int = 4) -> Path:
    """A small instruction table: 4 intents x 16 rows, with placeholders in the replies (two
    wordings of each intent's reply)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["flags", "instruction", "category", "intent", "response"])
        for intent, (category, messages, reply) in INTENTS.items():
            for k in range(copies):
                for m, message in enumerate(messages):
                    writer.writerow(["B", f"{message}{'!' * k}", category, intent, SECOND_REPLIES[intent] if m % 2 else reply])
    return path


def train_support_run(workdir: Path) -> Path:
    """A counts bigram trained on the small table; seconds on one core."""
    from bigramlm.data import load_data
    from bigramlm.training import TrainConfig, train

    data_path = write_support_csv(workdir / "support.csv")
    out = workdir / "support-run"
    train(load_data(str(data_path)), out, config=TrainConfig(method="counts"), progress=False)
    return out


def train_text_run(workdir: Path) -> Path:
    """A counts bigram on plain text (no assistant)."""
    from bigramlm.data import load_data
    from bigramlm.training import TrainConfig, train

    text = workdir / "plain.txt"
    text.write_text("the cat sat on the mat. the dog sat on the log.\n" * 50, encoding="utf-8")
    out = workdir / "text-run"
    train(load_data(str(text)), out, config=TrainConfig(method="counts"), progress=False)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base: str, timeout: float = 60.0, proc: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{base} did not become healthy in {timeout} s")


class ThreadServer:
    """uvicorn serving an app on a free loopback port, in a daemon thread, configured as
    ``serve`` does: on a socket ``bind_listener`` bound (its connections are not uvicorn's own)."""

    def __init__(self, app: Any, root_path: str = ""):
        import uvicorn

        from bigramlm.serve.network import bind_listener
        from bigramlm.serve.server import uvicorn_config

        self.sock = bind_listener("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", self.port, log_level="warning", root_path=root_path))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "ThreadServer":
        self.thread.start()
        wait_healthy(self.base, timeout=30)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
#: What every test's nginx needs around its ``http`` block's own lines: all in the test's folder.
NGINX_CONFIG = """
{user}
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log {dir}/access.log;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
{http}
}}
"""


@contextmanager
def nginx(folder: Path, http: str, client: httpx.Client, probe: str) -> Iterator[subprocess.Popen]:
    """nginx with ``http`` (the lines of its http block) from ``folder``, until ``client``
    gets 200 from ``probe`` through it; stopped on exit."""
    assert NGINX is not None, "nginx is not installed"
    conf = folder / "nginx.conf"
    conf.write_text(NGINX_CONFIG.format(user="user root;" if os.geteuid() == 0 else "", dir=folder, http=http))
    proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(folder), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if client.get(probe).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not come up: {proc.stderr.read().decode() if proc.stderr else ''}")
            time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


#: Every guarded route, the stream and /v1 among them, with a body each accepts (method, path, JSON).
ROUTES = [("GET", "/api/stats", None), ("GET", "/api/cases", None), ("GET", "/api/rules", None), ("GET", "/api/me", None),
          ("POST", "/api/suggest", {"message": "where is my package", "max_new_tokens": 10}),
          ("POST", "/api/suggest/stream", {"message": "where is my package", "max_new_tokens": 10}),
          ("POST", "/api/cases", {"message": "m", "reply": "r"}),
          ("POST", "/api/feedback", {"suggestion_id": "x", "action": "dismiss"}),
          ("GET", "/v1/models", None), ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})]
