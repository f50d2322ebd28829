"""``bigramlm serve RUN_DIR``: the agent desk and its HTTP API."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bigramlm.cli.common import add_speculate_flag, add_store_argument, add_threads_flag, first_line
from bigramlm.errors import BigramLMError


def add_serve_parser(sub: argparse._SubParsersAction) -> None:
    from bigramlm.serve.limits import ServerLimits

    d = ServerLimits()
    p = sub.add_parser(
        "serve",
        help="serve the agent desk and the HTTP API",
        description="Serve the agent desk page, the JSON API and OpenAI-compatible endpoints for a run.",
    )
    p.add_argument("run_dir", type=Path, help="run directory")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind (default 127.0.0.1; others need --token or agents, and without --token such "
                        "a desk is locked while no agent is active)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--brand", type=Path, default=None, help="brand profile (TOML) that fills placeholders")
    p.add_argument("--token", default=None,
                   help="bearer token required on the API (default: $BIGRAMLM_TOKEN; a flag is visible to every user in ps, "
                        "so prefer --token-file or the variable); a non-ASCII token is sent as its UTF-8 bytes")
    p.add_argument("--token-file", type=Path, default=None, help="read the bearer token from this file (its first line)")
    p.add_argument("--max-concurrent", type=int, default=d.max_concurrent,
                   help=f"generations at once; more get 503 + Retry-After (default {d.max_concurrent})")
    p.add_argument("--timeout", type=float, default=d.timeout_s, help=f"seconds per generation (default {d.timeout_s:g})")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"], help="log level (default info)")
    p.add_argument("--log-format", default="text", choices=["text", "json"],
                   help="log lines as text or one JSON object each (default text); the access line carries the request_id")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="answer to this Host name too on a loopback address, as a reverse proxy on the same host passes it "
                        "(repeatable; other names get 421)")
    p.add_argument("--root-path", default="", metavar="PREFIX",
                   help="the path prefix a reverse proxy mounts the desk under, e.g. /desk (the proxy strips it)")
    add_threads_flag(p)
    add_speculate_flag(p)
    p.add_argument("--no-batch", dest="batch", action="store_false",
                   help="decode each suggestion request on its own, instead of the requests that run at the same "
                        "time together (their replies are the same either way)")
    add_store_argument(p)
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from bigramlm.serve.limits import ServerLimits
    from bigramlm.serve.network import check_exposure

    token = args.token or _token_file(args.token_file) or os.environ.get("BIGRAMLM_TOKEN") or None
    from bigramlm.support.store import run_has_agents

    check_exposure(args.host, token, run_has_agents(args.run_dir, args.store))
    if not 0 <= args.port <= 65535:
        raise BigramLMError(f"--port must be in 0..65535 (got {args.port})")
    if args.max_concurrent < 1:
        raise BigramLMError(f"--max-concurrent must be at least 1 (got {args.max_concurrent})")
    if not args.timeout > 0:
        raise BigramLMError(f"--timeout must be positive (got {args.timeout})")
    if args.brand is not None and not args.brand.is_file():
        raise BigramLMError(f"--brand {args.brand}: no such file")
    if args.root_path and (not args.root_path.startswith("/") or args.root_path.endswith("/")):
        raise BigramLMError(f"--root-path must start with / and not end with one, e.g. /desk (got {args.root_path!r})")
    for name in args.allowed_host:
        if not name or any(c.isspace() or c in "/@" for c in name):
            raise BigramLMError(f"--allowed-host must be a host name such as support.example.com (got {name!r})")
    limits = ServerLimits(max_concurrent=args.max_concurrent, timeout_s=args.timeout, threads=args.threads,
                          speculate=args.speculate, batch=args.batch)
    from bigramlm.serve.logs import configure_logging
    from bigramlm.serve.server import serve  # heavy (FastAPI, uvicorn, torch): only once the arguments are good

    configure_logging(args.log_level, args.log_format)
    serve(args.run_dir, host=args.host, port=args.port, brand_path=str(args.brand) if args.brand else None,
          token=token, limits=limits, log_level=args.log_level, allowed_hosts=tuple(args.allowed_host),
          root_path=args.root_path, store=args.store)
    return 0


def _token_file(path: Path | None) -> str | None:
    return None if path is None else first_line(path, "--token-file", "token")
