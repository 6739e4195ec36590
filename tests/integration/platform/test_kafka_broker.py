"""The local broker from scripts/kafka-local behaves like a real Kafka cluster."""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections import Counter

import pytest
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

pytestmark = pytest.mark.integration

CONSUMER_OPTS = {
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 1000,
    "auto_offset_reset": "earliest",
    "enable_auto_commit": False,
}


def _create_topic(bootstrap: str, partitions: int = 3) -> str:
    topic = f"t-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()
    return topic


def _produce(bootstrap: str, topic: str, start: int, count: int) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        key_serializer=str.encode,
        value_serializer=lambda v: json.dumps(v).encode(),
        acks="all",
    )
    for i in range(start, start + count):
        producer.send(topic, key=f"key-{i % 17}", value={"id": i, "text": f"message {i}"})
    producer.flush()
    producer.close()


class GroupMember(threading.Thread):
    """One consumer of a group, polling in its own thread and committing after each batch.

    Ownership is tracked from the rebalance callbacks, as intervals on the monotonic
    clock shared by every member of this process: ``intervals`` holds
    ``(partition, assigned_at, revoked_at)`` (``revoked_at`` is None while owned), and
    every message is recorded with the partition it came from and when it was read.
    """

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        super().__init__(daemon=True)
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            value_deserializer=lambda b: json.loads(b),
            **CONSUMER_OPTS,
        )
        member = self
        self._lock = threading.Lock()
        self.intervals: list[list[float | int | None]] = []

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
                member._revoke({tp.partition for tp in revoked})

            def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
                now = time.monotonic()
                with member._lock:
                    for tp in assigned:
                        member.intervals.append([tp.partition, now, None])

        self.consumer.subscribe([topic], listener=Listener())
        self.seen: list[int] = []
        self.reads: list[tuple[int, int, float]] = []  # (message id, partition, read at)
        self.stop_event = threading.Event()

    def _revoke(self, partitions: set[int]) -> None:
        now = time.monotonic()
        with self._lock:
            for interval in self.intervals:
                if interval[0] in partitions and interval[2] is None:
                    interval[2] = now

    @property
    def assigned(self) -> set[int]:
        """Partitions this member owns now (per the rebalance callbacks)."""
        with self._lock:
            return {int(i[0]) for i in self.intervals if i[2] is None}  # type: ignore[arg-type]

    def run(self) -> None:
        while not self.stop_event.is_set():
            batch = self.consumer.poll(timeout_ms=200)
            now = time.monotonic()
            for tp, records in batch.items():
                for r in records:
                    self.seen.append(r.value["id"])
                    self.reads.append((r.value["id"], tp.partition, now))
            if batch:
                self.consumer.commit()
        # Stopped polling: this member owns nothing from now on (close() leaves the group
        # without calling the revoke callback).
        self._revoke(self.assigned)
        self.consumer.close()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=30)

    def owned_at(self, partition: int, at: float) -> bool:
        """Whether this member owned ``partition`` at monotonic time ``at``."""
        with self._lock:
            return any(
                p == partition and start <= at and (end is None or at <= end)  # type: ignore[operator]
                for p, start, end in self.intervals
            )


def _overlaps(a: GroupMember, b: GroupMember) -> list[tuple[int, float, float]]:
    """Partitions owned by both members during a common time span."""
    found = []
    for pa, sa, ea in a.intervals:
        for pb, sb, eb in b.intervals:
            end_a = math.inf if ea is None else ea
            end_b = math.inf if eb is None else eb
            if pa == pb and max(sa, sb) < min(end_a, end_b):  # type: ignore[type-var]
                found.append((pa, sa, sb))  # type: ignore[arg-type]
    return found


def _wait_for(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def _committed_total(bootstrap: str, group: str, topic: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_consumer_group_offsets(group)
    finally:
        admin.close()
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic)


def test_group_of_two_reads_every_message_exactly_once(kafka_bootstrap: str) -> None:
    topic = _create_topic(kafka_bootstrap)
    group = f"g-{uuid.uuid4().hex[:8]}"
    members = [GroupMember(kafka_bootstrap, topic, group) for _ in range(2)]
    for m in members:
        m.start()
    _wait_for(
        lambda: (
            all(m.assigned for m in members)
            and members[0].assigned | members[1].assigned == {0, 1, 2}
        ),
        120,
        "both consumers to share the 3 partitions",
    )
    _produce(kafka_bootstrap, topic, 0, 1000)
    _wait_for(lambda: sum(len(m.seen) for m in members) >= 1000, 120, "1,000 messages")
    _wait_for(lambda: _committed_total(kafka_bootstrap, group, topic) == 1000, 120, "the commits")
    for m in members:
        m.stop()

    # Invariant 1: every message read exactly once, across the whole run.
    counts = Counter(i for m in members for i in m.seen)
    assert set(counts) == set(range(1000))
    assert max(counts.values()) == 1, "a message was delivered twice"
    # Invariant 2: no partition owned by two members at the same moment (ownership
    # intervals from the rebalance callbacks, not a final snapshot) ...
    assert _overlaps(members[0], members[1]) == []
    # ... and every message was read by a member that owned its partition at the time.
    for m in members:
        assert all(m.owned_at(partition, at) for _i, partition, at in m.reads)
    assert _committed_total(kafka_bootstrap, group, topic) == 1000


def test_surviving_consumer_takes_over_partitions(kafka_bootstrap: str) -> None:
    topic = _create_topic(kafka_bootstrap)
    group = f"g-{uuid.uuid4().hex[:8]}"
    first, second = (
        GroupMember(kafka_bootstrap, topic, group),
        GroupMember(kafka_bootstrap, topic, group),
    )
    first.start()
    second.start()
    _wait_for(lambda: first.assigned and second.assigned, 60, "both consumers to get partitions")
    _produce(kafka_bootstrap, topic, 0, 300)
    _wait_for(lambda: len(first.seen) + len(second.seen) >= 300, 60, "the first 300 messages")

    first.stop()  # leaves the group; its partitions move to the survivor
    _wait_for(lambda: second.assigned == {0, 1, 2}, 60, "the survivor to own all 3 partitions")
    _produce(kafka_bootstrap, topic, 300, 300)
    _wait_for(lambda: len(set(first.seen) | set(second.seen)) >= 600, 60, "all 600 messages")
    second.stop()

    assert set(first.seen) | set(second.seen) == set(range(600))
    assert set(range(300, 600)) <= set(second.seen)
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group)
    try:
        committed = [consumer.committed(TopicPartition(topic, p)) or 0 for p in range(3)]
    finally:
        consumer.close()
    assert sum(committed) == 600
