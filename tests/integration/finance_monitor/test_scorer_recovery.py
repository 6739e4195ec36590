"""Kill -9 the scorer mid-stream and restart it: nothing lost, duplicates only from the in-flight batch."""

from __future__ import annotations

import json
import signal
import threading
from collections import Counter
from pathlib import Path

import pytest

from finance_monitor.storage import MonitorStore
from tests.integration.finance_monitor.fm_support import (
    LIVE_RATE,
    SURGE_TOPIC,
    cli_process,
    create_topics,
    fm_env,
    produce_items,
    read_topic,
    surge_items,
    topic_records,
    wait_for,
)

pytestmark = pytest.mark.integration
BATCH = 64


def test_scorer_kill9_loses_nothing_and_alerts_once(
    kafka_bootstrap: str, fm_models_dir: Path, tmp_path: Path
) -> None:
    env = fm_env(kafka_bootstrap, tmp_path / "state", fm_models_dir, KEEL_FM_BATCH_SIZE=str(BATCH))
    create_topics(env)
    items = surge_items(surge=True, run_id="kill")
    ids = {i.message["id"] for i in items}
    scored_topic = env["KEEL_FM_SCORED_TOPIC"]
    log = tmp_path / "scorer.log"
    with cli_process(["trend"], env, tmp_path / "trend.log"):
        with cli_process(["scorer"], env, log) as scorer:
            # a live-like feed, produced at a steady rate once the scorer has loaded its model
            wait_for(lambda: "[scorer] consuming" in log.read_text(), 240, "the scorer to start")
            feed = threading.Thread(
                target=produce_items,
                args=(kafka_bootstrap, env["KEEL_FM_RAW_TOPIC"], items, LIVE_RATE),
            )
            feed.start()

            # wait until the first scorer is mid-stream, then kill it without warning
            def scored_count() -> int:
                recs = read_topic(
                    kafka_bootstrap, scored_topic, lambda r: len(topic_records(r)) > 300, 5
                )
                return len(topic_records(recs))

            wait_for(lambda: scored_count() > 300, 240, "the scorer to get going", interval_s=0.2)
            scorer.send_signal(signal.SIGKILL)
            scorer.wait(timeout=10)
            before_restart = topic_records(
                read_topic(kafka_bootstrap, scored_topic, lambda r: False, 3)
            )
            mid_stream = len({r["id"] for r in before_restart}) < len(ids)
            assert mid_stream  # the kill really happened before the stream was done
        feed.join(timeout=120)
        with cli_process(["scorer"], env, log):

            def all_scored() -> list[dict]:
                recs = topic_records(read_topic(kafka_bootstrap, scored_topic, lambda r: False, 3))
                return recs if {r["id"] for r in recs} >= ids else []

            records = wait_for(
                all_scored, 300, "every message to be scored after the restart", interval_s=2
            )
            counts = Counter(r["id"] for r in records)
            duplicates = sum(c - 1 for c in counts.values())
            print(f"duplicates after kill -9: {duplicates}")
            assert set(counts) == ids
            assert duplicates <= BATCH  # only the batch in flight at the kill may repeat

            store = MonitorStore(Path(env["KEEL_FM_STATE_DIR"]) / "finance_monitor.db")
            try:
                surge = wait_for(
                    lambda: [
                        a
                        for a in store.list_alerts(series=f"topic:{SURGE_TOPIC}")
                        if a["dispatch_state"] == "sent"
                    ],
                    120,
                    "the surge alert",
                )
                assert len(surge) == 1
            finally:
                store.close()
            alerts = read_topic(kafka_bootstrap, env["KEEL_FM_ALERTS_TOPIC"], lambda r: False, 5)
            keys = [json.loads(r.value)["key"] for r in alerts]
            assert keys and len(keys) == len(set(keys))  # no alert sent twice
