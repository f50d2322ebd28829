"""``bigramlm agents add NAME RUN | rotate NAME RUN | remove NAME RUN | list RUN``: the desk's agents, by name.

``add`` prints the new agent's token once (the store keeps only its sha256); ``rotate``
prints a new one for an active agent, whose old token is refused from then on. Once a run
has an agent, its desk accepts only agents' tokens, and records who accepted, edited,
dismissed and was shown what (``/api/stats?agent=NAME``). ``remove`` refuses the
agent's token from the next request on; its records keep its name.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path

from bigramlm.cli.common import add_json_flag, add_store_argument, print_json
from bigramlm.errors import BigramLMError


#: Printed once no agent is active: what the desk does then (why ``rotate``, not remove and add, renews a token).
LOCKED_NOTE = ("no active agent: a desk beyond loopback without --token is locked (401) until one is added; "
               "one on loopback takes requests without a token")


def add_agents_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("agents", help="the desk's agents: add (prints a token), rotate (prints a new one), remove, list",
                       description="Agents with names: each gets a token for the desk; what each accepts, edits and "
                                   "dismisses is recorded under its name.")
    p.add_argument("action", choices=["add", "rotate", "remove", "list"])
    p.add_argument("names", nargs="+", metavar="NAME RUN",
                   help="the agent's name and the run directory (add, rotate, remove), or the run directory alone (list)")
    add_store_argument(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_agents)


def cmd_agents(args: argparse.Namespace) -> int:
    from bigramlm.checkpoint import read_config
    from bigramlm.support.store import CaseStore

    want = 1 if args.action == "list" else 2
    if len(args.names) != want:
        usage = "bigramlm agents list RUN" if want == 1 else f"bigramlm agents {args.action} NAME RUN"
        raise BigramLMError(f"usage: {usage}")
    run_dir = Path(args.names[-1])
    read_config(run_dir)  # a run directory, or a one-line error
    with CaseStore.for_run(run_dir, args.store) as store:
        if args.action in ("add", "rotate"):
            token = store.add_agent(args.names[0]) if args.action == "add" else store.rotate_agent(args.names[0])
            if args.json:
                print_json({"agent": args.names[0], "token": token})
            else:
                print(token)
            return 0
        if args.action == "remove":
            if not store.remove_agent(args.names[0]):
                raise BigramLMError(f"no active agent {args.names[0]!r} in {run_dir}")
            print(f"removed {args.names[0]}: its token is refused from now on")
            if not store.has_agents():
                print(LOCKED_NOTE)
            return 0
        agents = store.agents()
    if args.json:
        print_json({"agents": [{"name": a.name, "created_at": a.created_at, "removed_at": a.removed_at} for a in agents]})
        return 0
    if not agents:
        print(f"no agents: the desk of {run_dir} works with its --token (or, on loopback, without one; "
              "beyond loopback without one it is locked)")
    for a in agents:
        since = datetime.fromtimestamp(a.created_at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        print(f"{a.name}  {'active' if a.active else 'removed'}  since {since}")
    return 0
