"""Webhook delivery with retries and exponential backoff."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
MAX_BACKOFF_S = 30.0


def post_with_retries(
    client: httpx.Client,
    url: str,
    payload: dict[str, Any],
    *,
    max_retries: int,
    backoff_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[int, str | None]:
    """POST ``payload`` as JSON, retrying transient failures.

    Connection errors, timeouts and 408/425/429/5xx answers are retried after
    ``backoff_s * 2**attempt`` seconds (capped at 30 s); other 4xx answers fail at once.

    Returns:
        (attempts made, error message or None on success).
    """
    error: str | None = None
    for attempt in range(max_retries + 1):
        if attempt:
            sleep(min(backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S))
        try:
            response = client.post(url, json=payload)
        except httpx.HTTPError as exc:
            error = f"{url}: {type(exc).__name__}: {exc}"
            continue
        if response.is_success:
            return attempt + 1, None
        error = f"{url}: HTTP {response.status_code}"
        if response.status_code not in RETRY_STATUS:
            return attempt + 1, error
    return max_retries + 1, error
