"""One webhook attempt, error classes, Retry-After, backoff and URL redaction (pure logic)."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from finance_monitor.webhooks import (
    AttemptResult,
    backoff_delay,
    parse_retry_after,
    post_once,
    receiver_id,
    redact_url,
    retry_delay,
)

SECRET_URL = "https://user:s3cret@hooks.example.com:8443/services/T000/B000/XXXXTOKEN?key=abc"


def _client(outcome: int | Exception, headers: dict[str, str] | None = None) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(outcome, Exception):
            raise outcome
        return httpx.Response(outcome, headers=headers)

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_success_and_http_errors_are_classified_without_the_url() -> None:
    assert post_once(_client(204), SECRET_URL, {"a": 1}) == AttemptResult(ok=True)
    failed = post_once(_client(503), SECRET_URL, {})
    assert (failed.ok, failed.error, failed.retryable) == (False, "HTTP 503", True)
    rejected = post_once(_client(400), SECRET_URL, {})
    assert (rejected.error, rejected.retryable) == ("HTTP 400", False)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), "connection refused"),
        (httpx.ConnectError("name resolution failed"), "connection error"),
        (httpx.ReadTimeout("timed out"), "timeout"),
        (httpx.RemoteProtocolError("peer closed"), "protocol error"),
    ],
)
def test_transport_errors_become_short_classes(exc: Exception, expected: str) -> None:
    result = post_once(_client(exc), SECRET_URL, {})
    assert (result.ok, result.error, result.retryable) == (False, expected, True)
    assert "hooks.example.com" not in (result.error or "")


def test_redaction_keeps_only_the_host() -> None:
    assert redact_url(SECRET_URL) == "hooks.example.com:8443"
    assert redact_url("http://10.0.0.1/hook?token=x") == "10.0.0.1"
    assert redact_url("not a url") == "invalid-url"
    rid = receiver_id(SECRET_URL)
    assert rid.startswith("webhook:") and "TOKEN" not in rid and "example" not in rid


def test_retry_after_seconds_and_http_dates_are_honoured() -> None:
    assert parse_retry_after("120") == 120.0
    when = email.utils.formatdate(1_000_030.0, usegmt=True)
    assert parse_retry_after(when, now=1_000_000.0) == pytest.approx(30.0)
    assert parse_retry_after(email.utils.formatdate(5.0, usegmt=True), now=100.0) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    result = post_once(_client(429, {"Retry-After": "7"}), SECRET_URL, {})
    assert result.retry_after_s == 7.0
    # Retry-After wins over the backoff, capped by the largest delay
    assert retry_delay(result, 1, base_s=0.5, max_s=300, rng=lambda: 0.0) == 7.0
    assert retry_delay(result, 1, base_s=0.5, max_s=5, rng=lambda: 0.0) == 5.0


def test_backoff_grows_exponentially_with_bounded_jitter_and_a_cap() -> None:
    lows = [backoff_delay(n, 1.0, 60.0, rng=lambda: 0.0) for n in range(1, 9)]
    highs = [backoff_delay(n, 1.0, 60.0, rng=lambda: 0.999999) for n in range(1, 9)]
    assert lows == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert highs[-1] == pytest.approx(60.0)
    assert all(lo <= hi for lo, hi in zip(lows, highs, strict=True))
    # a non-retryable answer is still retried, at the longest delay (never dropped)
    rejected = AttemptResult(ok=False, error="HTTP 400", retryable=False)
    assert retry_delay(rejected, 1, base_s=0.5, max_s=300) == 300
