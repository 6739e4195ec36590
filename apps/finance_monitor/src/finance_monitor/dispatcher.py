"""Delivers stored alerts: one queue per receiver (the alerts topic, each webhook, and
an Alertmanager when ``alertmanager_url`` is set).

Ripe pending alerts (older than ``group_wait_s``, so a group goes out together) are
grouped and copied into one delivery row per group and receiver, atomically
(``MonitorStore.enqueue_deliveries``). Each receiver then has its own thread that
claims its next due delivery with a conditional UPDATE, makes ONE attempt, and on
failure schedules the next attempt (exponential backoff with jitter, or the
receiver's ``Retry-After``) in the store instead of sleeping. So a dead receiver
delays only its own queue, a failed delivery survives restarts, and two dispatcher
processes sharing the store never deliver the same alert to a receiver twice
(claims expire after ``claim_timeout_s`` when a dispatcher dies mid-delivery).

Resolved alerts get a ``resolved`` notification the same way (webhooks and
Alertmanager; the alerts topic carries each alert once, when it fires). Webhook
payloads are in Alertmanager's webhook format (version 4). The Alertmanager receiver
posts the alerts' *current* state to ``/api/v2/alerts`` on each attempt, and every
``alertmanager_resend_s`` the dispatcher re-posts every firing alert (as Prometheus
does), best effort: a failed re-send is simply repeated at the next round.
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
from finance_monitor.alertmanager import am_alert, webhook_payload
from finance_monitor.rules import Alert
from finance_monitor.silencing import group_alerts, is_silenced
from finance_monitor.storage import Delivery, MonitorStore, Receiver
from finance_monitor.webhooks import (
    AttemptResult,
    post_once,
    receiver_id,
    redact_url,
    retry_delay,
)

log = logging.getLogger(__name__)
KAFKA_RECEIVER = Receiver("kafka", "alerts topic")
ALERTMANAGER_ID = "alertmanager"


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
        alertmanager_url: an Alertmanager's base URL (``http://am:9093``), or None.
        resend_s: how often firing alerts are re-posted to the Alertmanager.
        max_firing_s: a firing alert created longer ago is resolved (its series stopped).
        public_url: the dashboard's URL, for links in notifications.
        send_resolved: also notify webhooks when an alert resolves.
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
        alertmanager_url: str | None = None,
        resend_s: float = 60.0,
        max_firing_s: float = 86400.0,
        public_url: str = "http://127.0.0.1:8102",
        send_resolved: bool = True,
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
        self.alertmanager_url = alertmanager_url.rstrip("/") if alertmanager_url else None
        if self.alertmanager_url:
            self.receivers.append(Receiver(ALERTMANAGER_ID, redact_url(self.alertmanager_url)))
        self.resend_s = resend_s
        self.max_firing_s = max_firing_s
        self.public_url = public_url
        self.send_resolved = send_resolved
        self._last_resend = 0.0
        self._stop = threading.Event()
        self._clients: dict[str, httpx.Client] = {}

    def stop(self) -> None:
        """Ask the loops to exit after their current attempt."""
        self._stop.set()

    # ---- the outbox -> per-receiver queues ------------------------------------
    def _rows(self, keys: list[str]) -> list[dict[str, Any]]:
        """Stored alert rows (creation / resolution times) with their evidence."""
        rows = self.store.alerts_by_keys(keys)
        for row in rows:
            row["evidence"] = self.store.alert_evidence(row["key"])
        return rows

    def _groups_for(
        self, status: str
    ) -> Callable[[list[Alert]], list[tuple[list[str], dict[str, Any]]]]:
        def make(alerts: list[Alert]) -> list[tuple[list[str], dict[str, Any]]]:
            out = []
            for group in group_alerts(alerts, self.group_by):
                keys = [a.key for a in group.alerts]
                rows = self._rows(keys)
                evidence = {r["key"]: r["evidence"] for r in rows}
                payload = {
                    "status": status,
                    "keys": keys,
                    "webhook": webhook_payload(rows, self.group_by, status, self.public_url),
                    "alerts": [
                        {**a.as_dict(), "evidence": evidence.get(a.key, [])} for a in group.alerts
                    ],
                }
                out.append((keys, payload))
            return out

        return make

    def enqueue(self) -> int:
        """Queue ripe pending alerts (firing) and resolved ones for every receiver;
        returns how many alerts."""
        queued = self.store.enqueue_deliveries(
            self.receivers, time.time() - self.group_wait_s, self._groups_for("firing")
        )
        # The alerts topic carries each alert once; webhooks only with send_resolved.
        resolved_to = [
            r
            for r in self.receivers
            if r.id == ALERTMANAGER_ID or (self.send_resolved and r.id in self._urls)
        ]
        return queued + self.store.enqueue_resolved(resolved_to, self._groups_for("resolved"))

    # ---- Alertmanager -------------------------------------------------------------
    def _post_alertmanager(self, rows: list[dict[str, Any]]) -> AttemptResult:
        now = time.time()
        body = [am_alert(r, self.public_url, now, 4 * self.resend_s) for r in rows]
        if not body:
            return AttemptResult(ok=True)
        assert self.alertmanager_url is not None
        return post_once(
            self._client(ALERTMANAGER_ID), f"{self.alertmanager_url}/api/v2/alerts", body
        )

    def resend_firing(self) -> int:
        """Re-post every firing, unsilenced alert to the Alertmanager (best effort), after
        resolving alerts that fired more than ``max_firing_s`` ago; returns how many."""
        now = time.time()
        self.store.resolve_stale_alerts(now - self.max_firing_s)
        if not self.alertmanager_url:
            return 0
        silences = self.store.list_silences(active_at=now)
        rows = [
            r
            for r in self.store.firing_alerts(since=now - self.max_firing_s)
            if r["dispatch_state"] != "pending" and not is_silenced(r["labels"], silences, now)
        ]
        for row in rows:
            row["evidence"] = self.store.alert_evidence(row["key"])
        result = self._post_alertmanager(rows)
        if not result.ok:
            log.warning("re-sending firing alerts to the Alertmanager failed (%s)", result.error)
        return len(rows) if result.ok else 0

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
        elif delivery.receiver == ALERTMANAGER_ID:
            channel = "alertmanager"
            if self.alertmanager_url is None:  # unset since: keep it for when it returns
                result = AttemptResult(ok=False, error="receiver not configured", retryable=True)
            else:
                keys = delivery.payload.get("keys") or [
                    a["key"] for a in delivery.payload["alerts"]
                ]
                result = self._post_alertmanager(self._rows(keys))
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
        """Attempt every due delivery of one receiver once; returns how many were attempted.

        Only deliveries due when the round starts are claimed: a failed one is rescheduled
        after that, so a short backoff (or a slow, loaded round) cannot make the round
        attempt it again, and the round ends even while the receiver keeps failing.
        """
        started = time.time()
        done = 0
        while not self._stop.is_set():
            delivery = self.store.claim_delivery(
                receiver, self.owner, self.claim_timeout_s, due_by=started
            )
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
                if time.monotonic() - self._last_resend >= self.resend_s:
                    self._last_resend = time.monotonic()
                    try:
                        self.resend_firing()
                    except Exception as exc:  # best effort: the next round re-sends
                        log.warning("re-sending firing alerts failed: %s", type(exc).__name__)
                self._stop.wait(self.interval_s)
        finally:
            done.set()
            for thread in threads:
                thread.join(timeout=self.timeout_s + 5)
            for client in self._clients.values():
                client.close()
            self._clients = {}
