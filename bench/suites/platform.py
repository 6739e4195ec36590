"""Platform suites: the local Kafka broker's raw produce / consume speed."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

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
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    n = 20_000 if ctx.quick else 100_000
    payload = b'{"id": 0, "text": "' + b"x" * 70 + b'"}'  # ~100-byte messages
    with LocalBroker() as bootstrap:
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        admin.close()
        producer = KafkaProducer(
            bootstrap_servers=bootstrap, linger_ms=5, batch_size=64 * 1024, acks=1
        )
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
        received = 0
        first_at: float | None = None
        deadline = time.monotonic() + 300
        while received < n and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            if batch and first_at is None:
                first_at = time.perf_counter()
            received += sum(len(records) for records in batch.values())
        consume_s = time.perf_counter() - (first_at or time.perf_counter())
        consumer.close()
    ctx.log(f"produced {n} in {produce_s:.2f}s, consumed {received} in {consume_s:.2f}s")
    return SuiteResult(
        metrics={
            "produce_msgs_per_s": n / produce_s,
            "consume_msgs_per_s": received / consume_s if consume_s > 0 else 0.0,
            "messages": float(n),
            "received": float(received),
        },
        details={"client": "kafka-python", "message_bytes": len(payload), "partitions": 3},
    )
