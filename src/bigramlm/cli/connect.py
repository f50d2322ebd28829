"""``bigramlm connect chatwoot|zammad|rt RUN_DIR --url URL``: suggestions inside a helpdesk.

Chatwoot and Zammad call a webhook receiver this command serves; RT is watched through
its REST 2 API. Secrets (the helpdesk's API token, the webhook's shared secret, RT's user
and password) come from the environment or ``--secrets FILE``, never from a flag.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bigramlm.cli.common import add_store_argument

HELPDESKS = ("chatwoot", "zammad", "rt")


def add_connect_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "connect",
        help="post suggestions inside a helpdesk (Chatwoot, Zammad, Request Tracker) and store its resolved conversations",
        description="Connect a run to a helpdesk. chatwoot and zammad: serve the webhook receiver (POST /hooks/chatwoot "
                    "or /hooks/zammad) that posts the suggestions as a private note. rt: watch a queue through REST 2 and "
                    "comment the suggestions on the tickets. Resolved conversations become cases in the store. Secrets "
                    "from the environment or --secrets: CHATWOOT_API_TOKEN / ZAMMAD_API_TOKEN and BIGRAMLM_HOOK_SECRET; "
                    "RT_TOKEN, or RT_USER and RT_PASSWORD.",
    )
    p.add_argument("helpdesk", choices=HELPDESKS, help="which helpdesk")
    p.add_argument("run_dir", type=Path, help="run directory (an instruction run)")
    p.add_argument("--url", required=True, help="the helpdesk's address, e.g. https://chat.example.com or http://rt.example.com")
    p.add_argument("--secrets", type=Path, default=None, metavar="FILE",
                   help="a KEY=value file with the secrets (the environment wins over it)")
    p.add_argument("--host", default="127.0.0.1", help="where the webhook receiver listens (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8010, help="the webhook receiver's port (default 8010)")
    p.add_argument("--queue", default="General", help="rt: the queue to watch (default General)")
    p.add_argument("--interval", type=float, default=10.0, help="rt: seconds between polls (default 10)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"], help="log level (default info)")
    add_store_argument(p)
    p.set_defaults(func=cmd_connect)


def cmd_connect(args: argparse.Namespace) -> int:
    from bigramlm.errors import BigramLMError
    from bigramlm.serve.helpdesk import ConnectSettings, connect
    from bigramlm.serve.logs import configure_logging

    configure_logging(args.log_level)

    if not 0 <= args.port <= 65535:
        raise BigramLMError(f"port must be 0 to 65535 (got {args.port})", param="port")
    if args.interval <= 0:
        raise BigramLMError(f"interval must be positive (got {args.interval})", param="interval")
    connect(ConnectSettings(args.helpdesk, args.run_dir, args.url, args.host, args.port, args.queue, args.interval,
                            args.secrets, args.store))
    return 0
