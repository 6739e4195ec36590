"""Delivers stored alerts: to the alerts topic and to webhooks, grouped, each alert once.

Alerts are claimed from the store's outbox atomically, so several trend processes
sharing one store never deliver the same alert twice; silenced alerts are never
pending. Notifications wait ``group_wait_s`` so alerts of one group go out together.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Any

import httpx

from finance_monitor import metrics
from finance_monitor.silencing import group_alerts
from finance_monitor.store import MonitorStore
from finance_monitor.webhooks import post_with_retries

log = logging.getLogger(__name__)


class AlertDispatcher:
    """Background loop that drains the alert outbox."""

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
    ) -> None:
        self.store = store
        self.producer = producer
        self.alerts_topic = alerts_topic
        self.webhook_urls = webhook_urls
        self.group_by = group_by
        self.group_wait_s = group_wait_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.interval_s = interval_s
        self.owner = uuid.uuid4().hex[:12]
        self._stop = threading.Event()
        self._client = httpx.Client(timeout=10.0)

    def stop(self) -> None:
        """Ask the loop to exit after the current round."""
        self._stop.set()

    def run(self) -> None:
        """Deliver until stopped."""
        try:
            while not self._stop.is_set():
                try:
                    self.deliver_once()
                except Exception:  # keep delivering later alerts; this round's stay claimed/pending
                    log.exception("alert delivery round failed")
                self._stop.wait(self.interval_s)
        finally:
            self._client.close()

    def deliver_once(self) -> int:
        """One round: claim ripe alerts, send each group; returns alerts handled."""
        self.store.release_stale_claims()
        alerts = self.store.claim_pending_alerts(
            self.owner, older_than=time.time() - self.group_wait_s
        )
        for group in group_alerts(alerts, self.group_by):
            keys = [a.key for a in group.alerts]
            errors: list[str] = []
            attempts = 0
            try:
                futures = [
                    self.producer.send(
                        self.alerts_topic,
                        key=a.key.encode(),
                        value=json.dumps(a.as_dict()).encode(),
                        headers=[("alert.key", a.key.encode())],
                    )
                    for a in group.alerts
                ]
                for future in futures:
                    future.get(timeout=30)
                metrics.ALERT_DELIVERIES.labels("kafka", "sent").inc(len(futures))
            except Exception as exc:
                errors.append(f"kafka: {exc}")
                metrics.ALERT_DELIVERIES.labels("kafka", "failed").inc(len(group.alerts))
            payload = group.webhook_payload()
            for url in self.webhook_urls:
                tries, error = post_with_retries(
                    self._client,
                    url,
                    payload,
                    max_retries=self.max_retries,
                    backoff_s=self.backoff_s,
                )
                attempts += tries
                metrics.ALERT_DELIVERIES.labels("webhook", "failed" if error else "sent").inc()
                if error:
                    errors.append(error)
            self.store.mark_delivered(keys, attempts, "; ".join(errors) or None)
        return len(alerts)
