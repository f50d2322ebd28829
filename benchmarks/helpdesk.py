"""Inside the helpdesk: threads against single messages, and how fast a note reaches the agent.

**Threads.** A multi-turn set built from the run's test split (rows never trained on):
each row becomes a conversation of five turns:

1. the customer greets (one of ``GREETINGS``, by row),
2. the agent answers ("Hello! How can I help you today?"),
3. the customer writes the row's message (the request),
4. the agent asks for a value (``ASKS``, by row),
5. the customer states it ("it's order 4417", "my email is ..."): a short follow-up.

The suggestions are for turn 5, which alone says nothing of the intent: the thread must be
read (``support.thread``). Reported beside the row's message alone: intent accuracy, the
chrF of the top suggestion against the row's reply (in the thread, the reference's
placeholders filled with the stated value, as an agent would send it), and the share of
top suggestions with an open placeholder for the stated value.

**Webhook to note.** A connector for Chatwoot (``helpdesk.chatwoot``) on loopback in front
of a fake Chatwoot on loopback that answers with the documented shapes
(``tests/helpdesk_fake.py``): the time from sending a ``message_created`` webhook to the
private note arriving at the fake, p50 and p95, with 1 conversation at a time and 8 at
once. The reference, timed in the same run: the suggestion alone (``suggest_thread`` on the
same thread), so the ratio is what the webhook path adds. With 8 at once, half of the
conversations get an agent's reply right after the customer's message: the share of those
suggestions dropped as stale (and the number posted anyway) is printed.

**RT poll to comment** (``--rt``, where Request Tracker 5 is installed): a real RT
(``tests/rt_server.py``), 1 and then 8 new tickets, the time of the poll that comments on
them.

    .venv/bin/python benchmarks/helpdesk.py --run runs/support [--rows 200] [--rt] [--json]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the fake helpdesk and RT server

from _common import parser, report  # noqa: E402

GREETINGS = ["hi", "hello there", "good morning", "hey, anyone there?"]
ASKS = [("Could you give me your order number?", "it's order {v}", "Order Number", "44{k:02d}7"),
        ("Which email address is the account under?", "my email is {v}", "Email Address", "client{k}@example.com")]


def thread_of(k: int, message: str) -> tuple[Any, str, str]:
    from bigramlm.data.conversation import Turn, conversation

    ask, say, name, value = ASKS[k % len(ASKS)]
    value = value.format(k=k % 100)
    turns = [Turn("customer", GREETINGS[k % len(GREETINGS)]), Turn("agent", "Hello! How can I help you today?"),
             Turn("customer", message), Turn("agent", ask), Turn("customer", say.format(v=value))]
    return conversation(f"eval-{k}", "benchmark", turns), name, value


def chrf(pairs: list[tuple[str, str]]) -> float:
    from bigramlm.support.chrf import pairwise_chrf_groups

    return float(statistics.fmean(float(m[0, 1]) for m in pairwise_chrf_groups([[h, r] for h, r in pairs])))


def evaluate_threads(assistant: Any, rows: int) -> dict[str, Any]:
    from bigramlm.data.instructions import read_split_rows
    from bigramlm.support.brand import fill_placeholders
    from bigramlm.support.settings import SuggestSettings
    from bigramlm.support.thread import suggest_thread

    cases = [c for c in read_split_rows(assistant.spec, assistant.data, "test") if c.intent][:rows]
    single_ok, thread_ok, single_pairs, thread_pairs, open_value = 0, 0, [], [], 0
    for k, case in enumerate(cases):
        single = assistant.suggest(case.message, SuggestSettings(n=3, seed=k))
        conv, name, value = thread_of(k, case.message)
        answer = suggest_thread(assistant, conv, SuggestSettings(n=3, seed=k))
        single_ok += single.understanding.intent == case.intent
        thread_ok += answer.result.understanding.intent == case.intent
        top_single = single.suggestions[0].filled_text if single.suggestions else ""
        top_thread = answer.result.suggestions[0] if answer.result.suggestions else None
        single_pairs.append((top_single, case.reply))
        thread_pairs.append((top_thread.filled_text if top_thread else "", fill_placeholders(case.reply, {name: value}).text))
        open_value += bool(top_thread and name in top_thread.unfilled_placeholders)
    n = len(cases)
    return {"rows": n, "single_intent_accuracy": single_ok / n, "thread_intent_accuracy": thread_ok / n,
            "single_chrf": chrf(single_pairs), "thread_chrf": chrf(thread_pairs), "thread_value_left_open": open_value / n}


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_s": statistics.median(ordered), "p95_s": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
            "samples": len(ordered)}


def message_event(conv: int, message: int, outgoing: bool = False) -> dict[str, Any]:
    from helpdesk_fake import fixture

    event = fixture("chatwoot", "webhook_message_created.json")
    event["id"], event["conversation"]["display_id"] = message, conv
    if outgoing:
        event["message_type"], event["sender"] = "outgoing", {"id": 2, "type": "user"}
    return event


def webhook_latency(assistant: Any, store: Any, rounds: int, alone: Any) -> dict[str, Any]:
    import httpx
    from desk_helpers import ThreadServer
    from helpdesk_fake import FakeHelpdesk

    from bigramlm.helpdesk.chatwoot import ChatwootClient, ChatwootHooks
    from bigramlm.helpdesk.core import Assist
    from bigramlm.helpdesk.outbox import Outbox
    from bigramlm.helpdesk.secrets import Secret
    from bigramlm.serve.helpdesk import helpdesk_app

    fake = FakeHelpdesk("chatwoot", "token")

    def arrived() -> dict[str, float]:  # conversation -> when its note reached the fake
        return {c.path.split("/")[-2]: c.at for c in fake.named("create message")}

    out: dict[str, Any] = {}
    with ThreadServer(fake.app()) as api:
        outbox = Outbox().start()
        hooks = ChatwootHooks(ChatwootClient(api.base, Secret("token")), Assist(assistant, store), outbox)
        with ThreadServer(helpdesk_app(chatwoot=hooks, chatwoot_secret=Secret("s"))) as receiver:
            counter = iter(range(1000, 100000))

            def one(conv: int, answer_first: bool = False) -> float | None:
                sent = time.perf_counter()
                httpx.post(f"{receiver.base}/hooks/chatwoot", params={"secret": "s"}, json=message_event(conv, next(counter)))
                if answer_first:
                    httpx.post(f"{receiver.base}/hooks/chatwoot", params={"secret": "s"},
                               json=message_event(conv, next(counter) + 50000, outgoing=True))
                return sent

            all_stale: set[int] = set()
            for concurrent in (1, 8):
                samples, made_stale = [], 0
                for r in range(rounds):
                    if concurrent == 1:  # the reference, interleaved: the same machine load for both
                        out.setdefault("suggestion_alone", []).append(alone())
                    convs = [next(counter) for _ in range(concurrent)]
                    stale = {c for i, c in enumerate(convs) if concurrent > 1 and i % 2 == 1}
                    with ThreadPoolExecutor(concurrent) as pool:
                        sent = dict(zip(convs, pool.map(lambda c: one(c, c in stale), convs)))
                    outbox.wait_idle(600)
                    made_stale, notes = made_stale + len(stale), arrived()
                    all_stale |= stale
                    samples += [notes[str(c)] - sent[c] for c in convs if str(c) in notes and c not in stale]
                out[f"concurrent_{concurrent}"] = {**percentiles(samples), "made_stale": made_stale}
            out["stale_dropped"] = hooks.guard.dropped
            # An answered-first conversation whose note was posted anyway: its suggestion was
            # written and posted before the agent's reply reached the connector.
            out["stale_posted"] = sum(1 for c in all_stale if str(c) in arrived())
        outbox.stop()
    if fake.violations:
        raise SystemExit(f"the connector made undocumented calls: {fake.violations}")
    return out


def suggestion_alone(assistant: Any) -> Any:
    """One timing of the reference: the suggestion for the fixture's thread, called directly."""
    from helpdesk_fake import fixture

    from bigramlm.helpdesk.chatwoot import chatwoot_conversation
    from bigramlm.helpdesk.core import Assist

    conv = chatwoot_conversation("12", fixture("chatwoot", "list_messages_response.json")["payload"])
    assist = Assist(assistant, None)

    def once() -> float:
        start = time.perf_counter()
        assist.suggest(conv)
        return time.perf_counter() - start

    once()  # the first call pays for lazy loading, as the connector's first note does not here either
    return once


def rt_latency(assistant: Any, store: Any) -> dict[str, Any]:
    import httpx
    from rt_server import CUSTOMER, RTServer, installed

    from bigramlm.helpdesk.core import Assist
    from bigramlm.helpdesk.rt import RTClient, RTWatcher, auth_header
    from bigramlm.helpdesk.secrets import Secret

    if not installed():
        return {"skipped": "Request Tracker 5 is not installed (scripts/test.sh installs it)"}
    server = RTServer()
    try:
        watcher = RTWatcher(RTClient(server.url, auth_header(user="root", password=Secret("password"))), Assist(assistant, store))
        watcher.poll()
        out = {}
        name, password, email = CUSTOMER
        with httpx.Client(base_url=f"{server.url}/REST/2.0", auth=(name, password), timeout=30) as customer:
            for tickets in (1, 8):
                for k in range(tickets):
                    customer.post("/ticket", json={"Queue": "General", "Subject": f"t{k}", "Requestor": email,
                                                   "Content": "I want to cancel order 5521"})
                start = time.perf_counter()
                commented = watcher.poll().commented
                out[f"tickets_{tickets}"] = {"poll_to_comments_s": time.perf_counter() - start, "commented": len(commented)}
        return out
    finally:
        server.remove()


def main() -> None:
    p = parser("threads against single messages; webhook-to-note and RT poll-to-comment latency")
    p.add_argument("--run", required=True, help="an instruction run (e.g. a --recipe support run)")
    p.add_argument("--rows", type=int, default=200, help="test rows for the multi-turn set (default 200; 0 skips it)")
    p.add_argument("--rounds", type=int, default=10, help="webhook rounds per concurrency (default 10)")
    p.add_argument("--rt", action="store_true", help="also time RT's poll-to-comment against a real RT")
    args = p.parse_args()
    from bigramlm.support.assistant import Assistant
    from bigramlm.support.store import CaseStore

    work = Path(tempfile.mkdtemp(prefix="bigramlm-helpdesk-bench-"))
    assistant = Assistant.load(args.run, store=str(work / "cases.sqlite"))
    store = CaseStore(work / "hooks.sqlite")
    threads = evaluate_threads(assistant, args.rows) if args.rows else None
    hooks = webhook_latency(assistant, store, args.rounds, suggestion_alone(assistant))
    alone = statistics.median(hooks.pop("suggestion_alone"))
    rt = rt_latency(assistant, store) if args.rt else {"skipped": "run with --rt"}
    one = hooks["concurrent_1"]
    result = {"threads": threads, "suggestion_alone_s": alone, "webhook": hooks, "rt": rt,
              "webhook_p50_over_suggestion": one["p50_s"] / alone}
    lines = [] if threads is None else [
        f"multi-turn set: {threads['rows']} test rows (greeting, request, value asked, value stated)",
        f"  intent accuracy: thread {threads['thread_intent_accuracy']:.3f}  single message {threads['single_intent_accuracy']:.3f}",
        f"  chrF of the top suggestion: thread {threads['thread_chrf']:.1f}  single message {threads['single_chrf']:.1f}",
        f"  thread suggestions leaving the stated value open: {threads['thread_value_left_open']:.3f}",
    ]
    lines += [
        f"webhook -> note, 1 conversation: p50 {one['p50_s']:.3f} s  p95 {one['p95_s']:.3f} s  "
        f"({one['p50_s'] / alone:.2f}x the suggestion alone, {alone:.3f} s)",
        f"webhook -> note, 8 at once: p50 {hooks['concurrent_8']['p50_s']:.3f} s  p95 {hooks['concurrent_8']['p95_s']:.3f} s",
        f"stale: {hooks['stale_dropped']} of {hooks['concurrent_8']['made_stale']} answered-first suggestions dropped, "
        f"{hooks['stale_posted']} posted before the answer arrived",
        f"RT poll -> comment: {rt}",
    ]
    report("helpdesk", result, args.json, lines)


if __name__ == "__main__":
    main()
