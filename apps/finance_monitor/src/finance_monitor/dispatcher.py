"""Delivers stored alerts: one queue per receiver (the alerts topic, each webhook).

Ripe pending alerts (older than ``group_wait_s``, so a group goes out together) are
grouped and copied into one delivery row per group and receiver, atomically
(``MonitorStore.enqueue_deliveries``). Each receiver then has its own thread that
claims its next due delivery with a conditional UPDATE, makes ONE attempt, and on
failure schedules the next attempt (exponential backoff with jitter, or the
receiver's ``Retry-After``) in the store instead of sleeping. So a dead receiver
delays only its own queue, a failed delivery survives restarts, and two dispatcher
processes sharing the store never deliver the same alert to a receiver twice
(claims expire after ``claim_timeout_s`` when a dispatcher dies mid-delivery).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from finance_monitor import metrics
from finance_monitor.rules import Alert
from finance_monitor.silencing import group_alerts
from finance_monitor.store import Delivery, MonitorStore, Receiver
from finance_monitor.webhooks import (
    AttemptResult,
    post_once,
    receiver_id,
    redact_url,
    retry_delay,
)

log = logging.getLogger(__name__)
KAFKA_RECEIVER = Receiver("kafka", "alerts topic")


class AlertDispatcher:
    """Background delivery of the alert outbox, isolated per receiver.

    Args:
        store: the shared SQLite store.
        producer: Kafka producer for the alerts topic (None: no Kafka receiver).
        alerts_topic: where alerts are published, one record per alert.
        webhook_urls: webhook receivers (Alertmanager-style grouped payloads).
        group_by: alert labels that group notifications.
        group_wait_s: how long a new alert waits for others of its group.
        max_retries: attempts after which the delay stays at ``max_backoff_s`` (an
            alert is never dropped: a failed delivery stays queued in the store).
        backoff_s: first retry delay (doubles per failure, with jitter).
        interval_s: idle poll interval of the queues.
        max_backoff_s: longest retry delay (also caps ``Retry-After``).
        claim_timeout_s: a claim older than this is taken over by another dispatcher.
        timeout_s: HTTP timeout of one webhook attempt.
        rng: jitter source (tests pass a fixed one).
        transport: httpx transport of the webhook clients (tests pass a mock one).
    """

    def __init__(
        self,
        store: MonitorStore,
        producer: Any,
        alerts_topic: str,
        webhook_urls: list[str],
        group_by: list[str],
        group_wait_s: float = 1.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        interval_s: float = 0.25,
        *,
        max_backoff_s: float = 300.0,
        claim_timeout_s: float = 60.0,
        timeout_s: float = 10.0,
        rng: Callable[[], float] = random.random,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.store = store
        self.producer = producer
        self.alerts_topic = alerts_topic
        self.group_by = group_by
        self.group_wait_s = group_wait_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.interval_s = interval_s
        self.max_backoff_s = max_backoff_s
        self.claim_timeout_s = max(claim_timeout_s, timeout_s * 2)
        self.timeout_s = timeout_s
        self.rng = rng
        self.transport = transport
        self.owner = uuid.uuid4().hex[:12]
        self._urls = {receiver_id(url): url for url in webhook_urls}
        self.receivers = ([KAFKA_RECEIVER] if producer is not None else []) + [
            Receiver(rid, redact_url(url)) for rid, url in self._urls.items()
        ]
        self._stop = threading.Event()
        self._clients: dict[str, httpx.Client] = {}

    def stop(self) -> None:
        """Ask the loops to exit after their current attempt."""
        self._stop.set()

    # ---- the outbox -> per-receiver queues ------------------------------------
    def _groups(self, alerts: list[Alert]) -> list[tuple[list[str], dict[str, Any]]]:
        return [
            (
                [a.key for a in group.alerts],
                {"webhook": group.webhook_payload(), "alerts": [a.as_dict() for a in group.alerts]},
            )
            for group in group_alerts(alerts, self.group_by)
        ]

    def enqueue(self) -> int:
        """Queue ripe pending alerts for every receiver; returns how many alerts."""
        return self.store.enqueue_deliveries(
            self.receivers, time.time() - self.group_wait_s, self._groups
        )

    # ---- one attempt ------------------------------------------------------------
    def _client(self, receiver: str) -> httpx.Client:
        if receiver not in self._clients:
            self._clients[receiver] = httpx.Client(timeout=self.timeout_s, transport=self.transport)
        return self._clients[receiver]

    def _send_kafka(self, delivery: Delivery) -> AttemptResult:
        try:
            futures = [
                self.producer.send(
                    self.alerts_topic,
                    key=a["key"].encode(),
                    value=json.dumps(a).encode(),
                    headers=[("alert.key", a["key"].encode())],
                )
                for a in delivery.payload["alerts"]
            ]
            for future in futures:
                future.get(timeout=min(30.0, self.claim_timeout_s / 2))
        except Exception as exc:  # recorded as a short class, retried later
            return AttemptResult(ok=False, error=f"kafka {type(exc).__name__}", retryable=True)
        return AttemptResult(ok=True)

    def attempt(self, delivery: Delivery) -> AttemptResult:
        """Make one delivery attempt and record its outcome (or next due time) in the store."""
        if delivery.receiver == KAFKA_RECEIVER.id:
            channel = "kafka"
            result = self._send_kafka(delivery)
        else:
            channel = "webhook"
            url = self._urls.get(delivery.receiver)
            if url is None:  # receiver removed from the settings: keep it for when it returns
                result = AttemptResult(ok=False, error="receiver not configured", retryable=True)
            else:
                result = post_once(
                    self._client(delivery.receiver), url, delivery.payload["webhook"]
                )
        metrics.ALERT_DELIVERIES.labels(channel, "sent" if result.ok else "failed").inc()
        retry_at = None
        if not result.ok:
            attempts = delivery.attempts + 1
            delay = retry_delay(result, attempts, self.backoff_s, self.max_backoff_s, self.rng)
            if attempts > self.max_retries:
                delay = max(delay, self.max_backoff_s)
            retry_at = time.time() + delay
            log.warning(
                "delivery %s to %s failed (%s); attempt %d, next in %.1fs",
                delivery.id,
                delivery.receiver_label,
                result.error,
                attempts,
                delay,
            )
        self.store.finish_delivery(delivery.id, self.owner, result.error, retry_at)
        return result

    def drain(self, receiver: str) -> int:
        """Attempt every due delivery of one receiver once; returns how many were attempted."""
        done = 0
        while not self._stop.is_set():
            delivery = self.store.claim_delivery(receiver, self.owner, self.claim_timeout_s)
            if delivery is None:
                break
            self.attempt(delivery)
            done += 1
        return done

    def deliver_once(self) -> int:
        """One synchronous round (tests, tools): queue ripe alerts, drain every receiver."""
        queued = self.enqueue()
        for receiver in self.receivers:
            self.drain(receiver.id)
        return queued

    # ---- loops ----------------------------------------------------------------
    def _receiver_loop(self, receiver: Receiver, done: threading.Event) -> None:
        while not (self._stop.is_set() or done.is_set()):
            try:
                if self.drain(receiver.id) == 0:
                    self._stop.wait(self.interval_s)
            except Exception as exc:  # store busy etc.: the claim expires, retry
                log.warning("delivery loop of %s: %s", receiver.label, type(exc).__name__)
                self._stop.wait(max(self.interval_s, 1.0))

    def run(self) -> None:
        """Queue and deliver until stopped: one thread per receiver, this one queues."""
        done = threading.Event()  # ends this run's receiver threads (a restart starts new ones)
        threads = [
            threading.Thread(
                target=self._receiver_loop,
                args=(r, done),
                name=f"fm-deliver-{r.id}",
                daemon=True,
            )
            for r in self.receivers
        ]
        for thread in threads:
            thread.start()
        try:
            while not self._stop.is_set():
                try:
                    self.enqueue()
                except Exception as exc:  # alerts stay pending; next round
                    log.warning("queueing alerts failed: %s", type(exc).__name__)
                self._stop.wait(self.interval_s)
        finally:
            done.set()
            for thread in threads:
                thread.join(timeout=self.timeout_s + 5)
            for client in self._clients.values():
                client.close()
            self._clients = {}
