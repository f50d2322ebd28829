"""Chatwoot's Dashboard App (helpdesk.dashboard, serve.routes.helpdesk) in headless Chromium,
inside a parent page on another origin that speaks Chatwoot's protocol: it answers the
app's ``chatwoot-dashboard-app:fetch-info`` with ``appContext`` (a JSON string, as Chatwoot
sends it); accept, edit and dismiss are recorded in the store by currentAgent."""

from __future__ import annotations

import json
import os

import httpx
import pytest
from desk_helpers import ThreadServer, train_support_run
from helpdesk_fake import fixture
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from bigramlm.helpdesk.core import Assist
from bigramlm.helpdesk.dashboard import DashboardApp
from bigramlm.helpdesk.secrets import Secret
from bigramlm.serve.helpdesk import helpdesk_app
from bigramlm.serve.limits import ServerLimits
from bigramlm.support.store import CaseStore

pytestmark = pytest.mark.browser

SECRET = "dash-s3cret"
AGENT = {"id": 2, "name": "Sam Lee", "email": "sam@acme.test", "role": "agent"}
PARENT = """<!doctype html><html><body><h1>Chatwoot (the tests' stand-in)</h1>
<iframe id="app" src="{src}" width="600" height="800"></iframe>
<script>
window.fetchInfo = 0;
const context = {context};
window.addEventListener("message", (event) => {{
  if (event.data !== "chatwoot-dashboard-app:fetch-info") return;
  window.fetchInfo += 1;
  document.getElementById("app").contentWindow.postMessage(JSON.stringify(context), "*");
}});
</script></body></html>"""




def parent_app(page: dict[str, str]) -> Starlette:
    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page["html"])

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app = Starlette(routes=[Route("/", index), Route("/healthz", healthz)])
    app.state.limits = ServerLimits()
    return app


def test_the_dashboard_app_shows_suggestions_and_records_feedback_by_agent(browser, tmp_path):
    from bigramlm.support.assistant import Assistant

    store = CaseStore(tmp_path / "cases.sqlite")
    assist = Assist(Assistant.load(train_support_run(tmp_path)), store)
    conversation = {"id": 12, "display_id": 12, "status": "open",
                    "messages": fixture("chatwoot", "list_messages_response.json")["payload"]}
    context = {"event": "appContext", "data": {"conversation": conversation, "contact": {"id": 7, "name": "Ana Diaz"},
                                               "currentAgent": AGENT}}
    page: dict[str, str] = {}
    parent = ThreadServer(parent_app(page))
    app = helpdesk_app(chatwoot_secret=Secret(SECRET), dashboard=DashboardApp(assist), chatwoot_origin=parent.base)
    with ThreadServer(app) as connector, parent:
        page["html"] = PARENT.format(src=f"{connector.base}/chatwoot/app?secret={SECRET}", context=json.dumps(context))
        framed = httpx.get(f"{connector.base}/chatwoot/app")
        assert f"frame-ancestors {parent.base}" in framed.headers["content-security-policy"]
        tab = browser.new_page()
        tab.goto(parent.base)
        app_frame = tab.frame_locator("#app")
        cards = app_frame.locator("#suggestions li")
        cards.first.wait_for(timeout=60_000)
        assert tab.evaluate("window.fetchInfo") >= 1
        count = cards.count()
        assert count >= 2
        cards.nth(0).locator("button[data-action=accept]").click()
        cards.nth(0).locator(".note.done").wait_for(timeout=30_000)
        cards.nth(1).locator("button[data-action=edit]").click()
        cards.nth(1).locator("textarea").fill("Order 5521 is cancelled, Ana.")
        cards.nth(1).locator("button[data-action=accept]").click()
        cards.nth(1).locator(".note.done").wait_for(timeout=30_000)
        if count >= 3:
            cards.nth(2).locator("button[data-action=dismiss]").click()
            cards.nth(2).locator(".note.done").wait_for(timeout=30_000)
        tab.close()
    cases = store.list_cases()
    assert len(cases) == 2 and {c.agent for c in cases} == {"sam@acme.test"}
    assert [c.edited for c in cases] == [False, True] and cases[1].case.reply == "Order 5521 is cancelled, Ana."
    assert "yes, that one please" in cases[0].case.message
    stats = store.desk_stats("sam@acme.test")
    assert stats.dismissed == (1 if count >= 3 else 0) and stats.suggestions_shown == count


def test_the_dashboard_apps_calls_need_the_secret(tmp_path):
    app = helpdesk_app(chatwoot_secret=Secret(SECRET), dashboard=DashboardApp(Assist(None, None)),  # type: ignore[arg-type]
                       chatwoot_origin="https://chat.example.com")
    with ThreadServer(app) as connector:
        r = httpx.post(f"{connector.base}/chatwoot/app/suggest", json={"conversation": {}}, headers={"X-BigramLM-Secret": "no"})
        assert r.status_code == 401 and SECRET not in r.text
        page = httpx.get(f"{connector.base}/chatwoot/app")
        assert 'content="https://chat.example.com"' in page.text and "frame-ancestors https://chat.example.com" in \
            page.headers["content-security-policy"]
