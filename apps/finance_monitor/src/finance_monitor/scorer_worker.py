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
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any

from finance_monitor import metrics
from finance_monitor.dlq import DEFAULT_MAX_VALUE_BYTES, dead_letter
from finance_monitor.errors import InvalidMessageError
from finance_monitor.feed import HeadlineFeed
from finance_monitor.kafka_io import MAX_MESSAGE_BYTES, make_consumer, make_producer
from finance_monitor.messages import parse_raw_message
from finance_monitor.scoring import (
    PendingMessage,
    ScoreCache,
    ScoringModel,
    enrich,
    score_texts,
)
from finance_monitor.tickers import TickerExtractor

log = logging.getLogger(__name__)
ACK_TIMEOUT_S = 60.0
LAG_INTERVAL_S = 5.0


# Stages of the scorer loop, in order: waiting in poll, parsing and validation, the model
# (cache included), building and sending the scored records, waiting for the broker's
# acknowledgements, the offset commit.
STAGES = ("poll", "parse", "score", "records", "acks", "commit")


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
    max_future_skew_s: float = 600.0
    max_past_skew_s: float = 7 * 86400.0
    dedup_cache_size: int = 100_000
    dlq_max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    # Verdicts of recent texts (whitespace-normalised), reused for exact repeats; 0: off.
    score_cache_size: int = 50_000
    # Tickers found in recent texts (text and declared tickers as given), reused for
    # exact repeats like the verdicts; 0: off.
    ticker_cache_size: int = 50_000


def dlq_headers(
    reason: str, stage: str, topic: str, partition: int, offset: int
) -> list[tuple[str, bytes]]:
    """Kafka headers of a dead-lettered record: why, where from (see ``finance_monitor.dlq``)."""
    return dead_letter(
        None, reason=reason, stage=stage, topic=topic, partition=partition, offset=offset
    ).headers[:3]


class DedupCache:
    """Ids recently scored by this worker, with where they were read (bounded, LRU).

    A second record with a known id at a *different* position is a duplicate (DLQ);
    the same position again is an at-least-once redelivery and is scored again.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, tuple[int, int]] = OrderedDict()

    def position(self, message_id: str) -> tuple[int, int] | None:
        """Where ``message_id`` was read, if it was scored recently."""
        return self._seen.get(message_id)

    def add(self, message_id: str, partition: int, offset: int) -> None:
        """Remember a scored id, evicting the oldest beyond the capacity."""
        if self.capacity <= 0:
            return
        self._seen[message_id] = (partition, offset)
        self._seen.move_to_end(message_id)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)

    def clear(self) -> None:
        """Forget everything (a restarted loop re-reads uncommitted records)."""
        self._seen.clear()


class TickerCache:
    """``TickerExtractor.extract`` with the answers for recent inputs kept (bounded LRU).

    The extraction is a pure function of the text and the declared tickers, and a news
    stream repeats its texts: a hit costs one dict look-up instead of two Unicode
    normalisations and four regex scans (16 us per message).

    Args:
        extractor: the extractor asked on a miss.
        capacity: most inputs kept (0: no caching).
    """

    def __init__(self, extractor: TickerExtractor, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"ticker cache capacity={capacity}: must be >= 0")
        self.extractor = extractor
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, tuple[str, ...]], list[str]] = OrderedDict()

    #: Longer texts are extracted every time (the cache holds short headlines and posts).
    max_text_chars = 2_000

    def extract(self, text: str, declared: list[str]) -> list[str]:
        """The tickers of one message (a fresh list: callers may keep or change it)."""
        if self.capacity == 0 or len(text) > self.max_text_chars:
            return self.extractor.extract(text, declared)
        key = (text, tuple(declared))
        hit = self._items.get(key)
        if hit is None:
            hit = self.extractor.extract(text, declared)
            self._items[key] = hit
            if len(self._items) > self.capacity:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(key)
        return list(hit)


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
        self.redelivered = 0
        self.dedup = DedupCache(config.dedup_cache_size)
        self.score_cache = ScoreCache(config.score_cache_size)
        self.tickers = TickerCache(extractor, config.ticker_cache_size)
        # Wall seconds spent in each stage of the loop (the profile of where time goes).
        self.stage_s = dict.fromkeys(STAGES, 0.0)
        self.last_error: str | None = None
        self._last_lag_check = 0.0
        self._rate_mark = (time.monotonic(), 0)
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{id(self) % 10_000}"
        # The dashboard's headline feed, when this scorer runs in the API process.
        self.feed: HeadlineFeed | None = None

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
        self.dedup.clear()
        self.running = True
        metrics.WORKER_UP.labels("scorer").set(1)
        try:
            while not self._stop.is_set():
                mark = time.perf_counter()
                polled = consumer.poll(timeout_ms=cfg.poll_timeout_ms, max_records=cfg.batch_size)
                records = [r for batch in polled.values() for r in batch]
                self.stage_s["poll"] += time.perf_counter() - mark
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

    def _dead_letter(self, producer: Any, rec: Any, reason: str) -> Any:
        letter = dead_letter(
            rec.value,
            reason=reason,
            stage="scorer",
            topic=rec.topic,
            partition=rec.partition,
            offset=rec.offset,
            max_value_bytes=self.config.dlq_max_value_bytes,
        )
        self.dead_lettered += 1
        metrics.DLQ_MESSAGES.labels("scorer").inc()
        log.info("dead-lettered %s/%s/%s: %s", rec.topic, rec.partition, rec.offset, reason)
        return producer.send(
            self.config.dlq_topic, value=letter.value, key=rec.key, headers=letter.headers
        )

    def _parse(self, rec: Any, batch_ids: dict[str, tuple[int, int]]) -> PendingMessage:
        """Validate one record (schema, skew, duplicate id); raises InvalidMessageError."""
        cfg = self.config
        try:
            msg = parse_raw_message(
                rec.value,
                max_text_chars=cfg.max_text_chars,
                max_future_skew_s=cfg.max_future_skew_s,
                max_past_skew_s=cfg.max_past_skew_s,
            )
        except InvalidMessageError:
            raise
        except Exception as exc:  # any failure on one record is that record's
            raise InvalidMessageError(
                f"message: could not be parsed ({type(exc).__name__})"
            ) from exc
        here = (rec.partition, rec.offset)
        seen = batch_ids.get(msg.id) or self.dedup.position(msg.id)
        if seen is not None and seen != here:
            raise InvalidMessageError(
                f"id: duplicate of the message at partition {seen[0]} offset {seen[1]}"
            )
        if seen == here:
            self.redelivered += 1
        batch_ids[msg.id] = here
        return PendingMessage(msg, rec.partition, rec.offset, rec.timestamp)

    def _score(self, pending: list[PendingMessage]) -> list[Any]:
        """Verdicts for the batch; if the batch call fails, one call per message.

        Returns one verdict per message, or the exception class name of a message the
        model could not score (it goes to the DLQ; the rest of the batch goes on).
        """
        texts = [p.message.scoring_text for p in pending]
        try:
            return list(self.score_cache.score(self.model, texts))
        except Exception:  # isolate the record that breaks the model
            log.exception("batch scoring failed; scoring the %d messages one by one", len(texts))
        out: list[Any] = []
        for text in texts:
            try:
                out.append(score_texts(self.model, [text])[0])
            except Exception as exc:
                out.append(type(exc).__name__)
        return out

    def process_batch(self, records: list[Any], producer: Any, consumer: Any) -> None:
        """Validate, score, produce and (after the acks) commit one batch of raw records.

        Every failure tied to one record (parse, validation, scoring, serialisation,
        size) dead-letters that record and the batch goes on. Only broker failures
        (no acknowledgement) raise, so the batch is re-read after a restart.
        """
        from kafka.errors import CommitFailedError
        from kafka.structs import OffsetAndMetadata, TopicPartition

        cfg = self.config
        started = time.perf_counter()
        futures = []
        pending: list[PendingMessage] = []
        by_position = {(rec.partition, rec.offset): rec for rec in records}
        batch_ids: dict[str, tuple[int, int]] = {}
        for rec in records:
            try:
                pending.append(self._parse(rec, batch_ids))
            except InvalidMessageError as exc:
                futures.append(self._dead_letter(producer, rec, exc.reason))
        mark = self._stage("parse", started)
        verdicts = self._score(pending) if pending else []
        mark = self._stage("score", mark)
        scored_ok: list[PendingMessage] = []
        mix: list[tuple[str, str]] = []  # (source, sentiment) of each scored message
        fed: list[tuple[Any, Any, list[str]]] = []  # (message, verdict, tickers): the feed
        produced = 0
        for item, verdict in zip(pending, verdicts, strict=True):
            rec = by_position[(item.partition, item.offset)]
            if isinstance(verdict, str):
                futures.append(self._dead_letter(producer, rec, f"scoring failed ({verdict})"))
                continue
            try:
                msg = item.message
                tickers = self.tickers.extract(msg.scoring_text, msg.tickers)
                values = [
                    (r.series.encode(), r.to_json_bytes())
                    for r in enrich(
                        msg,
                        verdict,
                        tickers,
                        ingest_ts_ms=item.timestamp_ms,
                        raw_partition=item.partition,
                        raw_offset=item.offset,
                        worker=self.worker_id,
                    )
                ]
                too_big = max(len(v) + len(k) for k, v in values)
                if too_big > MAX_MESSAGE_BYTES - 10_000:
                    raise InvalidMessageError(f"scored record: {too_big} bytes, too large")
            except InvalidMessageError as exc:
                futures.append(self._dead_letter(producer, rec, exc.reason))
                continue
            except Exception as exc:  # e.g. a lone surrogate that cannot be encoded
                futures.append(
                    self._dead_letter(producer, rec, f"scored record: {type(exc).__name__}")
                )
                continue
            for key, value in values:
                futures.append(producer.send(cfg.scored_topic, key=key, value=value))
            produced += len(values)
            scored_ok.append(item)
            mix.append((item.message.source, verdict.sentiment))
            fed.append((item.message, verdict, tickers))
        mark = self._stage("records", mark)
        producer.flush(timeout=ACK_TIMEOUT_S)
        for future in futures:
            future.get(timeout=ACK_TIMEOUT_S)  # raises if the broker did not acknowledge
        mark = self._stage("acks", mark)
        for item in scored_ok:
            self.dedup.add(item.message.id, item.partition, item.offset)
        offsets: dict[Any, Any] = {}
        for rec in records:
            tp = TopicPartition(rec.topic, rec.partition)
            if tp not in offsets or offsets[tp].offset <= rec.offset:
                offsets[tp] = OffsetAndMetadata(rec.offset + 1, None, -1)
        try:
            consumer.commit(offsets=offsets)
        except CommitFailedError as exc:  # rebalance in flight: the batch will be redelivered
            log.warning("offset commit failed (%s); records will be redelivered", exc)
        self._stage("commit", mark)
        self.processed += len(scored_ok)
        metrics.MESSAGES_SCORED.inc(len(scored_ok))
        # One language counter update per language of the batch, not one per message.
        for source, sentiment in mix:
            metrics.record_sentiment(source, sentiment)
        for lang, count in Counter(verdict.lang for _m, verdict, _t in fed).items():
            metrics.MESSAGES_BY_LANGUAGE.labels(lang).inc(count)
        if self.feed is not None:
            self.feed.add(fed)
        metrics.RECORDS_PRODUCED.inc(produced)
        metrics.BATCH_SIZE.observe(len(records))
        metrics.BATCH_LATENCY.observe(time.perf_counter() - started)

    def _stage(self, name: str, since: float) -> float:
        """Add the time since ``since`` to stage ``name``; return now."""
        now = time.perf_counter()
        self.stage_s[name] += now - since
        return now

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
