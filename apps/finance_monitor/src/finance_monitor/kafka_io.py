"""Kafka client construction and topic creation (kafka-python), with the project's defaults."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from finance_monitor.errors import FinanceMonitorError

log = logging.getLogger(__name__)

# A 1 MB text is a valid poison message: it must reach the scorer (and the DLQ) intact.
MAX_MESSAGE_BYTES = 2 * 1024 * 1024


class KafkaUnavailableError(FinanceMonitorError):
    """The broker could not be reached or a topic could not be created."""


def ensure_topics(bootstrap: str, topics: dict[str, int], timeout_s: float = 60.0) -> None:
    """Create the topics that do not exist yet, with the given partition counts.

    Args:
        bootstrap: ``host:port[,host:port]``.
        topics: topic name -> number of partitions.
        timeout_s: how long to keep retrying while the broker starts.

    Raises:
        KafkaUnavailableError: the broker did not answer in time.
    """
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
            try:
                existing = set(admin.list_topics())
                missing = [
                    NewTopic(
                        name,
                        num_partitions=n,
                        replication_factor=1,
                        topic_configs={"max.message.bytes": str(MAX_MESSAGE_BYTES)},
                    )
                    for name, n in topics.items()
                    if name not in existing
                ]
                if missing:
                    with contextlib.suppress(TopicAlreadyExistsError):
                        admin.create_topics(missing)
            finally:
                admin.close()
            return
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise KafkaUnavailableError(f"cannot create topics on {bootstrap}: {exc}") from exc
            log.warning("Kafka not ready at %s (%s); retrying", bootstrap, exc)
            time.sleep(1.0)


class KeyHashPartitioner:
    """kafka-python's default partitioner with each key's murmur2 hash remembered.

    The same partition as ``DefaultPartitioner`` for every key (murmur2 of the key,
    modulo the partition count, like the Java client), but the pure-Python hash runs
    once per distinct key: the scorer keys its records by series (``topic:Earnings``,
    ``ticker:ACME``), a few thousand keys at most. Records without a key go to a
    random available partition, as with the default.

    Args:
        max_keys: hashes kept; the memo starts afresh when it is full.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        from kafka.partitioner.default import DefaultPartitioner, murmur2

        self._default = DefaultPartitioner()
        self._murmur2 = murmur2
        self._hashes: dict[bytes, int] = {}
        self.max_keys = max_keys

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(self._default(key, all_partitions, available))
        idx = self._hashes.get(key)
        if idx is None:
            if len(self._hashes) >= self.max_keys:
                self._hashes.clear()
            idx = self._hashes[key] = self._murmur2(key) & 0x7FFFFFFF
        return all_partitions[idx % len(all_partitions)]


def make_producer(bootstrap: str, **overrides: Any) -> Any:
    """A ``KafkaProducer`` that waits for all in-sync replicas (``acks=all``)."""
    from kafka import KafkaProducer

    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "max_request_size": MAX_MESSAGE_BYTES,
        "retries": 5,
        "partitioner": KeyHashPartitioner(),
    }
    options.update(overrides)
    return KafkaProducer(**options)


def make_consumer(
    bootstrap: str, group_id: str | None, topics: list[str] | None = None, **overrides: Any
) -> Any:
    """A manual-commit ``KafkaConsumer`` with short session timeouts (fast rebalances)."""
    from kafka import KafkaConsumer

    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 1000,
        "max_partition_fetch_bytes": MAX_MESSAGE_BYTES,
        "fetch_max_bytes": 4 * MAX_MESSAGE_BYTES,
        # kafka-python rejects network frames above 1 MB by default; a fetch can be bigger.
        "receive_message_max_bytes": 8 * MAX_MESSAGE_BYTES,
    }
    options.update(overrides)
    consumer = KafkaConsumer(**options)
    if topics:
        consumer.subscribe(topics)
    return consumer
