"""The scoring stage's Kafka shell: consume raw -> validate -> score -> produce scored / DLQ -> commit.

At-least-once: a batch's offsets are committed only after every record it produced
(scored or dead-lettered) has been acknowledged by the broker. A crash before the
commit re-delivers that batch, so the only duplicates are the in-flight batch's.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from finance_monitor import metrics
from finance_monitor.errors import InvalidMessageError
from finance_monitor.kafka_io import make_consumer, make_producer
from finance_monitor.messages import parse_raw_message
from finance_monitor.scoring import PendingMessage, ScoringModel, score_messages
from finance_monitor.tickers import TickerExtractor

log = logging.getLogger(__name__)
ACK_TIMEOUT_S = 60.0
LAG_INTERVAL_S = 5.0


@dataclass(frozen=True)
class ScorerConfig:
    """Where the scorer reads and writes, and how much it takes at once."""

    bootstrap: str
    raw_topic: str
    scored_topic: str
    dlq_topic: str
    group_id: str
    batch_size: int = 256
    max_text_chars: int = 10_000
    poll_timeout_ms: int = 200
    # Small per-partition fetches make each poll mix partitions: catching up a backlog
    # then keeps event times of all partitions close (fewer records dropped as late by
    # the trend stage). A larger record still arrives whole (the broker returns the
    # first record batch even when it exceeds this).
    partition_fetch_bytes: int = 32 * 1024


def dlq_headers(
    reason: str, stage: str, topic: str, partition: int, offset: int
) -> list[tuple[str, bytes]]:
    """Kafka headers of a dead-lettered record: why, where from."""
    return [
        ("dlq.reason", reason.encode()[:2000]),
        ("dlq.stage", stage.encode()),
        ("dlq.source", f"{topic}/{partition}/{offset}".encode()),
    ]


class ScorerWorker:
    """One scorer: a member of the scorer consumer group. ``run`` loops until ``stop()``."""

    def __init__(
        self, config: ScorerConfig, model: ScoringModel, extractor: TickerExtractor
    ) -> None:
        self.config = config
        self.model = model
        self.extractor = extractor
        self._stop = threading.Event()
        self.running = False
        self.processed = 0
        self.dead_lettered = 0
        self.last_error: str | None = None
        self._last_lag_check = 0.0
        self._rate_mark = (time.monotonic(), 0)
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{id(self) % 10_000}"

    def stop(self) -> None:
        """Ask the loop to finish its current batch and exit."""
        self._stop.set()

    def run(self) -> None:
        """Consume until stopped; each poll is one batch."""
        cfg = self.config
        consumer = make_consumer(
            cfg.bootstrap,
            cfg.group_id,
            [cfg.raw_topic],
            max_poll_records=cfg.batch_size,
            max_partition_fetch_bytes=cfg.partition_fetch_bytes,
        )
        producer = make_producer(cfg.bootstrap)
        self.running = True
        metrics.WORKER_UP.labels("scorer").set(1)
        try:
            while not self._stop.is_set():
                polled = consumer.poll(timeout_ms=cfg.poll_timeout_ms, max_records=cfg.batch_size)
                records = [r for batch in polled.values() for r in batch]
                if records:
                    self.process_batch(records, producer, consumer)
                self._report_lag(consumer)
        finally:
            self.running = False
            metrics.WORKER_UP.labels("scorer").set(0)
            try:
                consumer.close(autocommit=False)
            finally:
                producer.close(timeout=10)

    def process_batch(self, records: list[Any], producer: Any, consumer: Any) -> None:
        """Validate, score, produce and (after the acks) commit one batch of raw records."""
        from kafka.errors import CommitFailedError
        from kafka.structs import OffsetAndMetadata, TopicPartition

        cfg = self.config
        started = time.perf_counter()
        futures = []
        pending: list[PendingMessage] = []
        for rec in records:
            try:
                msg = parse_raw_message(rec.value, max_text_chars=cfg.max_text_chars)
            except InvalidMessageError as exc:
                futures.append(
                    producer.send(
                        cfg.dlq_topic,
                        value=rec.value if rec.value is not None else b"",
                        key=rec.key,
                        headers=dlq_headers(
                            exc.reason, "scorer", rec.topic, rec.partition, rec.offset
                        ),
                    )
                )
                self.dead_lettered += 1
                metrics.DLQ_MESSAGES.labels("scorer").inc()
                continue
            pending.append(PendingMessage(msg, rec.partition, rec.offset, rec.timestamp))
        scored = score_messages(self.model, self.extractor, pending, worker=self.worker_id)
        for record in scored:
            futures.append(
                producer.send(
                    cfg.scored_topic, key=record.series.encode(), value=record.to_json_bytes()
                )
            )
        producer.flush(timeout=ACK_TIMEOUT_S)
        for future in futures:
            future.get(timeout=ACK_TIMEOUT_S)  # raises if the broker did not acknowledge
        offsets: dict[Any, Any] = {}
        for rec in records:
            tp = TopicPartition(rec.topic, rec.partition)
            if tp not in offsets or offsets[tp].offset <= rec.offset:
                offsets[tp] = OffsetAndMetadata(rec.offset + 1, None, -1)
        try:
            consumer.commit(offsets=offsets)
        except CommitFailedError as exc:  # rebalance in flight: the batch will be redelivered
            log.warning("offset commit failed (%s); records will be redelivered", exc)
        self.processed += len(pending)
        metrics.MESSAGES_SCORED.inc(len(pending))
        metrics.RECORDS_PRODUCED.inc(len(scored))
        metrics.BATCH_SIZE.observe(len(records))
        metrics.BATCH_LATENCY.observe(time.perf_counter() - started)

    def _report_lag(self, consumer: Any) -> None:
        now = time.monotonic()
        if now - self._last_lag_check < LAG_INTERVAL_S:
            return
        self._last_lag_check = now
        mark_time, mark_count = self._rate_mark
        metrics.MESSAGES_PER_SECOND.set((self.processed - mark_count) / max(now - mark_time, 1e-6))
        self._rate_mark = (now, self.processed)
        try:
            assigned = list(consumer.assignment())
            if not assigned:
                return
            ends = consumer.end_offsets(assigned)
            for tp in assigned:
                lag = max(ends.get(tp, 0) - consumer.position(tp), 0)
                metrics.CONSUMER_LAG.labels(self.config.group_id, tp.topic, str(tp.partition)).set(
                    lag
                )
        except Exception as exc:  # lag is best-effort telemetry; never stop scoring for it
            log.debug("lag check failed: %s", exc)
