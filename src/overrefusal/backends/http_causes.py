"""One-line causes and fixes for HTTP answers that would fail every request the same way.

Each function returns the line the user sees when such an answer stops a run; it names the cause
and what to do, and holds no secret (server text passes through the transport's redaction first).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from yarl import URL

_QUOTA = re.compile(r"insufficient[_ ]quota|exceeded your (current )?quota|billing|credit balance", re.I)


def server_message(data: Any) -> str | None:
    """The ``error.message`` (or ``message`` / ``detail``) of an error body, on one line."""
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    found = error.get("message") if isinstance(error, dict) else error
    found = found or data.get("message") or data.get("detail")
    if not isinstance(found, str) or not found.strip():
        return None
    return " ".join(found.split())[:160]


def quota_exhausted(data: Any) -> bool:
    """Whether a 429 body says the account's quota is used up (no wait will help), not a rate limit."""
    if not isinstance(data, dict):
        return False
    error = data.get("error")
    if isinstance(error, dict) and "insufficient_quota" in (error.get("code"), error.get("type")):
        return True
    return bool(_QUOTA.search(server_message(data) or ""))


def model_names(data: Any) -> list[str] | None:
    """Model ids from a ``/models`` answer (OpenAI and Anthropic both list ``{"data": [{"id": ...}]}``)."""
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    names = [str(i["id"]) for i in items if isinstance(i, dict) and isinstance(i.get("id"), str)]
    return names or None


def rejected(status: int, key_hint: str, has_key: bool, model: object) -> str:
    """401 / 403."""
    if status == 401 and not has_key:
        return "the server wants an API key (HTTP 401): export it in a variable and pass --api-key-env NAME"
    if status == 401:
        return f"the server rejected the API key (HTTP 401): check {key_hint}"
    return f"the server refused access (HTTP 403): check that the key in {key_hint} may use model {model!r}"


def not_found(base_url: str, model: object, served: list[str] | None) -> str:
    """404: an unknown model, or a wrong base URL."""
    if served is not None and model not in served:
        shown = ", ".join(served[:12]) + (f" and {len(served) - 12} more" if len(served) > 12 else "")
        return f"the server does not know model {model!r}: check --model; it serves {shown}"
    if served is not None:
        return f"{base_url} has no such route (HTTP 404): check --base-url (OpenAI-compatible servers end in /v1)"
    return f"HTTP 404 from {base_url}: check --model (is {model!r} served there?) and --base-url"


def quota(status: int, data: Any) -> str:
    """429 insufficient_quota, 402."""
    said = server_message(data)
    detail = f" ({said})" if said else ""
    return (
        f"the account is out of quota (HTTP {status}){detail}: add credit or raise the limit with the provider, "
        "then run the same command again to continue"
    )


def rate_limited(retry_after: float, cap: float) -> str:
    """429 with a ``Retry-After`` longer than the cap."""
    until = datetime.now(timezone.utc) + timedelta(seconds=retry_after)
    return (
        f"the server rate-limits requests until {until:%Y-%m-%d %H:%M:%S} UTC (Retry-After {retry_after:.0f}s, "
        f"more than the {cap:g}s cap): run the same command again then, or pass --max-retry-after "
        f"{math.ceil(retry_after)} to wait"
    )


def invalid(detail: str) -> str:
    """400."""
    said = " ".join(detail.split())[:160]
    return (
        f"the server rejected the request as invalid (HTTP 400: {said}): check --model, the generation "
        "settings (--max-tokens, --temperature, --top-p) and -B extra_body"
    )


def redirected(base_url: str, target: URL) -> str:
    """401 / 403 after a redirect to another origin, where the key was not sent."""
    return (
        f"{base_url} redirects to another origin ({target.origin()}), and keys are never sent to another "
        f"origin: pass --base-url with that server's address if you trust it"
    )
