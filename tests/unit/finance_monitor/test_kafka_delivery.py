"""``Delivery``: the per-record outcome of the librdkafka producer (fake client, pure logic)."""

from __future__ import annotations

from typing import Any

import pytest

from finance_monitor.kafka_io import Delivery, KafkaDeliveryError, RecordMetadata


class FakeMessage:
    """What librdkafka hands the callback: accessors, not attributes."""

    def topic(self) -> str:
        return "scored"

    def partition(self) -> int:
        return 4

    def offset(self) -> int:
        return 1234


class FakeClient:
    """Calls the pending callbacks on its ``after_polls``-th poll, like librdkafka's poll."""

    def __init__(self, after_polls: int, error: Any = None) -> None:
        self.after_polls = after_polls
        self.error = error
        self.polls = 0
        self.pending: list[Delivery] = []

    def poll(self, timeout: float) -> int:
        assert 0 < timeout <= 0.1
        self.polls += 1
        if self.polls == self.after_polls:
            for delivery in self.pending:
                delivery(self.error, FakeMessage())
        return 0


def test_get_polls_until_the_acknowledgement_arrives() -> None:
    client = FakeClient(after_polls=3)
    delivery = Delivery(client)
    client.pending.append(delivery)
    assert delivery.get(timeout=30) == RecordMetadata("scored", 4, 1234)
    assert delivery.done and delivery.error is None and client.polls == 3
    assert delivery.get(timeout=0).offset == 1234  # already done: no wait, no error
    assert client.polls == 3


def test_get_raises_the_brokers_error() -> None:
    client = FakeClient(after_polls=1, error="REQUEST_TIMED_OUT")
    delivery = Delivery(client)
    client.pending.append(delivery)
    with pytest.raises(KafkaDeliveryError, match="not delivered: REQUEST_TIMED_OUT"):
        delivery.get(timeout=30)


def test_get_times_out_when_nothing_comes() -> None:
    client = FakeClient(after_polls=10**9)
    with pytest.raises(KafkaDeliveryError, match=r"no acknowledgement within 0\.2 s"):
        Delivery(client).get(timeout=0.2)
    assert client.polls >= 1
