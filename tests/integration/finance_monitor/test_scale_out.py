"""Two scorer processes in one consumer group split the partitions and process each message once."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests.integration.finance_monitor.fm_support import (
    cli_process,
    create_topics,
    fm_env,
    produce,
    read_topic,
    topic_records,
    wait_for,
)

pytestmark = pytest.mark.integration
# Event times must be recent: the stages dead-letter records older than the past skew.
NOW_ISO = dt.datetime.now(dt.UTC).isoformat()


def _group_members(bootstrap: str, group: str) -> int:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        (description,) = admin.describe_consumer_groups([group])
        return sum(
            1 for m in description.members if m.member_assignment and m.member_assignment.assignment
        )
    finally:
        admin.close()


def test_two_scorers_share_partitions_and_score_each_message_once(
    kafka_bootstrap: str, fm_models_dir: Path, tmp_path: Path
) -> None:
    env = fm_env(kafka_bootstrap, tmp_path / "state", fm_models_dir, KEEL_FM_TOPIC_PARTITIONS="4")
    create_topics(env)
    with (
        cli_process(["scorer"], env, tmp_path / "s1.log"),
        cli_process(["scorer"], env, tmp_path / "s2.log"),
    ):
        wait_for(
            lambda: _group_members(kafka_bootstrap, env["KEEL_FM_SCORER_GROUP"]) == 2,
            240,
            "both scorers to join",
        )
        values = [
            json.dumps(
                {
                    "id": f"m-{i}",
                    "published_at": NOW_ISO,
                    "source": "wire",
                    "text": f"Vexa Motors recalls {i} thousand units over a safety defect",
                }
            ).encode()
            for i in range(400)
        ]
        produce(
            kafka_bootstrap,
            env["KEEL_FM_RAW_TOPIC"],
            values,
            [f"m-{i}".encode() for i in range(400)],
        )
        records = topic_records(
            read_topic(
                kafka_bootstrap,
                env["KEEL_FM_SCORED_TOPIC"],
                lambda r: len(topic_records(r)) >= 400,
                240,
            )
        )
    counts = Counter(r["id"] for r in records)
    assert set(counts) == {f"m-{i}" for i in range(400)}
    assert max(counts.values()) == 1  # each message scored exactly once
    partitions_by_worker: dict[str, set[int]] = defaultdict(set)
    for r in records:
        partitions_by_worker[r["extra"]["worker"]].add(r["raw_partition"])
    assert len(partitions_by_worker) == 2  # both processes did work
    first, second = partitions_by_worker.values()
    assert not first & second  # on disjoint partitions
    assert first | second == {0, 1, 2, 3}
