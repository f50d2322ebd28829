"""``bigramlm thread RUN_DIR CONVERSATION.json``: suggestions for a conversation's latest customer turn.

The conversation is ``data.conversation``'s JSON form (``{"id", "source", "turns": [{"role",
"text", "time"}]}``; ``-`` reads it from stdin), read with its thread (``support.thread``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bigramlm.cli.common import add_json_flag, add_store_argument, print_json


def add_thread_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("thread", help="suggest replies to a conversation's latest customer turn, read with its thread",
                       description="Suggest replies to the latest customer turn of a conversation (JSON: id, source, "
                                   "turns of role customer|agent|bot|note and text), reading earlier turns for a short "
                                   "or unclear one and filling values the thread stated.")
    p.add_argument("run_dir", type=Path, help="an instruction run directory")
    p.add_argument("conversation", help="the conversation's JSON file, or - for stdin")
    p.add_argument("-n", type=int, default=3, help="suggestions (default 3)")
    p.add_argument("--seed", type=int, default=None, help="random seed for reproducible suggestions")
    add_store_argument(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_thread)


def read_conversation(source: str) -> dict:
    from bigramlm.errors import BigramLMError

    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        data = json.loads(text)
    except OSError as failure:
        raise BigramLMError(f"cannot read {source}: {failure.strerror}", param="conversation") from None
    except ValueError as failure:
        raise BigramLMError(f"{source} is not JSON: {failure}", param="conversation") from None
    if not isinstance(data, dict):
        raise BigramLMError(f"{source}: a conversation is a JSON object with id, source and turns", param="conversation")
    return data


def cmd_thread(args: argparse.Namespace) -> int:
    from bigramlm.cli.support import shown
    from bigramlm.data.conversation import from_dict
    from bigramlm.support.assistant import Assistant
    from bigramlm.support.settings import SuggestSettings
    from bigramlm.support.thread import suggest_thread

    conv = from_dict(read_conversation(args.conversation))
    answer = suggest_thread(Assistant.load(args.run_dir, store=args.store), conv, SuggestSettings(n=args.n, seed=args.seed))
    r = answer.request
    result = {**answer.result.to_dict(), "thread": {"conversation": conv.id, "source": conv.source, "turn": r.turn,
                                                    "with_context": r.with_context, "values": r.values}}
    if args.json:
        print_json(result)
        return 0
    context = " (read with the customer's earlier turns)" if r.with_context else ""
    print(shown(f"turn {r.turn}{context}: intent {result['intent'] or 'none fits'}"))
    for k, s in enumerate(result["suggestions"], start=1):
        print(shown(f"\n{k}. {s['filled_text']}"))
    return 0
