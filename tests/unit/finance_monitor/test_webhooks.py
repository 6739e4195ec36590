"""Webhook retries and backoff (httpx mock transport: pure logic, no network)."""

from __future__ import annotations

import httpx

from finance_monitor.webhooks import post_with_retries


def _client(statuses: list[int | Exception]) -> tuple[httpx.Client, list[dict]]:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append({"url": str(request.url), "body": request.read()})
        outcome = statuses[min(len(seen) - 1, len(statuses) - 1)]
        if isinstance(outcome, Exception):
            raise outcome
        return httpx.Response(outcome)

    return httpx.Client(transport=httpx.MockTransport(handler)), seen


def test_transient_failures_are_retried_with_exponential_backoff() -> None:
    client, seen = _client([503, 503, 200])
    sleeps: list[float] = []
    attempts, error = post_with_retries(
        client, "http://hook/x", {"a": 1}, max_retries=5, backoff_s=0.1, sleep=sleeps.append
    )
    assert (attempts, error) == (3, None)
    assert sleeps == [0.1, 0.2]
    assert seen[0]["body"] == b'{"a":1}'


def test_client_errors_fail_without_retry() -> None:
    client, seen = _client([400])
    attempts, error = post_with_retries(
        client, "http://hook/x", {}, max_retries=5, backoff_s=0.1, sleep=lambda _s: None
    )
    assert attempts == 1
    assert error == "http://hook/x: HTTP 400"
    assert len(seen) == 1


def test_connection_errors_exhaust_the_retries_and_report() -> None:
    client, seen = _client([httpx.ConnectError("refused")])
    attempts, error = post_with_retries(
        client, "http://hook/x", {}, max_retries=2, backoff_s=0.1, sleep=lambda _s: None
    )
    assert attempts == 3
    assert error is not None and "ConnectError" in error
    assert len(seen) == 3
