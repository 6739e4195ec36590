"""The local broker from scripts/kafka-local behaves like a real Kafka cluster."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
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
    """One consumer of a group, polling in its own thread and committing after each batch."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        super().__init__(daemon=True)
        self.consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            value_deserializer=lambda b: json.loads(b),
            **CONSUMER_OPTS,
        )
        self.seen: list[int] = []
        self.stop_event = threading.Event()
        self.assigned: set[int] = set()

    def run(self) -> None:
        while not self.stop_event.is_set():
            batch = self.consumer.poll(timeout_ms=200)
            self.assigned = {tp.partition for tp in self.consumer.assignment()}
            for records in batch.values():
                self.seen.extend(r.value["id"] for r in records)
            if batch:
                self.consumer.commit()
        self.consumer.close()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=30)


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
        60,
        "both consumers to share the 3 partitions",
    )
    _produce(kafka_bootstrap, topic, 0, 1000)
    _wait_for(lambda: sum(len(m.seen) for m in members) >= 1000, 60, "1,000 messages")
    time.sleep(1.0)  # a late duplicate would arrive now
    for m in members:
        m.stop()

    counts = Counter(i for m in members for i in m.seen)
    assert set(counts) == set(range(1000))
    assert max(counts.values()) == 1, "a message was delivered twice"
    assert all(m.seen for m in members), "one consumer got no work"
    assert members[0].assigned.isdisjoint(members[1].assigned)
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
