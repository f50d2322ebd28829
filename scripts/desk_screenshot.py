"""Take the desk's picture in the README and docs/desk.md: serve a run with `bigramlm serve`,
ask it one customer message in headless Chromium, and save the page as the agent sees it once
the suggestions are done. Nothing is retouched: the PNG is Chromium's own.

    .venv/bin/python scripts/desk_screenshot.py runs/support \\
        --brand src/bigramlm/resources/sample-brand.toml \\
        --message "Hello, I need to cancel order 88213, it won't get here in time for the party." \\
        --out docs/desk.png

Needs the [serve] and [support] extras, Playwright (the [dev] extra) and Debian's Chromium
(`apt-get install chromium`), as the browser tests do.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
#: The flags the browser tests give Debian's Chromium in a container (tests/test_server_browser.py).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Screenshot the agent desk answering one message.")
    parser.add_argument("run_dir", type=Path, help="the run directory to serve")
    parser.add_argument("--brand", type=Path, help="brand profile (TOML) that fills placeholders")
    parser.add_argument("--message", required=True, help="the customer message to ask about")
    parser.add_argument("--n", type=int, default=3, help="suggestions to ask for (default 3)")
    parser.add_argument("--out", type=Path, default=Path("docs/desk.png"), help="the PNG to write")
    parser.add_argument("--width", type=int, default=1200, help="viewport width in pixels (default 1200)")
    parser.add_argument("--height", type=int, default=900, help="viewport height in pixels (default 900)")
    parser.add_argument("--start-timeout", type=float, default=180.0,
                        help="seconds to wait for the desk to answer /healthz (default 180: a GPT run loads slowly on busy cores)")
    parser.add_argument("--suggest-timeout", type=float, default=120.0,
                        help="seconds to wait for the suggestions (default 120)")
    return parser.parse_args(argv)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(base: str, server: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll /healthz until it answers 200, the server dies, or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"error: bigramlm serve exited with status {server.returncode}")
        try:
            if httpx.get(base + "/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)  # a poll interval, not a wait for an outcome: the deadline bounds it
    raise SystemExit(f"error: the desk did not answer /healthz within {timeout:g} s")


def screenshot(base: str, args: argparse.Namespace) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.goto(base + "/")
            page.fill("#message", args.message)
            page.fill("#n", str(args.n))
            page.click("#suggest")
            page.wait_for_selector("body[data-state=done]", timeout=args.suggest_timeout * 1000)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=False)
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    port = free_port()
    command = [sys.executable, "-m", "bigramlm", "serve", str(args.run_dir), "--port", str(port)]
    if args.brand is not None:
        command += ["--brand", str(args.brand)]
    server = subprocess.Popen(command)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, server, args.start_timeout)
        screenshot(base, args)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
