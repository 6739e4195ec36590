"""The feedback loop asks the live upgrade for a run every few corrections changes."""

from typing import Any, cast

import pytest

from customer_service.feedback_loop import FeedbackLoop, corrections_provider
from customer_service.runtime import AppRuntime


class FakeRuntime:
    """What the loop uses of ``AppRuntime``: services, the extra-data hook, requests."""

    def __init__(self, upgrade_on: bool) -> None:
        self.services = None
        self.extra_intent_data: Any = None
        self.upgrade_on = upgrade_on
        self.requests = 0

    def request_upgrade(self) -> bool:
        if self.upgrade_on:
            self.requests += 1
        return self.upgrade_on


def test_a_run_is_requested_every_n_changes_and_on_demand() -> None:
    runtime = FakeRuntime(upgrade_on=True)
    loop = FeedbackLoop(cast(AppRuntime, runtime), retrain_every=3)
    assert [loop.changed() for _ in range(7)] == [False, False, True, False, False, True, False]
    assert runtime.requests == 2
    assert loop.retrain() and runtime.requests == 3
    assert [loop.changed() for _ in range(3)] == [False, False, True]  # retrain reset the count
    # The upgrade asks the loop's provider; before the app is ready it has nothing.
    extra = runtime.extra_intent_data()
    assert len(extra.train) == len(extra.validation) == 0 and extra.out_of_scope == ()


def test_with_the_upgrade_off_nothing_is_requested() -> None:
    runtime = FakeRuntime(upgrade_on=False)
    loop = FeedbackLoop(cast(AppRuntime, runtime), retrain_every=1)
    assert not loop.changed() and not loop.retrain() and runtime.requests == 0
    never = FeedbackLoop(cast(AppRuntime, FakeRuntime(upgrade_on=True)), retrain_every=0)
    assert not any(never.changed() for _ in range(50))
    with pytest.raises(ValueError):
        FeedbackLoop(cast(AppRuntime, runtime), retrain_every=-1)
    assert corrections_provider(cast(AppRuntime, runtime)).version() == "--"
