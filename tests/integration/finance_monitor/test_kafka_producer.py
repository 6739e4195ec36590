"""The librdkafka producer on the real broker: partitions, headers and failures as before.

The scored topic is partitioned by series key and the trend stage relies on every record
of a series reaching the same partition, whoever produced it: keyed records must land on
kafka-python's (and the Java client's) murmur2 partition.
"""

from __future__ import annotations

import uuid

import pytest
from kafka.partitioner.default import DefaultPartitioner

from finance_monitor.kafka_io import KafkaDeliveryError, ensure_topics, make_producer
from keel_service.servers import free_port
from tests.integration.finance_monitor.fm_support import read_topic

pytestmark = pytest.mark.integration


def test_keyed_records_land_on_the_murmur2_partition_with_headers_and_nulls(
    kafka_bootstrap: str,
) -> None:
    topic = f"producer-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, {topic: 7})
    keys = [f"ticker:T{i}".encode() for i in range(40)] + [b"topic:Earnings", "主题".encode()]
    producer = make_producer(kafka_bootstrap)
    try:
        deliveries = [
            producer.send(topic, key=k, value=b"v-" + k, headers=[("n", str(i).encode())])
            for i, k in enumerate(keys)
        ]
        deliveries.append(producer.send(topic, key=b"tombstone", value=None))
        producer.flush(timeout=60)
        stored = [delivery.get(timeout=60) for delivery in deliveries]
    finally:
        producer.close(timeout=10)

    records = read_topic(kafka_bootstrap, topic, lambda got: len(got) >= len(keys) + 1)
    assert len(records) == len(keys) + 1
    # Each acknowledgement names where the record is.
    assert sorted((m.partition, m.offset) for m in stored) == sorted(
        (r.partition, r.offset) for r in records
    )
    assert {m.topic for m in stored} == {topic}
    partitions = list(range(7))
    default = DefaultPartitioner()
    for rec in records:
        assert rec.partition == default(rec.key, partitions, partitions), rec.key
        if rec.key == b"tombstone":
            assert rec.value is None
        else:
            assert rec.value == b"v-" + rec.key
            assert rec.headers == [("n", str(keys.index(rec.key)).encode())]
    # An explicit partition wins over the key's hash.
    producer = make_producer(kafka_bootstrap)
    try:
        placed = producer.send(topic, key=b"topic:Earnings", value=b"p6", partition=6)
        producer.flush(timeout=60)
        assert placed.get(timeout=60).partition == 6
    finally:
        producer.close(timeout=10)


def test_an_oversized_record_is_refused_at_once(kafka_bootstrap: str) -> None:
    producer = make_producer(kafka_bootstrap)
    try:
        with pytest.raises(KafkaDeliveryError, match="refused"):
            producer.send("anything", value=b"x" * (4 * 1024 * 1024))
    finally:
        producer.close(timeout=10)


def test_no_broker_fails_the_delivery_instead_of_waiting_forever() -> None:
    producer = make_producer(f"127.0.0.1:{free_port()}", delivery_timeout_ms=2000)
    try:
        delivery = producer.send("nowhere", key=b"k", value=b"v")
        with pytest.raises(KafkaDeliveryError):
            delivery.get(timeout=120)  # fails when librdkafka gives up (2 s), not at 120 s
        assert delivery.done and delivery.error is not None
        with pytest.raises(KafkaDeliveryError, match="not acknowledged"):
            producer.send("nowhere", value=b"v")
            producer.flush(timeout=0.5)
    finally:
        producer.close(timeout=0)
