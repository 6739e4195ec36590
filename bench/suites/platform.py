"""Platform suites: the local Kafka broker's raw produce / consume speed (medians of 5 runs
after a warm-up, a new topic each)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.harness import REPO_ROOT, SuiteContext, SuiteResult, suite

KAFKA_LOCAL = REPO_ROOT / "scripts" / "kafka_local.py"


class LocalBroker:
    """The broker from ``scripts/kafka-local`` (or ``KAFKA_BOOTSTRAP_SERVERS``) for one suite."""

    def __init__(self) -> None:
        self.external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        self.state_dir = Path(tempfile.mkdtemp(prefix="bench-kafka-"))
        self.address = ""

    def __enter__(self) -> str:
        if self.external:
            self.address = self.external
            return self.address
        out = subprocess.run(
            [sys.executable, str(KAFKA_LOCAL), "start", "--dir", str(self.state_dir)],
            capture_output=True,
            text=True,
            check=True,
        )
        self.address = out.stdout.strip().splitlines()[-1]
        return self.address

    def __exit__(self, *exc: object) -> None:
        if not self.external:
            subprocess.run(
                [sys.executable, str(KAFKA_LOCAL), "stop", "--dir", str(self.state_dir)],
                capture_output=True,
                text=True,
            )


@suite(
    "kafka-roundtrip", area="platform", description="100k small messages through the local broker"
)
def kafka_roundtrip(ctx: SuiteContext) -> SuiteResult:
    n = 20_000 if ctx.quick else 100_000
    runs = ctx.runs
    payload = b'{"id": 0, "text": "' + b"x" * 70 + b'"}'  # ~100-byte messages
    produce: list[float] = []
    consume: list[float] = []
    received_total = 0
    with LocalBroker() as bootstrap:
        _roundtrip(bootstrap, payload, min(n, 2_000))  # warm-up: connections, topic creation
        for _ in range(runs):  # a fresh topic per run
            produce_s, consume_rate, received = _roundtrip(bootstrap, payload, n)
            produce.append(n / produce_s)
            consume.append(consume_rate)
            received_total += received
    ctx.log(
        f"{runs} runs of {n}: produce {statistics.median(produce):.0f}/s, "
        f"consume {statistics.median(consume):.0f}/s (medians)"
    )
    return SuiteResult(
        metrics={
            "produce_msgs_per_s": float(statistics.median(produce)),
            "consume_msgs_per_s": float(statistics.median(consume)),
            "messages": float(n * runs),
            "received": float(received_total),
        },
        details={
            "client": "kafka-python",
            "message_bytes": len(payload),
            "partitions": 3,
            "runs": runs,
            "messages_per_run": n,
            "per_run": {
                "produce_msgs_per_s": _spread(produce),
                "consume_msgs_per_s": _spread(consume),
            },
        },
        recipe={"runs": runs, "messages_per_run": n, "figures": "medians of the runs"},
    )


def _spread(values: list[float]) -> dict[str, Any]:
    return {
        "median": round(float(statistics.median(values)), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
        "runs": [round(v, 1) for v in values],
    }


def _roundtrip(bootstrap: str, payload: bytes, n: int) -> tuple[float, float, int]:
    """Produce ``n`` messages to a new 3-partition topic, then consume them.

    Returns:
        Seconds to produce (flushed); the consume rate: messages after the first polled
        batch per second from that batch to the last (the group join before the first
        batch is not throughput, and a first batch alone gives no rate); messages read.
    """
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"bench-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, batch_size=64 * 1024, acks=1)
    started = time.perf_counter()
    for _ in range(n):
        producer.send(topic, payload)
    producer.flush()
    produce_s = time.perf_counter() - started
    producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{topic}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        max_poll_records=5000,
        fetch_max_bytes=50 * 1024 * 1024,
    )
    received = first_batch = 0
    first_at: float | None = None
    deadline = time.monotonic() + 300
    while received < n and time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=500)
        count = sum(len(records) for records in batch.values())
        if count and first_at is None:
            first_at, first_batch = time.perf_counter(), count
        received += count
    consume_s = time.perf_counter() - (first_at or time.perf_counter())
    consumer.close()
    rate = (received - first_batch) / consume_s if consume_s > 0 else 0.0
    return produce_s, rate, received
