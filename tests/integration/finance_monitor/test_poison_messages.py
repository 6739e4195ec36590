"""Poison messages land in the DLQ with reasons and original bytes; valid messages keep flowing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.finance_monitor.fm_support import (
    cli_process,
    create_topics,
    fm_env,
    produce,
    read_topic,
    topic_records,
)

pytestmark = pytest.mark.integration


def _valid(i: int) -> bytes:
    return json.dumps(
        {
            "id": f"ok-{i}",
            "published_at": "2026-01-05T09:30:00Z",
            "source": "wire",
            "text": "Harbor Bancorp raises its dividend by 10%",
        }
    ).encode()


POISON = {
    b"{this is not json": "invalid JSON",
    b"\xff\xfe\xfa not utf-8": "not UTF-8",
    json.dumps(
        {"id": "p-missing", "source": "wire", "text": "no date"}
    ).encode(): "published_at: required field is missing",
    json.dumps(
        {"id": "p-types", "published_at": "2026-01-05T09:30:00Z", "source": "wire", "text": 12345}
    ).encode(): "text: Input should be a valid string",
    json.dumps(
        {
            "id": "p-tickers",
            "published_at": "2026-01-05T09:30:00Z",
            "source": "wire",
            "text": "x",
            "tickers": "ACME",
        }
    ).encode(): "tickers:",
    json.dumps(
        {
            "id": "p-big",
            "published_at": "2026-01-05T09:30:00Z",
            "source": "wire",
            "text": "x" * 1_000_000,
        }
    ).encode(): "longer than the limit",
}


def test_poison_messages_go_to_the_dlq_and_valid_ones_are_scored(
    kafka_bootstrap: str, fm_models_dir: Path, tmp_path: Path
) -> None:
    env = fm_env(kafka_bootstrap, tmp_path / "state", fm_models_dir)
    create_topics(env)
    values = []
    for i in range(60):
        values.append(_valid(i))
        if i % 10 == 5:
            values.append(list(POISON)[i // 10])
    produce(kafka_bootstrap, env["KEEL_FM_RAW_TOPIC"], values)
    with cli_process(["scorer"], env, tmp_path / "scorer.log"):
        scored = read_topic(
            kafka_bootstrap,
            env["KEEL_FM_SCORED_TOPIC"],
            lambda r: len(topic_records(r)) >= 60,
            timeout_s=240,
        )
        dead = read_topic(
            kafka_bootstrap, env["KEEL_FM_DLQ_TOPIC"], lambda r: len(r) >= len(POISON), timeout_s=60
        )
    assert sorted(r["id"] for r in topic_records(scored)) == sorted(f"ok-{i}" for i in range(60))
    assert len(dead) == len(POISON)
    for rec in dead:
        headers = dict(rec.headers)
        assert rec.value in POISON  # original bytes, unchanged (the 1 MB one included)
        assert POISON[rec.value] in headers["dlq.reason"].decode()
        assert headers["dlq.stage"] == b"scorer"
        assert headers["dlq.source"].decode().startswith(env["KEEL_FM_RAW_TOPIC"] + "/")
