"""One webhook delivery attempt, its outcome as a short error class, backoff and redaction.

Nothing here sleeps: the dispatcher schedules retries per receiver (see
``dispatcher.py``). Errors are reduced to a short class ("HTTP 500", "timeout",
"connection refused") and receivers to their host, so URLs, path tokens and
exception text never reach the store, the API or the dashboard.
"""

from __future__ import annotations

import email.utils
import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class AttemptResult:
    """Outcome of one POST.

    Attributes:
        ok: 2xx answer.
        error: short error class when not ok ("HTTP 503", "timeout", ...).
        retryable: whether trying again later can help (5xx, 408/425/429, network).
        retry_after_s: the receiver's ``Retry-After``, in seconds, when it sent one.
    """

    ok: bool
    error: str | None = None
    retryable: bool = False
    retry_after_s: float | None = None


def redact_url(url: str) -> str:
    """Host (and port) only: ``https://u:tok@hooks.example.com/T0/B1?k=s`` -> ``hooks.example.com``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "invalid-url"
        port = parts.port
    except ValueError:
        return "invalid-url"
    return f"{host}:{port}" if port else host


def receiver_id(url: str) -> str:
    """Stable id of a webhook receiver that does not reveal its URL."""
    return "webhook:" + hashlib.sha256(url.encode()).hexdigest()[:16]


def classify_error(exc: BaseException) -> str:
    """A short, URL-free class for a transport error."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        # the text is only inspected, never stored
        text = f"{exc} {exc.__cause__ or ''}".lower()
        return "connection refused" if "refused" in text else "connection error"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol error"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return "invalid URL"
    return "request error"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date).

    Returns:
        A delay >= 0, or None when the header is absent or unreadable.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def post_once(client: httpx.Client, url: str, payload: dict[str, Any] | list[Any]) -> AttemptResult:
    """POST ``payload`` as JSON once; never raises for transport or HTTP errors."""
    try:
        response = client.post(url, json=payload)
    except httpx.HTTPError as exc:
        return AttemptResult(ok=False, error=classify_error(exc), retryable=True)
    if response.is_success:
        return AttemptResult(ok=True)
    status = response.status_code
    return AttemptResult(
        ok=False,
        error=f"HTTP {status}",
        retryable=status in RETRY_STATUS,
        retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
    )


def backoff_delay(
    attempts: int,
    base_s: float,
    max_s: float,
    rng: Callable[[], float] = random.random,
) -> float:
    """Exponential backoff with jitter after ``attempts`` (>= 1) failed attempts.

    The delay is uniform in ``[d/2, d]`` with ``d = min(base_s * 2**(attempts-1), max_s)``:
    growing, capped, and spread so receivers coming back are not hit all at once.
    """
    ceiling = min(base_s * 2 ** max(attempts - 1, 0), max_s)
    return ceiling * (0.5 + 0.5 * rng())


def retry_delay(
    result: AttemptResult,
    attempts: int,
    base_s: float,
    max_s: float,
    rng: Callable[[], float] = random.random,
) -> float:
    """When to try again: the receiver's ``Retry-After`` if it gave one (capped), else backoff.

    Non-retryable failures (e.g. HTTP 400) are still retried, at the longest delay:
    a misconfigured receiver may be fixed, and the alert must not be dropped.
    """
    if result.retry_after_s is not None:
        return min(result.retry_after_s, max_s)
    if not result.retryable:
        return max_s
    return backoff_delay(attempts, base_s, max_s, rng)
