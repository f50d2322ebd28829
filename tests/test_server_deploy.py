"""The desk behind a real reverse proxy, as docs/deployment.md says: nginx
terminating TLS, mounting the desk under /desk/ and passing its own Host name
(``serve --allowed-host``, ``--root-path``). Skipped where nginx or openssl is not installed."""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest

from bigramlm.serve.app import create_app
from bigramlm.serve.network import allowed_host_names, bind_listener
from desk_helpers import NGINX, ThreadServer, free_port, nginx, train_support_run

pytestmark = pytest.mark.skipif(NGINX is None or shutil.which("openssl") is None, reason="nginx or openssl not installed")

SERVER = """
  server {{
    listen 127.0.0.1:{port} ssl;
    server_name desk.example.test;
    ssl_certificate {dir}/cert.pem;
    ssl_certificate_key {dir}/key.pem;
    location = /desk {{ return 301 /desk/; }}
    location /desk/ {{
      proxy_pass http://127.0.0.1:{backend}/;
      proxy_set_header Host $host;
      proxy_set_header X-Request-ID $request_id;
      proxy_http_version 1.1;
      proxy_buffering off;
      proxy_read_timeout 60s;
    }}
  }}
"""


@pytest.fixture
def proxy(tmp_path):
    """nginx with TLS in front of a desk mounted at /desk/ (a token guards its API)."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem"), "-days", "1", "-subj", "/CN=desk.example.test"],
                   check=True, capture_output=True)
    app = create_app(train_support_run(tmp_path), token="tok",
                     allowed_hosts=allowed_host_names("127.0.0.1", ("desk.example.test",)))
    with ThreadServer(app, root_path="/desk") as desk:
        port = free_port()
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=False, headers={"Host": "desk.example.test"},
                          timeout=30) as client, \
                nginx(tmp_path, SERVER.format(dir=tmp_path, port=port, backend=desk.port), client, "/desk/healthz"):
            yield client, desk


def test_the_desk_behind_nginx_with_tls_under_a_prefix(proxy):
    client, desk = proxy
    auth = {"Authorization": "Bearer tok"}
    page = client.get("/desk/")
    assert page.status_code == 200 and 'href="static/desk.css"' in page.text  # relative: it works under /desk/
    assert client.get("/desk/static/desk.js").status_code == 200
    assert client.get("/desk", follow_redirects=False).headers["location"].endswith("/desk/")
    assert client.get("/desk/api/stats").status_code == 401 and client.get("/desk/api/stats", headers=auth).status_code == 200
    r = client.post("/desk/api/suggest", json={"message": "please cancel order 5521", "n": 2, "seed": 1}, headers=auth)
    assert r.status_code == 200 and len(r.headers["x-request-id"]) == 32  # nginx's $request_id, kept
    assert r.json()["request_id"] == r.headers["x-request-id"]
    with client.stream("POST", "/desk/api/suggest/stream", json={"message": "where is my package", "n": 1},
                       headers=auth) as stream:
        events = [line for line in stream.iter_lines() if line.startswith("event: ")]
    assert events[0] == "event: understanding" and events[-1] == "event: done"
    assert client.get("/desk/v1/models", headers=auth).json()["data"][0]["object"] == "model"
    assert client.get("/desk/openapi.json").json()["servers"] == [{"url": "/desk"}]
    # Straight to the desk, a name it was not told of is refused.
    assert httpx.get(f"{desk.base}/healthz", headers={"Host": "evil.example"}).status_code == 421


UPSTREAMS = """
  upstream desks {{ server 127.0.0.1:{starting}; server 127.0.0.1:{desk}; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://desks; proxy_set_header Host 127.0.0.1; }}
  }}
"""


def test_nginx_sends_a_starting_desks_requests_to_another_desk(tmp_path):
    """A desk still loading its run is bound but not listening (``serve.server``): nginx's
    connection to it is refused, which ``proxy_next_upstream``'s default retries on the next
    desk, a POST included, since nothing was sent. A 503 would have reached the agent."""
    starting = bind_listener("127.0.0.1", 0)
    try:
        with ThreadServer(create_app(train_support_run(tmp_path))) as desk:
            port = free_port()
            http = UPSTREAMS.format(starting=starting.getsockname()[1], desk=desk.port, port=port)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client, \
                    nginx(tmp_path, http, client, "/healthz"):
                for _ in range(4):
                    r = client.post("/api/suggest", json={"message": "where is my package", "max_new_tokens": 10})
                    assert r.status_code == 200, r.text
        assert "Connection refused" in (tmp_path / "error.log").read_text()  # the starting desk was tried
    finally:
        starting.close()
