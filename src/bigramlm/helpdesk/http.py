"""One outbound call to a helpdesk's API: what is worth retrying, and errors without secrets."""

from __future__ import annotations

from typing import Any

import httpx

from bigramlm.errors import BigramLMError
from bigramlm.helpdesk.outbox import Retry


def call(http: httpx.Client, method: str, path: str, what: str, **kwargs: Any) -> Any:
    """``method path`` on the helpdesk; its JSON. Unreachable, a timeout, 429 or 5xx raise
    ``Retry`` (the outbox tries again); any other refusal is a ``BigramLMError`` naming the
    call and status, never a header (the token is in one)."""
    try:
        r = http.request(method, path, **kwargs)
    except httpx.HTTPError as failure:
        raise Retry(f"{what}: {type(failure).__name__}") from None
    if r.status_code == 429 or r.status_code >= 500:
        raise Retry(f"{what}: the helpdesk answered {r.status_code}")
    if r.status_code >= 400:
        raise BigramLMError(f"{what}: the helpdesk refused with {r.status_code}", param="url")
    try:
        return r.json()
    except ValueError:
        return None
