"""``BatchConsumer.commit``: which broker answers retry, which mean a rebalance (fake client)."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from finance_monitor.kafka_io import BatchConsumer, KafkaCommitError


class FakeClient:
    """Raises the queued errors from ``commit``, one per call, then succeeds."""

    def __init__(self, errors: list[int]) -> None:
        self.errors = list(errors)
        self.commits: list[list[Any]] = []

    def commit(self, offsets: list[Any], asynchronous: bool) -> None:
        assert asynchronous is False
        self.commits.append(offsets)
        if self.errors:
            raise KafkaException(KafkaError(self.errors.pop(0)))


def consumer(client: FakeClient, commit_retry_s: float = 60.0) -> BatchConsumer:
    made = BatchConsumer.__new__(BatchConsumer)
    made._consumer = client
    made.commit_retry_s = commit_retry_s
    return made


def test_commit_sends_the_next_offset_of_each_partition() -> None:
    client = FakeClient([])
    assert consumer(client).commit({("raw", 0): 11, ("raw", 3): 5}) is True
    (sent,) = client.commits
    assert sorted((tp.topic, tp.partition, tp.offset) for tp in sent) == [
        ("raw", 0, 11),
        ("raw", 3, 5),
    ]


@pytest.mark.parametrize(
    "code",
    [KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS, KafkaError.UNKNOWN_MEMBER_ID],
)
def test_a_rebalance_is_reported_not_raised_or_retried(code: int) -> None:
    client = FakeClient([code])
    assert consumer(client).commit({("raw", 0): 1}) is False
    assert len(client.commits) == 1


def test_an_unreachable_coordinator_is_retried_until_it_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("finance_monitor.kafka_io.time.sleep", lambda _s: None)
    client = FakeClient([KafkaError._TRANSPORT, KafkaError._WAIT_COORD])
    assert consumer(client).commit({("raw", 0): 1}) is True
    assert len(client.commits) == 3


def test_a_commit_that_keeps_failing_raises_after_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("finance_monitor.kafka_io.time.sleep", lambda _s: None)
    client = FakeClient([KafkaError._TRANSPORT] * 1000)
    with pytest.raises(KafkaCommitError, match="offset commit failed"):
        consumer(client, commit_retry_s=0.0).commit({("raw", 0): 1})
