"""The desk's HTTP API: every route, every bound, bad bodies, limits, auth, logging."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient

from bigramlm.errors import BigramLMError
from bigramlm.serve.limits import ServerLimits
from bigramlm.serve.app import create_app
from bigramlm.serve.network import check_exposure
from desk_helpers import train_support_run, train_text_run

SUGGEST_KEYS = {"intent", "category", "intent_probability", "suggestions", "similar_cases", "replaced_characters"}
SUGGESTION_KEYS = {"id", "text", "filled_text", "score", "unfilled_placeholders", "mangled_placeholders"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("desk-api")
    return {"support": train_support_run(work), "text": train_text_run(work)}


@pytest.fixture(scope="module")
def client(runs):
    app = create_app(runs["support"], limits=ServerLimits(max_concurrent=2))
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def text_client(runs):
    with TestClient(create_app(runs["text"])) as c:
        yield c


def sse(text: str) -> list[tuple[str, object]]:
    """Parse a server-sent-events body into (event, data) pairs."""
    out = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        event, data = "message", ""
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
        out.append((event, data if data == "[DONE]" else json.loads(data)))
    return out


# --- meta ---------------------------------------------------------------------------------


def test_healthz_docs_and_page(client):
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["assistant"] is True
    schema = client.get("/openapi.json").json()
    for path in ("/api/suggest", "/api/suggest/stream", "/api/cases", "/api/stats", "/healthz",
                 "/v1/completions", "/v1/chat/completions", "/v1/models"):
        assert path in schema["paths"], path
    # The real bounds are in the schema.
    suggest_schema = schema["components"]["schemas"]["SuggestRequest"]["properties"]
    assert suggest_schema["n"]["maximum"] == 8 and suggest_schema["message"]["maxLength"] == 2000
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/desk.js").status_code == 200
    assert client.get("/api/config").json()["limits"]["max_n"] == 8


def test_schema_and_validation_use_this_apps_bounds(runs):
    limits = ServerLimits(max_n=3, max_message_chars=50, max_page=7)
    with TestClient(create_app(runs["text"], limits=limits)) as c:
        schema = c.get("/openapi.json").json()
        suggest_schema = schema["components"]["schemas"]["SuggestRequest"]["properties"]
        assert suggest_schema["n"]["maximum"] == 3 and suggest_schema["message"]["maxLength"] == 50
        params = {p["name"]: p for p in schema["paths"]["/api/cases"]["get"]["parameters"]}
        assert params["limit"]["schema"]["maximum"] == 7
        r = c.post("/api/suggest", json={"message": "hi", "n": 4})
        assert r.status_code == 422 and r.json()["detail"].startswith("n:") and "le=3" in r.json()["detail"]
        assert c.get("/api/cases", params={"limit": 8}).status_code == 422
        assert c.get("/api/cases", params={"limit": 7}).status_code == 200


def test_page_script_never_parses_html():
    """Model text is inserted with textContent; no HTML sinks exist in the page's script."""
    from bigramlm.serve.app import STATIC_DIR

    script = (STATIC_DIR / "desk.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    assert "<script>" not in (STATIC_DIR / "desk.html").read_text(encoding="utf-8")  # no inline script (CSP)


# --- suggest ------------------------------------------------------------------------------


def test_suggest_returns_the_assist_object_and_records_it(client):
    before = client.get("/api/stats").json()["suggestion_requests"]
    r = client.post("/api/suggest", json={"message": "I want to cancel my order 🙂", "n": 3, "seed": 7, "max_new_tokens": 120})
    assert r.status_code == 200, r.text
    body = r.json()
    assert SUGGEST_KEYS <= set(body)
    assert body["intent"] in {"cancel_order", "track_order", "get_refund", "contact_human_agent"}
    assert 0.0 <= body["intent_probability"] <= 1.0
    assert body["replaced_characters"] >= 1  # the emoji is not in the vocabulary
    assert 1 <= len(body["suggestions"]) <= 3
    for s in body["suggestions"]:
        assert SUGGESTION_KEYS <= set(s)
    assert body["similar_cases"] and {"message", "reply"} <= set(body["similar_cases"][0])
    assert client.get("/api/stats").json()["suggestion_requests"] == before + 1


def test_suggest_stream_sends_understanding_tokens_then_done(client):
    r = client.post("/api/suggest/stream", json={"message": "where is my package", "n": 2, "seed": 3, "max_new_tokens": 80})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse(r.text)
    kinds = [e for e, _ in events]
    assert kinds[0] == "understanding" and kinds[-1] == "done" and "token" in kinds
    streamed: dict[int, str] = {}
    for kind, data in events:
        if kind == "token":
            streamed[data["index"]] = streamed.get(data["index"], "") + data["text"]
    done = events[-1][1]
    assert SUGGEST_KEYS <= set(done)
    for s in done["suggestions"]:
        if s["source"] == "model":
            assert streamed[s["index"]].strip() == s["text"]  # the tokens are the reply, as generated
    for d in done["drafts"]:  # every draft, shown or not, is what was streamed
        assert streamed[d["index"]].strip() == d["text"]


@pytest.mark.parametrize(
    "body,field",
    [
        ({"message": ""}, "message"),
        ({"message": "x" * 2001}, "message"),
        ({"message": "hi", "n": 0}, "n"),
        ({"message": "hi", "n": 9}, "n"),
        ({"message": "hi", "max_new_tokens": 0}, "max_new_tokens"),
        ({"message": "hi", "max_new_tokens": 1001}, "max_new_tokens"),
        ({"message": "hi", "temperature": -0.1}, "temperature"),
        ({"message": "hi", "top_p": 0}, "top_p"),
        ({"message": "hi", "top_k": 0}, "top_k"),
        ({"message": "hi", "surprise": 1}, "surprise"),
        ({"n": 2}, "message"),
    ],
)
def test_suggest_bounds_name_the_broken_one(client, body, field):
    for path in ("/api/suggest", "/api/suggest/stream"):
        r = client.post(path, json=body)
        assert r.status_code == 422, r.text
        detail = r.json()
        assert detail["field"] == field and detail["detail"].startswith(f"{field}:")


def test_bad_json_wrong_type_and_oversized_bodies(client):
    r = client.post("/api/suggest", content=b'{"message": "hi",', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
    r = client.post("/api/suggest", content=b"message=hi", headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415
    r = client.post("/api/cases", content=b'{"message": "hi"}', headers={"content-type": "text/plain"})
    assert r.status_code == 415
    r = client.post("/api/suggest", json=["not", "an", "object"])
    assert r.status_code == 422
    big = json.dumps({"message": "x" * 70_000}).encode()
    r = client.post("/api/suggest", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["bound"] == "max_body_bytes"

    def chunks():  # no Content-Length: the server must count as it reads
        for _ in range(100):
            yield b"x" * 1024

    r = client.post("/api/cases", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = client.post("/v1/completions", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "error" in r.json()  # OpenAI-shaped error on /v1


# --- cases and stats ------------------------------------------------------------------------


def test_cases_store_edit_distance_paging_and_stats(client):
    s0 = client.get("/api/stats").json()
    result = client.post("/api/suggest", json={"message": "refund my payment", "n": 2, "seed": 11, "max_new_tokens": 60}).json()
    first, = result["suggestions"][:1]
    # Accepted as shown: not edited, distance 0.
    r = client.post("/api/cases", json={"message": "refund my payment", "reply": first["filled_text"],
                                        "intent": result["intent"], "suggestion_id": first["id"], "edited": False})
    assert r.status_code == 201, r.text
    saved = r.json()
    assert saved["edited"] is False and saved["edit_distance"] == 0.0
    # Accepting it again is the same case (a suggestion is accepted once).
    again = client.post("/api/cases", json={"message": "refund my payment", "reply": first["filled_text"],
                                            "suggestion_id": first["id"]})
    assert again.status_code == 200 and again.json()["id"] == saved["id"]
    # Edited: the server measures the distance against what it showed.
    other = client.post("/api/suggest", json={"message": "refund again", "n": 1, "seed": 12, "max_new_tokens": 60}).json()
    shown = other["suggestions"][0]
    edited_reply = shown["filled_text"][: max(1, len(shown["filled_text"]) // 2)] + " Thanks!"
    r = client.post("/api/cases", json={"message": "refund again", "reply": edited_reply, "suggestion_id": shown["id"], "edited": True})
    saved2 = r.json()
    assert saved2["edited"] is True and 0 < saved2["edit_distance"] <= 1
    # A case typed by hand, and one naming a suggestion that was never shown.
    assert client.post("/api/cases", json={"message": "hello", "reply": "hi there"}).status_code == 201
    assert client.post("/api/cases", json={"message": "m", "reply": "r", "suggestion_id": "nope"}).status_code == 404

    s1 = client.get("/api/stats").json()
    assert s1["cases"] == s0["cases"] + 3
    assert s1["cases_since_last_learn"] == s0["cases_since_last_learn"] + 3
    assert s1["accepted"] == s0["accepted"] + 2 and s1["accepted_edited"] == s0["accepted_edited"] + 1
    assert 0 < s1["acceptance_rate"] <= 1 and s1["mean_edit_distance"] is not None

    total = s1["cases"]
    page1 = client.get("/api/cases", params={"offset": 0, "limit": 2}).json()
    assert page1["total"] == total and len(page1["items"]) == min(2, total)
    seen = [c["id"] for c in page1["items"]]
    offset = page1["next_offset"]
    while offset is not None:
        page = client.get("/api/cases", params={"offset": offset, "limit": 2}).json()
        seen += [c["id"] for c in page["items"]]
        offset = page["next_offset"]
    assert len(seen) == total and seen == sorted(seen)
    last = client.get("/api/cases", params={"offset": total - 1, "limit": 5}).json()["items"][-1]
    assert last["message"] == "hello" and last["source"] == "desk"


@pytest.mark.parametrize(
    "params,field",
    [({"limit": 0}, "limit"), ({"limit": 201}, "limit"), ({"offset": -1}, "offset"), ({"limit": "many"}, "limit")],
)
def test_case_paging_bounds(client, params, field):
    r = client.get("/api/cases", params=params)
    assert r.status_code == 422 and r.json()["field"] == field


@pytest.mark.parametrize(
    "body,field",
    [({"message": "m"}, "reply"), ({"message": "", "reply": "r"}, "message"), ({"message": "m", "reply": "r" * 8001}, "reply"),
     ({"message": "m", "reply": "r", "edited": "very"}, "edited"), ({"message": "m", "reply": "r", "intent": "i" * 201}, "intent")],
)
def test_case_bounds(client, body, field):
    r = client.post("/api/cases", json=body)
    assert r.status_code == 422 and r.json()["field"] == field


# --- limits ------------------------------------------------------------------------------------


def test_busy_server_answers_503_with_retry_after(client):
    slots = client.app.state.desk.slots
    for _ in range(slots.size):
        slots.acquire()
    try:
        for path, body in (("/api/suggest", {"message": "hi"}), ("/api/suggest/stream", {"message": "hi"}),
                           ("/v1/completions", {"prompt": "hi"}), ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})):
            r = client.post(path, json=body)
            assert r.status_code == 503, path
            assert int(r.headers["retry-after"]) >= 1
        # Everything that does not generate still answers.
        assert client.get("/api/stats").status_code == 200
    finally:
        for _ in range(slots.size):
            slots.release()
    assert client.post("/api/suggest", json={"message": "hi", "max_new_tokens": 5}).status_code == 200


def test_generation_timeout(runs):
    limits = ServerLimits(timeout_s=1e-6)
    with TestClient(create_app(runs["support"], limits=limits)) as c:
        r = c.post("/v1/completions", json={"prompt": "hi", "max_tokens": 500})
        assert r.status_code == 504 and "longer than" in r.json()["error"]["message"]
        r = c.post("/api/suggest", json={"message": "hi"})
        assert r.status_code == 504
        r = c.post("/api/suggest/stream", json={"message": "hi"})
        assert r.status_code == 200 and sse(r.text)[-1][0] == "error"
        deadline = time.monotonic() + 5
        while c.app.state.desk.slots.running and time.monotonic() < deadline:
            time.sleep(0.01)  # the worker gives its slot back as it unwinds
        assert c.app.state.desk.slots.running == 0


def test_plain_run_serves_completions_but_not_suggestions(text_client):
    r = text_client.post("/api/suggest", json={"message": "hello"})
    assert r.status_code == 409 and "instruction dataset" in r.json()["detail"]
    r = text_client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "the cat"}], "max_tokens": 12, "seed": 1})
    assert r.status_code == 200
    assert len(r.json()["choices"][0]["message"]["content"]) == 12


@pytest.mark.parametrize(
    "path,body,field",
    [
        ("/v1/completions", {"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ("/v1/completions", {"prompt": "x", "max_tokens": 1001}, "max_tokens"),
        ("/v1/completions", {"prompt": "x", "n": 9}, "n"),
        ("/v1/completions", {"prompt": "x", "temperature": 2.5}, "temperature"),
        ("/v1/completions", {"prompt": "x" * 8001}, "prompt"),
        ("/v1/completions", {"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ("/v1/chat/completions", {"messages": []}, "messages"),
        ("/v1/chat/completions", {"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": 5000}, "max_tokens"),
    ],
)
def test_openai_bounds(client, path, body, field):
    r = client.post(path, json=body)
    assert r.status_code == 400, r.text  # OpenAI's status for a request it cannot take
    error = r.json()["error"]
    assert error["param"] == field and error["message"].startswith(f"{field}:")


def test_chat_message_longer_than_the_message_bound(client):
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x" * 2001}]})
    assert r.status_code == 400 and "max_message_chars" in r.json()["error"]["message"]


# --- exposure, CORS, logging ---------------------------------------------------------------------


def test_bearer_token(runs):
    with TestClient(create_app(runs["text"], token="s3cret-token")) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/").status_code == 200
        assert c.get("/static/desk.js").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token"}, {"Authorization": "Basic s3cret-token"}):
            r = c.get("/api/stats", headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        r = c.post("/v1/completions", json={"prompt": "a"})
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        assert c.get("/api/stats", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200


def test_other_interfaces_need_a_token(runs):
    check_exposure("127.0.0.1", None)
    check_exposure("::1", None)
    check_exposure("localhost", None)
    check_exposure("0.0.0.0", "tok")
    with pytest.raises(BigramLMError, match="loopback"):
        check_exposure("0.0.0.0", None)
    proc = subprocess.run([sys.executable, "-m", "bigramlm", "serve", str(runs["text"]), "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and "BIGRAMLM_TOKEN" in proc.stderr


def test_loopback_server_refuses_foreign_host_names(runs):
    from bigramlm.serve.network import LOOPBACK_NAMES

    with TestClient(create_app(runs["text"], allowed_hosts=LOOPBACK_NAMES), base_url="http://127.0.0.1:8000") as c:
        assert c.get("/api/stats").status_code == 200
        for host in ("localhost:8000", "[::1]:8000", "127.0.0.1"):
            assert c.get("/api/stats", headers={"Host": host}).status_code == 200, host
        for host in ("evil.example:8000", "evil.example", "127.0.0.1.evil.example"):
            assert c.get("/api/stats", headers={"Host": host}).status_code == 421, host


def test_broken_brand_file_fails_at_start(runs, tmp_path):
    bad = tmp_path / "brand.toml"
    bad.write_text("[placeholders\n", encoding="utf-8")
    with pytest.raises(BigramLMError, match="not valid TOML"):
        create_app(runs["support"], brand_path=bad)


def test_no_cors_wildcard(client):
    r = client.options("/api/suggest", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
                                                 "Access-Control-Request-Headers": "content-type"})
    assert "access-control-allow-origin" not in r.headers
    r = client.get("/api/stats", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    assert r.headers["x-frame-options"] == "DENY"


def test_one_log_line_per_request_without_the_message(client, caplog):
    secret = "my card number is 4111-SECRET"
    with caplog.at_level(logging.INFO, logger="bigramlm.server"):
        client.post("/api/suggest", json={"message": secret, "max_new_tokens": 20})
        client.post("/api/cases", json={"message": secret, "reply": secret})
        client.get("/api/cases", params={"limit": 1})
        client.post("/api/suggest", json={"message": secret, "n": 99})
    lines = [r.getMessage() for r in caplog.records if r.name == "bigramlm.server"]
    assert len(lines) == 4
    assert lines[0].startswith("POST /api/suggest 200 ") and "ms request_id=" in lines[0]
    assert lines[1].startswith("POST /api/cases 201 ")
    assert lines[2].startswith("GET /api/cases 200 ")
    assert lines[3].startswith("POST /api/suggest 422 ")
    assert not any("SECRET" in line or "4111" in line for line in lines)


def test_the_request_id_is_in_the_answer_its_header_and_the_access_line(client, caplog):
    with caplog.at_level(logging.INFO, logger="bigramlm.server"):
        r = client.post("/api/suggest", json={"message": "where is my order", "max_new_tokens": 10})
    rid = r.headers["x-request-id"]
    assert r.json()["request_id"] == rid and len(rid) == 32
    assert any(rec.getMessage().endswith(f"request_id={rid}") and rec.request_id == rid for rec in caplog.records)
    # A proxy's own id is kept; anything that is not a plain token is replaced.
    assert client.get("/healthz", headers={"X-Request-ID": "edge-42.a_b"}).headers["x-request-id"] == "edge-42.a_b"
    forged = client.get("/healthz", headers={"X-Request-ID": "x y\\n"}).headers["x-request-id"]
    assert forged != "x y\\n" and len(forged) == 32


def test_json_logs_carry_the_request_id():
    import io
    import json as json_lib

    from bigramlm.serve.logs import configure_logging

    root, out = logging.getLogger(), io.StringIO()
    saved = root.handlers[:], root.level
    try:
        configure_logging("info", "json", out)
        logging.getLogger("bigramlm.server").info("GET /healthz 200 1.0ms", extra={"request_id": "abc", "status": 200})
        logging.getLogger("uvicorn.error").info("Started server process")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = [json_lib.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["request_id"] == "abc" and lines[0]["status"] == 200 and lines[0]["logger"] == "bigramlm.server"
    assert lines[1]["logger"] == "uvicorn.error" and set(lines[1]) == {"time", "level", "logger", "message"}


def test_allowed_host_lets_a_reverse_proxy_on_the_same_host_in(runs):
    from bigramlm.serve.network import allowed_host_names

    names = allowed_host_names("127.0.0.1", ("Desk.Example.com",))
    assert "desk.example.com" in names and "127.0.0.1" in names
    assert allowed_host_names("0.0.0.0", ("desk.example.com",)) is None  # beyond loopback: the token guards
    with TestClient(create_app(runs["text"], allowed_hosts=names), base_url="http://127.0.0.1:8000") as c:
        assert c.get("/api/stats", headers={"Host": "desk.example.com"}).status_code == 200
        assert c.get("/api/stats", headers={"Host": "evil.example"}).status_code == 421


def test_a_path_prefix_keeps_public_paths_open_and_openai_errors_in_shape(runs):
    """Behind a proxy that mounts the desk at /desk (``serve --root-path /desk``), the
    ASGI path carries the prefix: the guard and the error shapes must look past it."""
    from bigramlm.serve.errors import app_path

    assert app_path({"path": "/desk/healthz", "root_path": "/desk"}) == "/healthz"
    assert app_path({"path": "/desk", "root_path": "/desk"}) == "/"
    assert app_path({"path": "/healthz", "root_path": ""}) == "/healthz"
    with TestClient(create_app(runs["text"], token="tok"), root_path="/desk") as c:
        assert c.get("/desk/healthz").status_code == 200  # public, though a token guards the API
        assert c.get("/desk/api/stats").status_code == 401
        r = c.post("/desk/v1/completions", json={"prompt": "a", "max_tokens": 0}, headers={"Authorization": "Bearer tok"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"  # OpenAI's shape under the prefix
        assert c.get("/desk/openapi.json").json()["servers"] == [{"url": "/desk"}]


def test_the_page_works_under_a_path_prefix():
    """Behind a proxy at /desk/ the page must ask for desk/api/..., not /api/...: every URL it uses is relative."""
    from bigramlm.serve.routes.meta import STATIC_DIR

    page = (STATIC_DIR / "desk.html").read_text()
    script = (STATIC_DIR / "desk.js").read_text()
    assert 'href="/' not in page and 'src="/' not in page
    for absolute in ('api("/', 'fetch("/', "api(`/"):
        assert absolute not in script


def test_streamed_chat_fills_placeholders_like_the_whole_reply():
    from bigramlm.support.brand import BrandProfile
    from bigramlm.serve.sse import PlaceholderStream

    brand = BrandProfile(values={"Website URL": "https://acme.example", "Company Name": "Acme"})
    reply = "Visit {{Website URL}} or call {{Customer Support Phone Number}}.\n{{Company Name}} thanks you {{broken\nbye { {{Company Name}}"
    for size in (1, 2, 3, 7, len(reply)):
        stream = PlaceholderStream(lambda t: brand.fill(t).text)
        out = "".join(stream.feed(reply[i:i + size]) for i in range(0, len(reply), size)) + stream.flush()
        assert out == brand.fill(reply).text, size
    assert "https://acme.example" in out and "{{Customer Support Phone Number}}" in out


def test_suggest_is_the_same_object_as_assist_json(client, runs):
    """One implementation: with the same seed, the API and `assist --json` agree (ids aside)."""
    message = "how do I get a refund"
    proc = subprocess.run([sys.executable, "-m", "bigramlm", "assist", str(runs["support"]), message, "--json",
                           "--n", "2", "--seed", "21", "--max-tokens", "60"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    cli = json.loads(proc.stdout)
    api = client.post("/api/suggest", json={"message": message, "n": 2, "seed": 21, "max_new_tokens": 60}).json()

    def comparable(obj):
        obj = {k: v for k, v in obj.items() if k != "request_id"}
        obj["suggestions"] = [{k: v for k, v in s.items() if k != "id"} for s in obj["suggestions"]]
        return obj

    assert set(api) - {"request_id"} == set(cli)
    assert comparable(api) == comparable(cli)
