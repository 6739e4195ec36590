"""The trend stage's Kafka shell: scored topic -> per-partition TrendProcessor -> store.

State is checkpointed in the store together with the next offset it reflects (in the
same transaction as the batch's windows and alerts when they are due together). When a
partition is assigned (start, restart, rebalance, another process's death), the worker
claims it in the store (a new write epoch), rebuilds its processor from the checkpoint
and seeks to the checkpointed offset, so a restart or a takeover neither loses window
state nor re-counts records; records re-read after the checkpoint produce the same
windows and the same alert keys, which the store ignores. The Kafka offsets the stage
commits are only ever those of a stored checkpoint, after it is stored (the store is
authoritative; the group's offsets show lag).

A process that lost a partition without noticing (paused past its session timeout) is
fenced: its next write carries a stale epoch, the store refuses the whole batch, and
the worker restarts (rejoining the group) with the state of whatever is stored.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from finance_monitor import metrics
from finance_monitor.dlq import DEFAULT_MAX_VALUE_BYTES, dead_letter
from finance_monitor.errors import InvalidMessageError
from finance_monitor.kafka_io import make_consumer, make_producer
from finance_monitor.messages import ScoredRecord, check_event_time
from finance_monitor.rules import Alert, Resolution, RuleSpec
from finance_monitor.storage import Checkpoint, MonitorStore, PartitionFencedError
from finance_monitor.trend import TrendProcessor
from finance_monitor.windows import WindowSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrendConfig:
    """Where the trend stage reads, and its window settings."""

    bootstrap: str
    scored_topic: str
    dlq_topic: str
    group_id: str
    specs: tuple[WindowSpec, ...]
    watermark_delay_s: float = 5.0
    allowed_lateness_s: float = 10.0
    checkpoint_interval_s: float = 1.0
    poll_timeout_ms: int = 200
    max_records: int = 2000
    max_future_skew_s: float = 600.0
    max_past_skew_s: float = 7 * 86400.0
    rule_state_max_series: int = 10_000
    rule_state_idle_s: float = 7 * 86400.0
    dlq_max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    evidence_size: int = 20
    resolve_after_windows: int = 1


def parse_scored(
    value: bytes | None, *, now: float, max_future_skew_s: float, max_past_skew_s: float
) -> ScoredRecord:
    """Strictly validate one scored record, event time within the skew bounds.

    Raises:
        InvalidMessageError: the reason names the field.
    """
    record = ScoredRecord.from_json_bytes(value)
    check_event_time(
        record.event_time,
        now=now,
        max_future_skew_s=max_future_skew_s,
        max_past_skew_s=max_past_skew_s,
        field_name="event_time",
    )
    return record


class TrendWorker:
    """One member of the trend consumer group. ``run`` loops until ``stop()``."""

    def __init__(self, config: TrendConfig, store: MonitorStore) -> None:
        self.config = config
        self.store = store
        self.processors: dict[int, TrendProcessor] = {}
        self._dirty: dict[int, int] = {}  # partition -> next offset not yet checkpointed
        self._epochs: dict[int, int] = {}  # partition -> write epoch of this worker's claim
        self._assign_error: BaseException | None = None
        # Unique per worker run of this process (a restarted worker claims anew).
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._last_checkpoint = 0.0
        self._rules_version = -1
        self._rules: list[RuleSpec] = []
        self._stop = threading.Event()
        self._consumer: Any = None
        self.running = False
        self.records_seen = 0
        self.accepted = 0
        self.dead_lettered = 0

    def stop(self) -> None:
        """Ask the loop to checkpoint and exit."""
        self._stop.set()

    # -- partition lifecycle ------------------------------------------------------
    def _new_processor(self) -> TrendProcessor:
        cfg = self.config
        return TrendProcessor(
            list(cfg.specs),
            self._rules,
            cfg.watermark_delay_s,
            cfg.allowed_lateness_s,
            cfg.max_future_skew_s,
            cfg.rule_state_max_series,
            cfg.rule_state_idle_s,
            cfg.evidence_size,
            cfg.resolve_after_windows,
        )

    def on_assigned(self, partitions: list[Any]) -> None:
        """Claim each assigned partition, rebuild its state from the checkpoint, seek past it.

        A failure here (database unreachable) is re-raised by the poll loop: the client
        library only logs listener errors, and a partition without a processor must not
        be consumed.
        """
        try:
            for tp in partitions:
                processor = self._new_processor()
                claim = self.store.claim_partition(
                    self.config.group_id, tp.topic, tp.partition, self.owner
                )
                self._epochs[tp.partition] = claim.epoch
                checkpoint = claim.checkpoint
                if checkpoint is not None:
                    processor.load_state(checkpoint.state)
                    self._consumer.seek(tp, checkpoint.next_offset)
                self.processors[tp.partition] = processor
                log.info(
                    "trend: assigned %s/%s (epoch %d) from %s",
                    tp.topic,
                    tp.partition,
                    claim.epoch,
                    checkpoint.next_offset if checkpoint else "committed offset",
                )
        except Exception as exc:
            self._assign_error = exc
            raise

    def on_revoked(self, partitions: list[Any]) -> None:
        """Checkpoint, then forget, the partitions taken away."""
        try:
            self._commit([], [], force=True)
        except PartitionFencedError as exc:  # already another process's: nothing to save
            log.warning("trend: %s; dropping them", exc)
        finally:
            for tp in partitions:
                self.processors.pop(tp.partition, None)
                self._dirty.pop(tp.partition, None)
                self._epochs.pop(tp.partition, None)

    def _refresh_rules(self) -> None:
        version = self.store.rules_version()
        if version == self._rules_version:
            return
        self._rules = [r for r in self.store.list_rules()]
        self._rules_version = version
        for processor in self.processors.values():
            processor.rules.set_rules(self._rules)

    # -- main loop ----------------------------------------------------------------
    def run(self) -> None:
        """Consume, aggregate, store, checkpoint until stopped."""
        from kafka import ConsumerRebalanceListener

        worker = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked: list[Any]) -> None:
                worker.on_revoked(list(revoked))

            def on_partitions_assigned(self, assigned: list[Any]) -> None:
                worker.on_assigned(list(assigned))

        cfg = self.config
        # A restarted run starts from the stored checkpoints only.
        self.processors.clear()
        self._dirty.clear()
        self._epochs.clear()
        self._assign_error = None
        self._refresh_rules()
        self._consumer = make_consumer(
            cfg.bootstrap, cfg.group_id, max_poll_records=cfg.max_records
        )
        self._consumer.subscribe([cfg.scored_topic], listener=Listener())
        self._producer = make_producer(cfg.bootstrap)
        self.running = True
        metrics.WORKER_UP.labels("trend").set(1)
        try:
            while not self._stop.is_set():
                polled = self._consumer.poll(
                    timeout_ms=cfg.poll_timeout_ms, max_records=cfg.max_records
                )
                if self._assign_error is not None:
                    raise self._assign_error
                self._refresh_rules()
                if polled:
                    self.process(polled)
                self._commit([], [], force=False)
            self._commit([], [], force=True)
        finally:
            self.running = False
            metrics.WORKER_UP.labels("trend").set(0)
            try:
                self._consumer.close(autocommit=False)
            finally:
                self._producer.close(timeout=10)

    def process(self, polled: dict[Any, list[Any]]) -> None:
        """Run one poll's records through their partitions' processors and store the results."""
        closed = []
        alerts = []
        resolved = []
        dlq = []
        touched: set[int] = set()
        for tp, records in polled.items():
            processor = self.processors.get(tp.partition)
            if processor is None:
                continue
            touched.add(tp.partition)
            parsed = []
            now = time.time()
            for rec in records:
                try:
                    parsed.append(
                        parse_scored(
                            rec.value,
                            now=now,
                            max_future_skew_s=self.config.max_future_skew_s,
                            max_past_skew_s=self.config.max_past_skew_s,
                        )
                    )
                except Exception as exc:  # one bad record never stops the stage
                    reason = (
                        exc.reason
                        if isinstance(exc, InvalidMessageError)
                        else f"scored record: could not be parsed ({type(exc).__name__})"
                    )
                    dlq.append(self._dead_letter(rec, reason))
            out = processor.process(parsed)
            self.records_seen += len(records)
            self.accepted += out.accepted
            metrics.TREND_RECORDS.labels("accepted").inc(out.accepted)
            metrics.TREND_RECORDS.labels("duplicate").inc(out.duplicates)
            metrics.TREND_RECORDS.labels("late").inc(out.late)
            metrics.TREND_RECORDS.labels("future").inc(out.future)
            for window in out.closed:
                metrics.WINDOWS_CLOSED.labels(window.spec).inc()
            closed.extend(out.closed)
            alerts.extend(out.alerts)
            resolved.extend(out.resolved)
            self._dirty[tp.partition] = records[-1].offset + 1
        for future in dlq:
            future.get(timeout=60)
        # Checkpoint with an alert so a restart resumes past it (a replay would be de-duplicated anyway).
        new = self._commit(
            closed, alerts, force=bool(alerts or resolved), touched=touched, resolved=resolved
        )
        for alert in new:
            metrics.ALERTS_FIRED.labels(alert.rule_id).inc()

    def _dead_letter(self, rec: Any, reason: str) -> Any:
        letter = dead_letter(
            rec.value,
            reason=reason,
            stage="trend",
            topic=rec.topic,
            partition=rec.partition,
            offset=rec.offset,
            max_value_bytes=self.config.dlq_max_value_bytes,
        )
        self.dead_lettered += 1
        metrics.DLQ_MESSAGES.labels("trend").inc()
        metrics.TREND_RECORDS.labels("dead_lettered").inc()
        return self._producer.send(
            self.config.dlq_topic, value=letter.value, key=rec.key, headers=letter.headers
        )

    def _commit(
        self,
        closed: list[Any],
        alerts: list[Alert],
        force: bool,
        touched: set[int] | frozenset[int] = frozenset(),
        resolved: list[Resolution] | None = None,
    ) -> list[Alert]:
        """Store windows and alerts, with the dirty partitions' checkpoints when due, in
        one transaction fenced by this worker's epochs; then commit the same offsets to
        Kafka. Returns the alerts that were new.

        Raises:
            PartitionFencedError: another process owns one of the partitions now; the
                caller must not go on with the in-memory state (``run`` restarts).
        """
        due = bool(self._dirty) and (
            force or time.monotonic() - self._last_checkpoint >= self.config.checkpoint_interval_s
        )
        checkpoints = (
            {
                p: Checkpoint(offset, self.processors[p].to_state())
                for p, offset in self._dirty.items()
                if p in self.processors
            }
            if due
            else {}
        )
        if not (closed or alerts or checkpoints or resolved):
            return []
        partitions = set(touched) | set(checkpoints)
        epochs = {p: self._epochs[p] for p in partitions if p in self._epochs}
        try:
            new = self.store.commit_trend_batch(
                self.config.group_id,
                self.config.scored_topic,
                checkpoints,
                closed,
                alerts,
                epochs=epochs,
                resolved=resolved or (),
            )
        except PartitionFencedError as exc:
            for p in exc.partitions:
                self.processors.pop(p, None)
                self._dirty.pop(p, None)
                self._epochs.pop(p, None)
            raise
        if checkpoints:
            self._commit_offsets(checkpoints)
            self._dirty.clear()
            self._last_checkpoint = time.monotonic()
        return new

    def _commit_offsets(self, checkpoints: dict[int, Checkpoint]) -> None:
        """Commit exactly the stored checkpoints' offsets (never ahead of the store)."""
        from kafka.structs import OffsetAndMetadata, TopicPartition

        offsets = {
            TopicPartition(self.config.scored_topic, p): OffsetAndMetadata(cp.next_offset, None, -1)
            for p, cp in checkpoints.items()
        }
        try:
            self._consumer.commit(offsets=offsets)  # for lag visibility; the store is authoritative
        except Exception as exc:
            log.debug("trend offset commit skipped: %s", exc)
