"""The bounds of the desk server, in a module light enough for the CLI to import."""

from __future__ import annotations

from dataclasses import dataclass

from bigramlm.support.settings import MAX_N, MAX_REPLY_TOKENS


@dataclass
class ServerLimits:
    """Every bound the server enforces; each is named in the 422 that breaks it."""

    max_message_chars: int = 2000
    max_reply_chars: int = 8000
    max_prompt_chars: int = 8000
    #: at most the suggest settings' bounds (``support.settings``), which the library enforces too
    max_n: int = MAX_N
    max_new_tokens: int = MAX_REPLY_TOKENS
    max_body_bytes: int = 64 * 1024
    #: arrays and objects nested in a request body; deeper is refused (400) before it is parsed,
    #: as JSON decoding and validation recurse once per level (500 or a reset at a few hundred)
    max_json_depth: int = 64
    max_page: int = 200
    #: characters of the reason an agent may give for dismissing a suggestion
    max_reason_chars: int = 500
    max_chat_messages: int = 64
    #: generations running at once; requests beyond get 503 + Retry-After, never a queue.
    #: Eight: the requests that run together share their decode (``batch``), so eight agents
    #: cost about one batch of 24 rows, not eight decodes (benchmarks/desk_latency.py).
    max_concurrent: int = 8
    #: seconds one generation may run
    timeout_s: float = 30.0
    retry_after_s: int = 1
    #: seconds a client may take to send a request's headers; then the connection is closed
    header_timeout_s: float = 10.0
    #: seconds a client may take to send a whole request body; then 408 and the connection is closed
    body_timeout_s: float = 10.0
    #: seconds an idle keep-alive connection is held open between requests
    keep_alive_s: float = 5.0
    #: torch intra-op threads for generation; None: bigramlm.training.threads' policy
    #: (1 for tiny models, else the cores the machine's load leaves idle)
    threads: int | None = None
    #: speculative decoding from the evidence replies (``generation.speculation``); False: ``--no-speculate``
    speculate: bool = True
    #: concurrent suggestion requests decode together (``generation.batcher``); False: ``--no-batch``
    batch: bool = True
