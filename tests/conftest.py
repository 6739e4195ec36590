"""Shared fixtures: one real Kafka broker per test session (started lazily)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_LOCAL = REPO_ROOT / "scripts" / "kafka_local.py"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real Apache Kafka broker for the whole test session.

    Uses ``KAFKA_BOOTSTRAP_SERVERS`` when set; otherwise starts a single-node KRaft
    broker with ``scripts/kafka-local`` in a temporary folder and stops it at the end.
    """
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    state_dir = tmp_path_factory.mktemp("kafka")
    started = subprocess.run(
        [sys.executable, str(KAFKA_LOCAL), "start", "--dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if started.returncode != 0:
        pytest.fail(f"kafka-local start failed:\n{started.stdout}{started.stderr}")
    address = started.stdout.strip().splitlines()[-1]
    try:
        yield address
    finally:
        subprocess.run(
            [sys.executable, str(KAFKA_LOCAL), "stop", "--dir", str(state_dir)],
            capture_output=True,
            text=True,
            timeout=60,
        )
