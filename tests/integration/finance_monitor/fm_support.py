"""Helpers shared by the finance monitor's integration and e2e tests (real Kafka, real HTTP)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from finance_monitor.kafka_io import ensure_topics, make_consumer, make_producer
from finance_monitor.replay import ReplayItem, SurgePlan, demo_stream, send_stream
from keel_service.servers import free_port, stop_process_group

WINDOW_S = 10.0
LIVE_RATE = 250.0  # messages/s of the paced surge streams
SURGE_TOPIC = "Earnings"
CONTROL_TOPIC = "Energy | Oil"
STREAM_TOPICS = [SURGE_TOPIC, CONTROL_TOPIC, "Dividend", "M&A | Investments"]


def prepare_test_models(models_dir: Path, chinese: bool = False) -> Path:
    """Train the models on the bundled demo data with the app's default (small) config;
    with ``chinese`` also the Chinese heads (cached in ``models_dir`` like the others)."""
    from finance_monitor.model_prep import PrepConfig, prepare_models

    config = PrepConfig(models_dir=models_dir, show_progress=False)
    prepare_models(config, progress=lambda _m: None)
    if chinese:
        from finance_monitor.chinese import prepare_chinese_models

        prepare_chinese_models(config, progress=lambda _m: None)
    return models_dir


API_KEY = "test-admin-key-fm"


def topic_names(prefix: str = "t") -> dict[str, str]:
    """Fresh topic names (one set per test keeps tests independent on one broker)."""
    run = f"{prefix}-{uuid.uuid4().hex[:8]}"
    return {
        "KEEL_FM_RAW_TOPIC": f"{run}.raw",
        "KEEL_FM_SCORED_TOPIC": f"{run}.scored",
        "KEEL_FM_DLQ_TOPIC": f"{run}.dlq",
        "KEEL_FM_ALERTS_TOPIC": f"{run}.alerts",
        "KEEL_FM_SCORER_GROUP": f"{run}-scorer",
        "KEEL_FM_TREND_GROUP": f"{run}-trend",
    }


def fm_env(
    bootstrap: str, state_dir: Path, models_dir: Path, partitions: int = 2, **extra: str
) -> dict[str, str]:
    """Environment of a finance monitor process with fast test windows."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KEEL_FM_API_KEY": API_KEY,
        "KEEL_FM_STATE_DIR": str(state_dir),
        "KEEL_FM_MODELS_DIR": str(models_dir),
        "KEEL_FM_TOPIC_PARTITIONS": str(partitions),
        "KEEL_FM_WINDOW_SIZE_S": str(WINDOW_S),
        "KEEL_FM_SLIDING_SIZE_S": str(3 * WINDOW_S),
        "KEEL_FM_SLIDING_STEP_S": str(WINDOW_S),
        # Replays compress event time (one 10 s window = 200 messages), so a scorer batch
        # spans seconds of event time: allow one window of lateness.
        "KEEL_FM_WATERMARK_DELAY_S": "2",
        "KEEL_FM_ALLOWED_LATENESS_S": str(WINDOW_S),
        "KEEL_FM_GROUP_WAIT_S": "0.5",
        "KEEL_FM_WEBHOOK_BACKOFF_S": "0.2",
        "KEEL_FM_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        # English-only unless a test asks for the Chinese heads (``KEEL_FM_CHINESE="true"``
        # with ``prepare_test_models(..., chinese=True)``): they cost a me5-small training.
        "KEEL_FM_CHINESE": "false",
        **topic_names(),
    }
    env.update(extra)
    return env


def create_topics(env: dict[str, str]) -> None:
    """Create the four topics of ``env`` with its partition count."""
    n = int(env["KEEL_FM_TOPIC_PARTITIONS"])
    ensure_topics(
        env["KAFKA_BOOTSTRAP_SERVERS"],
        {
            env["KEEL_FM_RAW_TOPIC"]: n,
            env["KEEL_FM_SCORED_TOPIC"]: n,
            env["KEEL_FM_DLQ_TOPIC"]: 1,
            env["KEEL_FM_ALERTS_TOPIC"]: 1,
        },
    )


def surge_items(
    surge: bool, run_id: str, n_windows: int = 11, per_window: int = 200
) -> list[ReplayItem]:
    """A demo stream over four topics; with ``surge`` Earnings turns negative in windows 6-7."""
    start = (time.time() // WINDOW_S) * WINDOW_S
    plan = SurgePlan(SURGE_TOPIC, 6 * WINDOW_S, 2 * WINDOW_S) if surge else None
    return list(
        demo_stream(
            start=start,
            spacing_s=WINDOW_S / per_window,
            count=n_windows * per_window,
            surge=plan,
            topics=STREAM_TOPICS,
            run_id=run_id,
        )
    )


def produce(
    bootstrap: str, topic: str, values: list[bytes], keys: list[bytes] | None = None
) -> None:
    """Send raw values and wait for every acknowledgement."""
    producer = make_producer(bootstrap)
    try:
        futures = [
            producer.send(topic, value=v, key=(keys[i] if keys else None))
            for i, v in enumerate(values)
        ]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close(timeout=10)


def produce_items(
    bootstrap: str, topic: str, items: list[ReplayItem], rate: float | None = None
) -> None:
    """Send replay items as JSON; with ``rate`` paced like a live feed (messages/s)."""
    if rate is not None:
        producer = make_producer(bootstrap)
        try:
            send_stream(producer, topic, items, rate)
        finally:
            producer.close(timeout=10)
        return
    produce(
        bootstrap,
        topic,
        [json.dumps(i.message).encode() for i in items],
        [str(i.message["id"]).encode() for i in items],
    )


def read_topic(bootstrap: str, topic: str, until: Any, timeout_s: float = 120.0) -> list[Any]:
    """Read a topic from the beginning until ``until(records)`` is true (or time runs out)."""
    consumer = make_consumer(bootstrap, None, [topic], consumer_timeout_ms=1000)
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            polled = consumer.poll(timeout_ms=500)
            for batch in polled.values():
                records.extend(batch)
            if until(records):
                break
    finally:
        consumer.close()
    return records


def topic_records(records: list[Any]) -> list[dict[str, Any]]:
    """Scored records of the topic series (one per scored message)."""
    out = []
    for rec in records:
        data = json.loads(rec.value)
        if data["series"].startswith("topic:"):
            out.append(data)
    return out


@contextmanager
def cli_process(
    args: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``finance-monitor ARGS`` as a real subprocess; stopped (group SIGTERM/KILL) at exit."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "finance_monitor.cli", *args],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        stop_process_group(proc)


def wait_for(predicate: Any, timeout_s: float, what: str, interval_s: float = 0.5) -> Any:
    """Poll ``predicate()`` until truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


class WebhookRecorder:
    """A real HTTP server that records the JSON bodies POSTed to it (the test's webhook)."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                recorder.payloads.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def alert_keys(self, status: str = "firing") -> list[str]:
        """Keys of every alert received with ``status`` (Alertmanager webhook format,
        version 4: the key is the ``alert_key`` annotation), in arrival order (duplicates
        kept)."""
        return [
            a["annotations"]["alert_key"]
            for p in self.payloads
            for a in p["alerts"]
            if a["status"] == status
        ]

    def __enter__(self) -> WebhookRecorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
