"""The desk page in a real browser: Playwright driving Debian's headless Chromium."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from bigramlm.data.cases import Case
from bigramlm.support.brand import BrandProfile
from bigramlm.support.results import (
    AssistResult,
    DoneEvent,
    SimilarCase,
    Suggestion,
    SuggestEvent,
    SuggestSettings,
    TokenEvent,
    Understanding,
    UnderstandingEvent,
)

pytestmark = pytest.mark.browser



def _support_data(tmp_path: Path) -> Path:
    """The real Bitext sample when it is here (a truer screenshot), else the tests' small table."""
    from desk_helpers import write_support_csv

    root = os.environ.get("BIGRAMLM_DATA_DIR")
    sample = Path(root) / "bitext" / "bitext-sample.csv" if root else None
    if sample is not None and sample.is_file():
        return sample
    return write_support_csv(tmp_path / "support.csv")


def test_agent_gets_streamed_suggestions_edits_one_and_accepts_it(browser, tmp_path):
    from bigramlm.data import load_data
    from bigramlm.serve.app import create_app
    from bigramlm.support.store import CaseStore
    from bigramlm.training import TrainConfig, train
    from desk_helpers import ThreadServer

    run_dir = tmp_path / "support-bigram"
    train(load_data(str(_support_data(tmp_path))), run_dir, config=TrainConfig(method="counts"), progress=False)
    brand = tmp_path / "brand.toml"
    brand.write_text('[brand]\nname = "Acme"\n\n[placeholders]\n"Company Name" = "Acme"\n'
                     '"Website URL" = "https://acme.example"\n"Customer Support Phone Number" = "+1 555 0100"\n',
                     encoding="utf-8")
    with ThreadServer(create_app(run_dir, brand_path=brand)) as server:
        # bypass_csp: Playwright's wait_for_function evaluates strings, which the page's CSP forbids.
        page = browser.new_page(viewport={"width": 1200, "height": 800}, bypass_csp=True)
        # Record whether token-by-token cards ever appeared, however briefly.
        page.add_init_script("""
            window.__streamedCards = 0;
            new MutationObserver((records) => {
              for (const r of records) for (const n of r.addedNodes)
                if (n.classList && n.classList.contains('streaming')) window.__streamedCards++;
            }).observe(document, {childList: true, subtree: true});
        """)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("dialog", lambda d: d.accept())  # "the reply still holds a placeholder: accept anyway?"
        page.goto(server.base + "/")
        page.fill("#message", "Hello, I would like to cancel my order please, it has not shipped yet")
        page.fill("#n", "3")
        page.click("#suggest")
        page.wait_for_selector("body[data-state=done]", timeout=30_000)
        assert page.evaluate("window.__streamedCards") >= 1, "suggestions did not stream"
        cards = page.locator("#suggestions li.suggestion")
        assert cards.count() >= 1
        assert page.locator("#intent").inner_text().strip() not in ("", "–")
        assert "%" in page.locator("#confidence").inner_text()
        assert page.locator("#similar li").count() >= 1

        first = cards.first
        original = first.locator(".text").inner_text()
        first.locator(".edit").click()
        editor = first.locator(".editor")
        assert editor.is_visible() and editor.input_value() == page.evaluate(
            "(id) => document.querySelector(`li[data-id='${id}'] .editor`).value", first.get_attribute("data-id"))
        editor.press("End")
        editor.type(" Thanks for your patience!")
        assert "edited · distance" in first.locator(".edit-info").inner_text()
        first.locator(".accept").click()
        page.wait_for_function("document.querySelector('#suggestions li.accepted') !== null", timeout=10_000)
        info = first.locator(".edit-info").inner_text()
        assert "saved as case #" in info and "edited" in info and "edit distance" in info
        page.wait_for_function("document.querySelector('#stats').textContent.includes('cases 1')", timeout=10_000)
        shot = tmp_path / "desk.png"
        page.screenshot(path=str(shot), full_page=False)
        assert shot.stat().st_size > 10_000
        assert not errors, errors

        stats = httpx.get(server.base + "/api/stats").json()
    assert stats["cases"] == 1 and stats["cases_since_last_learn"] == 1
    assert stats["accepted"] == 1 and stats["accepted_edited"] == 1 and stats["acceptance_rate"] == 1.0
    assert 0 < stats["mean_edit_distance"] < 1
    with CaseStore.for_run(run_dir) as store:
        (stored,) = store.list_cases()
    case = stored.to_dict()
    assert case["reply"].endswith(" Thanks for your patience!")
    assert case["edited"] is True and case["edit_distance"] == pytest.approx(stats["mean_edit_distance"])
    assert case["message"].startswith("Hello, I would like to cancel")
    assert original.strip()  # the suggestion the agent started from was shown


def _open_desk(browser, server) -> tuple[Any, list[str]]:
    """The desk page, confirming every dialog (a reply with a placeholder asks before it is
    accepted), and the page errors it raises."""
    page = browser.new_page(bypass_csp=True)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda d: d.accept())
    page.goto(server.base + "/")
    return page, errors


def test_agent_dismisses_a_suggestion_and_the_store_and_figures_show_it(browser, tmp_path):
    from bigramlm.serve.app import create_app
    from bigramlm.support.store import CaseStore
    from desk_helpers import ThreadServer, train_support_run

    run_dir = train_support_run(tmp_path)
    with ThreadServer(create_app(run_dir)) as server:
        page, errors = _open_desk(browser, server)
        page.fill("#message", "where is my package, it has not arrived")
        page.fill("#n", "3")
        page.click("#suggest")
        page.wait_for_selector("body[data-state=done]", timeout=30_000)
        cards = page.locator("#suggestions li.suggestion")
        assert cards.count() >= 2
        first, second = cards.nth(0), cards.nth(1)
        dismissed_id, dismissed_text = first.get_attribute("data-id"), first.locator(".text").inner_text()
        first.locator(".reason").select_option("wrong intent")
        first.locator(".dismiss").click()
        page.wait_for_function("document.querySelector('#suggestions li.dismissed') !== null", timeout=10_000)
        assert "dismissed" in first.get_attribute("class") and "wrong intent" in first.locator(".edit-info").inner_text()
        assert first.locator(".accept").is_disabled() and first.locator(".dismiss").is_disabled()
        assert first.locator(".edit").is_disabled()
        assert page.evaluate("getComputedStyle(document.querySelector('li.dismissed .text')).textDecorationLine") == "line-through"
        page.wait_for_function("document.querySelector('#stats').textContent.includes('dismissed 1')", timeout=10_000)
        # The other suggestions are untouched, and one of them can still be accepted.
        assert "dismissed" not in (second.get_attribute("class") or "") and second.locator(".accept").is_enabled()
        accepted_id = second.get_attribute("data-id")
        second.locator(".accept").click()
        page.wait_for_function("document.querySelector('#suggestions li.accepted') !== null", timeout=10_000)
        assert second.locator(".dismiss").is_disabled()
        page.wait_for_function("document.querySelector('#stats').textContent.includes('cases 1')", timeout=10_000)
        assert "light edits 100%" in page.locator("#stats").inner_text()
        assert not errors, errors
        stats = httpx.get(server.base + "/api/stats").json()
    assert stats["dismissed"] == 1 and stats["dismissal_rate"] == pytest.approx(1 / stats["suggestions_shown"])
    assert stats["cases"] == 1 and stats["acceptance_rate"] == 1.0 and stats["light_edit_acceptance_rate"] == 1.0
    with CaseStore.for_run(run_dir) as store:
        assert store.dismissed_texts() == [store.get_suggestion(dismissed_id).text]
        assert store.get_suggestion(dismissed_id).text.strip() == dismissed_text.strip()
        (case,) = store.list_cases()
        assert case.suggestion_id == accepted_id != dismissed_id


PAYLOAD_SCRIPT = "<script>window.__xss = 'script'; alert('script')</script>"
PAYLOAD_IMG = "<img src=x onerror=\"window.__xss = 'img'; alert('img')\">"
PAYLOAD = f"Dear customer {PAYLOAD_SCRIPT} and {PAYLOAD_IMG} bye"


class HostileAssistant:
    """An assistant whose model output is markup: the page must show it as text.

    The real model emits ``<`` and ``>`` freely but not on cue, so this one replays a
    fixed output through the same streaming protocol (``Assistant.suggest_stream``).
    """

    store = None
    understanding_method = "hostile"
    degraded = None
    brand = BrandProfile()

    def suggest_stream(self, message: str, requested: SuggestSettings | None = None, **options: Any) -> Iterator[SuggestEvent]:
        understanding = Understanding(
            intent=PAYLOAD_IMG, category=PAYLOAD_SCRIPT, intent_probability=0.3, intent_method="hostile", intent_unsure=True,
            similar_cases=[SimilarCase(Case(PAYLOAD_IMG, PAYLOAD_SCRIPT, PAYLOAD_IMG, None, "dataset", 7), 0.9)],
        )
        yield UnderstandingEvent(understanding)
        for i in range(0, len(PAYLOAD), 7):
            yield TokenEvent(0, PAYLOAD[i:i + 7])
        suggestion = Suggestion("hostile-1", 0, PAYLOAD, PAYLOAD + " {{Order Number}}", -1.0, ["Order Number"],
                                [{"text": PAYLOAD_IMG, "position": 0, "reason": "unbalanced braces"}])
        settings = SuggestSettings(n=1, max_new_tokens=10, temperature=1.0, top_k=None, top_p=None, seed=None)
        yield DoneEvent(AssistResult(understanding, [suggestion], "hostile", settings))


def test_model_markup_is_shown_as_text_and_never_runs(browser, tmp_path):
    from bigramlm.serve.app import create_app
    from desk_helpers import ThreadServer, train_text_run

    run_dir = train_text_run(tmp_path)
    dialogs: list[str] = []
    from bigramlm.checkpoint import load_run

    with ThreadServer(create_app(run_dir, assistant=HostileAssistant(), run=load_run(run_dir))) as server:  # type: ignore[arg-type]
        # Without the page's CSP, so that only the textContent rule stands between the
        # markup and execution (the CSP is a second line, tested by the API tests).
        page = browser.new_page(bypass_csp=True)
        confirms: list[str] = []  # the page's own questions (a placeholder left, an unsure intent)
        page.on("dialog", lambda d: (confirms.append(d.message), d.accept()) if d.type == "confirm"
                else (dialogs.append(d.message), d.dismiss()))
        page.goto(server.base + "/")
        page.fill("#message", "show me something nasty")
        page.click("#suggest")
        page.wait_for_selector("body[data-state=done]", timeout=30_000)
        page.wait_for_timeout(300)  # give an onerror handler time to fire, were there one
        assert page.evaluate("window.__xss") is None
        assert dialogs == []
        assert page.evaluate("document.querySelectorAll('img').length") == 0
        assert page.evaluate("Array.from(document.scripts).map(s => s.src.split('/').pop())") == ["desk.js"]
        # The markup is on screen, literally.
        text = page.locator("#suggestions li.suggestion .text").inner_text()
        assert PAYLOAD_SCRIPT in text and PAYLOAD_IMG in text
        assert page.locator("mark.unfilled").inner_text() == "{{Order Number}}"
        assert PAYLOAD_IMG in page.locator("#intent").inner_text()
        assert page.locator("#unsure").is_visible()  # a best guess below the threshold says so
        assert PAYLOAD_SCRIPT in page.locator("#similar").inner_text()
        assert page.locator("#token-row").is_hidden()
        # Accepting it is refused: markup is no intent name (it would reach the training
        # format's header lines); the page says so as text, and nothing is stored.
        page.locator(".accept").click()
        page.wait_for_function("!document.querySelector('#error').hidden", timeout=10_000)
        assert "is not a name" in page.locator("#error").inner_text()
        assert any("placeholder" in c for c in confirms) and any("unsure" in c for c in confirms)
        assert page.evaluate("window.__xss") is None and dialogs == []
        assert httpx.get(server.base + "/api/cases").json()["items"] == []
        # The reply itself may hold markup: stored byte for byte under a real intent.
        saved = httpx.post(server.base + "/api/cases", json={"message": "m", "reply": PAYLOAD, "intent": "cancel_order"})
        assert saved.status_code == 201 and httpx.get(server.base + "/api/cases").json()["items"][-1]["reply"] == PAYLOAD

    # Control: the same payload does run when parsed as HTML, so the test above means something.
    control = browser.new_page()
    control.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    control.set_content("<div id=target></div>")
    control.evaluate("(html) => { document.getElementById('target').innerHTML = html; }", PAYLOAD)
    control.wait_for_function("window.__xss === 'img'", timeout=5_000)
    assert dialogs == ["img"]


def test_desk_page_sends_a_non_ascii_token(browser, tmp_path):
    """A token outside ASCII works from the page: it sends the token's UTF-8 bytes."""
    from bigramlm.serve.app import create_app
    from desk_helpers import ThreadServer, train_support_run

    token = "pässwörd-秘密-🔑"
    with ThreadServer(create_app(train_support_run(tmp_path), token=token)) as server:
        page, errors = _open_desk(browser, server)
        page.wait_for_selector("#token-row:not([hidden])", timeout=10_000)  # the stats call got 401
        page.fill("#token", token)
        page.fill("#message", "please cancel my purchase")
        page.fill("#n", "2")
        page.click("#suggest")
        page.wait_for_selector("body[data-state=done]", timeout=30_000)
        assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
        assert page.locator("#unsure").is_hidden()
        page.locator("#suggestions li.suggestion .accept").first.click()
        page.wait_for_function("document.querySelector('#suggestions li.accepted') !== null", timeout=10_000)
        assert not errors, errors
        stats = httpx.get(server.base + "/api/stats", headers={"Authorization": b"Bearer " + token.encode("utf-8")}).json()
    assert stats["cases"] == 1 and stats["accepted"] == 1


def test_docs_render_without_the_internet(browser, tmp_path):
    """This machine's Chromium has no route to a CDN: /docs must render from the server alone."""
    from bigramlm.serve.app import create_app
    from desk_helpers import ThreadServer, train_text_run

    with ThreadServer(create_app(train_text_run(tmp_path))) as server:
        page = browser.new_page()
        outside: list[str] = []
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(server.base) else None)
        page.goto(server.base + "/docs")
        try:
            import fastapi_offline  # noqa: F401
        except ImportError:
            assert page.locator("a[href='/openapi.json']").count() == 1
            assert "/v1/chat/completions" in page.locator("body").inner_text()
        else:
            # Swagger UI drew an operation block for each route, from the local schema.
            page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
            assert "/v1/chat/completions" in page.locator(".swagger-ui").inner_text()
        assert outside == []


class SidebarAssistant:
    """A scripted assistant for the desk's own behaviour: an unsure intent with alternatives,
    similar cases in the first event, a slow stream, two suggestions (one with a placeholder)."""

    store = None
    understanding_method = "scripted"
    degraded = None
    brand = BrandProfile()

    def __init__(self) -> None:
        self.intents: list[str | None] = []
        #: Set by the test once it saw the page streaming: until then the replies are not done.
        self.release = threading.Event()

    def suggest_stream(self, message: str, requested: SuggestSettings | None = None, **options: Any) -> Iterator[SuggestEvent]:
        from bigramlm.support.results import IntentScore

        picked = options.get("intent")
        self.intents.append(picked)
        understanding = Understanding(
            intent=picked or "cancel_order", category="ORDER", intent_probability=0.41, intent_method="scripted",
            intent_unsure=picked is None,
            intents=[IntentScore("cancel_order", "ORDER", 0.41), IntentScore("check_refund_policy", "REFUND", 0.38)],
            similar_cases=[SimilarCase(Case("cancel my order", "I have cancelled order {{Order Number}}.", "cancel_order",
                                            "ORDER", "desk", 3), 0.8)],
        )
        yield UnderstandingEvent(understanding)
        for word in "I can help you cancel that order right away .".split():
            yield TokenEvent(0, word + " ")
        assert self.release.wait(30), "the test never saw the page streaming"
        first = Suggestion("s-1", 0, "I have cancelled order {{Order Number}}.", "I have cancelled order {{Order Number}}.",
                           64.3, ["Order Number"], [])
        second = Suggestion("s-2", 1, "Your order {{Order Number}} is cancelled.", "Your order 5521 is cancelled.", 55.3, [], [],
                            from_message={"Order Number": "5521"})
        settings = SuggestSettings(n=2, max_new_tokens=10, temperature=1.0, top_k=None, top_p=None, seed=None)
        yield DoneEvent(AssistResult(understanding, [first, second], "scripted", settings))


def test_the_desk_in_a_crm_sidebar_by_keyboard_and_accessible(browser, tmp_path):
    """420 px wide, driven from the keyboard: the limit and counter, Ctrl+Enter, similar
    cases before the replies end, focus on the best reply, shortcuts, the confirmations,
    another intent picked, and axe-core finding no violation."""
    from axe_playwright_python.sync_playwright import Axe

    from bigramlm.checkpoint import load_run
    from bigramlm.serve.app import create_app
    from desk_helpers import ThreadServer, train_text_run

    run_dir = train_text_run(tmp_path)
    assistant = SidebarAssistant()
    with ThreadServer(create_app(run_dir, assistant=assistant, run=load_run(run_dir))) as server:  # type: ignore[arg-type]
        page = browser.new_page(viewport={"width": 420, "height": 900}, bypass_csp=True)
        errors: list[str] = []
        confirms: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("dialog", lambda d: (confirms.append(d.message), d.accept()))
        page.goto(server.base + "/")
        assert page.evaluate("document.documentElement.scrollWidth") <= 420  # no sideways scrolling
        page.wait_for_function("document.querySelector('#run').textContent !== ''", timeout=10_000)
        assert page.locator("#run").inner_text() == "serving text-run"
        box = page.locator("#message")
        assert box.get_attribute("maxlength") == "2000"
        box.fill("x" * 2100)  # the limit holds, and the counter says so
        assert len(box.input_value()) == 2000 and page.locator("#counter").inner_text() == "2000 / 2000"
        box.fill("please cancel my order")
        assert page.locator("#counter").inner_text() == "22 / 2000"
        box.press("Control+Enter")
        page.wait_for_selector("#similar li", timeout=10_000)
        assert page.evaluate("document.body.dataset.state") == "streaming"  # the cases came first
        assistant.release.set()
        page.wait_for_selector("body[data-state=done]", timeout=30_000)
        assert page.evaluate("document.documentElement.scrollWidth") <= 420
        cards = page.locator("#suggestions li.suggestion")
        assert cards.nth(0).locator(".score").inner_text() == "agreement 64/100"
        # A value taken from the message is marked, and named above the reply.
        assert cards.nth(1).locator("mark.from-message").inner_text() == "5521"
        assert "Order Number" in cards.nth(1).locator(".stated").inner_text()
        assert page.evaluate("document.activeElement.dataset.id") == "s-1"  # focus on the best reply
        page.keyboard.press("a")  # accept: a placeholder is left and the intent is unsure, so it asks twice
        page.wait_for_function("document.querySelector('#suggestions li.accepted') !== null", timeout=10_000)
        assert any("placeholder" in c and "{{Order Number}}" in c for c in confirms)
        assert any("unsure" in c for c in confirms)
        cards.nth(1).focus()
        page.keyboard.press("d")
        page.wait_for_function("document.querySelector('#suggestions li.dismissed') !== null", timeout=10_000)
        results = Axe().run(page)
        violations = [(v["id"], len(v["nodes"])) for v in results.response["violations"]]
        assert violations == [], violations
        # Another of the ranked intents: the replies are asked for that one.
        assert page.locator("#pick-row").is_visible()
        page.select_option("#intent-pick", "check_refund_policy")
        page.wait_for_function("document.body.dataset.state === 'done' && document.querySelector('#intent').textContent"
                               " === 'check_refund_policy'", timeout=30_000)
        assert assistant.intents[-1] == "check_refund_policy"
        assert httpx.get(server.base + "/favicon.ico").headers["content-type"].startswith("image/svg")
        assert not errors, errors


MARKDOWN_REPLY = ("I can help with order {{Order Number}}. Here is **what to do**:\n\n"
                  f"1. Sign in at **{PAYLOAD_SCRIPT}** now.\n2. Open *My Orders* and press Cancel.\n\n"
                  "- Refunds take 5 days\n- You get an email\n\nThanks for your patience!")


class MarkdownAssistant(HostileAssistant):
    """Replays one reply in the dataset's light markdown, with markup inside the bold."""

    def suggest_stream(self, message: str, requested: SuggestSettings | None = None, **options: Any) -> Iterator[SuggestEvent]:
        understanding = Understanding(intent="cancel_order", category="ORDER", intent_probability=0.9,
                                      intent_method="scripted", intent_unsure=False)
        yield UnderstandingEvent(understanding)
        suggestion = Suggestion("md-1", 0, MARKDOWN_REPLY, MARKDOWN_REPLY, 80.0, ["Order Number"])
        settings = SuggestSettings(n=1, max_new_tokens=10, temperature=1.0, top_k=None, top_p=None, seed=None)
        yield DoneEvent(AssistResult(understanding, [suggestion], "scripted", settings))


def test_markdown_in_a_reply_is_rendered_as_elements_and_markup_in_it_stays_text(browser, tmp_path):
    from bigramlm.checkpoint import load_run
    from bigramlm.serve.app import create_app
    from desk_helpers import ThreadServer, train_text_run

    run_dir = train_text_run(tmp_path)
    dialogs: list[str] = []
    with ThreadServer(create_app(run_dir, assistant=MarkdownAssistant(), run=load_run(run_dir))) as server:  # type: ignore[arg-type]
        page = browser.new_page(bypass_csp=True)  # the textContent rule alone must hold
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(server.base + "/")
        page.fill("#message", "cancel my order")
        page.click("#suggest")
        page.wait_for_selector("body[data-state=done]", timeout=30_000)
        page.wait_for_timeout(300)
        text = page.locator("#suggestions li.suggestion .text")
        assert text.locator("p").count() == 2  # the opening paragraph and the closing line
        assert text.locator("ol > li").all_inner_texts() == [f"Sign in at {PAYLOAD_SCRIPT} now.",
                                                             "Open My Orders and press Cancel."]
        assert text.locator("ul > li").all_inner_texts() == ["Refunds take 5 days", "You get an email"]
        assert text.locator("strong").all_inner_texts() == ["what to do", PAYLOAD_SCRIPT]
        assert text.locator("em").all_inner_texts() == ["My Orders"]
        assert text.locator("mark.unfilled").inner_text() == "{{Order Number}}"
        assert "**" not in text.inner_text()
        # The markup inside the bold is text: no script element was made, none ran.
        assert page.evaluate("window.__xss") is None and dialogs == []
        assert page.evaluate("Array.from(document.scripts).map(s => s.src.split('/').pop())") == ["desk.js"]
        # What the agent edits and sends is the plain text, markdown and all.
        page.locator(".edit").click()
        assert page.locator(".editor").input_value() == MARKDOWN_REPLY
        page.screenshot(path=str(tmp_path / "markdown.png"))


class OutOfScopeAssistant(HostileAssistant):
    """Reads every message as out of scope: no reply is offered, only the closest intents."""

    def suggest_stream(self, message: str, requested: SuggestSettings | None = None, **options: Any) -> Iterator[SuggestEvent]:
        from bigramlm.support.results import IntentScore

        understanding = Understanding(intent=None, category=None, intent_probability=None, intent_method="scripted",
                                      intents=[IntentScore("registration_problems", "ACCOUNT", 0.4),
                                               IntentScore("complaint", "FEEDBACK", 0.3)],
                                      out_of_scope=True, scope_score=0.1)
        yield UnderstandingEvent(understanding)
        settings = SuggestSettings(n=1, max_new_tokens=10, temperature=1.0, top_k=None, top_p=None, seed=None)
        yield DoneEvent(AssistResult(understanding, [], "scripted", settings))


def test_out_of_scope_the_agent_replies_and_names_a_new_intent_or_a_known_one(browser, tmp_path):
    from bigramlm.checkpoint import load_run
    from bigramlm.serve.app import create_app
    from bigramlm.support.store import CaseStore
    from desk_helpers import ThreadServer, train_text_run

    run_dir = train_text_run(tmp_path)
    with ThreadServer(create_app(run_dir, assistant=OutOfScopeAssistant(), run=load_run(run_dir))) as server:  # type: ignore[arg-type]
        page = browser.new_page(bypass_csp=True)
        page.goto(server.base + "/")
        page.fill("#message", "your app keeps crashing")
        page.click("#suggest")
        page.wait_for_selector("body[data-state=done]", timeout=30_000)
        assert page.locator("#out-of-scope").is_visible() and page.locator("#suggestions li").count() == 0
        assert page.locator("#own").is_visible() and page.evaluate("document.querySelector('#own').open")
        assert page.locator("#own-intent").input_value() == ""  # nothing is named for the agent
        page.fill("#own-reply", "Sorry about the crashes! Please update the app to the latest version.")
        page.click("#own-save")
        assert "name the intent" in page.locator("#error").inner_text()  # a case needs its intent
        page.fill("#own-intent", "app_crash")
        page.click("#own-save")
        page.wait_for_function("document.querySelector('#own-info').textContent.includes('new intent')", timeout=10_000)
        page.fill("#own-intent", "complaint")  # a known one keeps its category
        page.click("#own-save")
        page.wait_for_function("document.querySelector('#own-info').textContent.includes('of complaint')", timeout=10_000)
    with CaseStore.for_run(run_dir) as store:
        cases = store.list_cases()
    assert [(c.case.intent, c.case.category, c.case.message) for c in cases] == [
        ("app_crash", None, "your app keeps crashing"), ("complaint", "FEEDBACK", "your app keeps crashing")]
    assert all(c.suggestion_id is None and c.case.reply.startswith("Sorry about the crashes") for c in cases)


class RecordingAssistant(MarkdownAssistant):
    """Records what each request asked for."""

    def __init__(self) -> None:
        self.asked: list[str | None] = []

    def suggest_stream(self, message: str, requested: SuggestSettings | None = None, **options: Any) -> Iterator[SuggestEvent]:
        assert requested is not None
        self.asked.append(requested.length)
        yield from super().suggest_stream(message)


def test_the_agent_asks_for_short_replies_or_the_brands_length(browser, tmp_path):
    from bigramlm.checkpoint import load_run
    from bigramlm.serve.app import create_app
    from desk_helpers import ThreadServer, train_text_run

    run_dir = train_text_run(tmp_path)
    assistant = RecordingAssistant()
    with ThreadServer(create_app(run_dir, assistant=assistant, run=load_run(run_dir))) as server:  # type: ignore[arg-type]
        page = browser.new_page(bypass_csp=True)
        page.goto(server.base + "/")
        page.fill("#message", "cancel my order")
        for asked, length in enumerate(("", "short", "as_is"), start=1):
            page.select_option("#length", length)
            with page.expect_response(lambda r: r.url.endswith("/api/suggest/stream"), timeout=30_000):
                page.click("#suggest")
            page.wait_for_selector("body[data-state=done]", timeout=30_000)
            assert len(assistant.asked) == asked
    assert assistant.asked == [None, "short", "as_is"]  # None: the brand's length


def test_the_desk_keeps_the_conversation_and_reads_a_follow_up_with_its_thread(browser, tmp_path):
    from bigramlm.serve.app import create_app
    from desk_helpers import ThreadServer, train_support_run

    run_dir = train_support_run(tmp_path)
    with ThreadServer(create_app(run_dir)) as server:
        page, errors = _open_desk(browser, server)
        assert page.locator("#thread-section").is_hidden()
        page.fill("#message", "I want to cancel order 5521")
        page.click("#suggest")
        page.wait_for_selector("body[data-state=done]", timeout=30_000)
        first = page.locator("#suggestions li.suggestion").first
        reply = first.locator(".text").inner_text()
        first.locator(".accept").click()
        page.wait_for_function("document.querySelectorAll('#thread li.turn').length === 2", timeout=10_000)
        assert page.locator("#thread li.turn.agent").inner_text().endswith(reply.strip()[-20:])
        page.fill("#message", "yes, that one")
        with page.expect_response(lambda r: r.url.endswith("/api/conversation/suggest")) as answered:
            page.click("#suggest")
        sent = answered.value.request.post_data_json["conversation"]
        assert answered.value.json()["thread"]["with_context"]  # a short follow-up is read after the earlier turn
        assert [t["role"] for t in sent["turns"]] == ["customer", "agent", "customer"]
        assert sent["turns"][0]["text"] == "I want to cancel order 5521" and sent["source"] == "desk"
        page.wait_for_selector("body[data-state=done]", timeout=30_000)
        assert page.locator("#thread li.turn").all_inner_texts()[-1] == "Customer yes, that one"
        assert page.locator("#suggestions li.suggestion").count() >= 1
        page.click("#new-thread")
        assert page.locator("#thread-section").is_hidden() and page.locator("#thread li").count() == 0
        assert not errors, errors
