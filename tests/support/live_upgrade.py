"""The common part of the live-upgrade tests: the served model's state, the wait for the
upgrade's outcome, and a client that keeps calling the server while it swaps its model.

pytest does not rewrite the asserts of this module: each one says what it saw.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

OUTCOMES = {"swapped", "refused", "failed"}


def served_model(client: httpx.Client) -> dict[str, Any]:
    """The ``model`` section of ``/healthz`` (tier, upgrade state, scores)."""
    response = client.get("/healthz")
    assert response.status_code == 200, response.text
    model: dict[str, Any] = response.json()["model"]
    return model


def wait_for_outcome(client: httpx.Client, deadline_s: float) -> dict[str, Any]:
    """Poll ``/healthz`` until the upgrade is swapped, refused or failed; returns the model."""
    deadline = time.monotonic() + deadline_s
    model: dict[str, Any] = {}
    while time.monotonic() < deadline:
        model = served_model(client)
        if model["upgrade"]["state"] in OUTCOMES:
            return model
        time.sleep(1.0)
    raise AssertionError(f"no upgrade outcome within {deadline_s:.0f} s: {model}")


def assert_upgrading_from_fast(model: dict[str, Any]) -> None:
    """The server serves the fast tier and its upgrade has not ended yet."""
    assert model["tier"] == "fast", model
    assert model["upgrade"]["state"] in {"pending", "training", "evaluating"}, model


def assert_swapped(outcome: dict[str, Any]) -> dict[str, Any]:
    """The upgrade swapped the full tier in, scored better than the served model, and
    the served score is now the candidate's; returns the ``upgrade`` section."""
    assert outcome["upgrade"]["state"] == "swapped", outcome
    assert outcome["tier"] == "full", outcome
    upgrade: dict[str, Any] = outcome["upgrade"]
    assert upgrade["fraction"] == 1.0, upgrade
    assert upgrade["candidate_score"] > upgrade["served_score"], upgrade
    assert outcome["validation_score"] == upgrade["candidate_score"], outcome
    return upgrade


def assert_swap_metrics(client: httpx.Client, model: str) -> None:
    """``/metrics`` shows the full tier's validation score and the swapped state."""
    metrics = client.get("/metrics").text
    for line in (
        f'keel_model_validation_score{{model="{model}",tier="full"}}',
        f'keel_model_upgrade_state{{model="{model}",state="swapped"}} 1.0',
    ):
        assert line in metrics, f"{line} not in /metrics"


class ClientCalls:
    """What a client calling throughout an upgrade saw: one status code and one served
    tier per call, in order, and any exception that ended its loop."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.tiers: list[str] = []
        self.errors: list[BaseException] = []

    def assert_never_failed(self, first_tier: str, last_tier: str) -> None:
        """Every call answered 200 (and none raised), the first on ``first_tier`` and the
        last on ``last_tier``: the client was served before, during and after the swap."""
        assert not self.errors, self.errors
        assert self.statuses and set(self.statuses) == {200}, self.statuses
        assert self.tiers[0] == first_tier and self.tiers[-1] == last_tier, self.tiers


@contextmanager
def calling_throughout(
    url: str,
    call: Callable[[httpx.Client, int], httpx.Response],
    *,
    calls_after: int = 10,
    after_deadline_s: float = 120.0,
) -> Iterator[ClientCalls]:
    """Run ``call(client, k)`` (k = 1, 2, ...) in a thread until the block ends, each
    call followed by a look at the served tier and a 50 ms pause.

    When the block ends normally (the upgrade's outcome is known), the client goes on
    for ``calls_after`` more calls (at most ``after_deadline_s``) so that it is also
    served by the new model; then the thread is stopped and joined.
    """
    calls = ClientCalls()
    stop = threading.Event()

    def loop() -> None:
        try:
            with httpx.Client(base_url=url, timeout=60) as http:
                k = 0
                while not stop.is_set():
                    k += 1
                    calls.statuses.append(call(http, k).status_code)
                    calls.tiers.append(served_model(http)["tier"])
                    time.sleep(0.05)
        except BaseException as exc:  # reported by assert_never_failed
            calls.errors.append(exc)

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        yield calls
        after = len(calls.statuses)
        deadline = time.monotonic() + after_deadline_s
        while len(calls.statuses) < after + calls_after and time.monotonic() < deadline:
            if not thread.is_alive():
                break
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(120)
