"""keel_service.upgrade: the decision, the folders it keeps, the cache per fingerprint,
the lock between processes, the child's lifetime and the gauges (a fake build target)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from keel_service.upgrade import (
    CandidateJob,
    CandidateResult,
    LabelledExamples,
    ModelUpgrader,
    ServedModel,
    UpgradeState,
    _try_lock,
    training_progress,
    update_model_gauges,
)

TARGET = "tests.support.upgrade_targets:fake_build"
DEADLINE_S = 60.0


def _upgrader(root: Path, spec: dict, swaps: list, fingerprint: str = "fp1") -> ModelUpgrader:
    def swap(folder: Path, result: CandidateResult) -> None:
        swaps.append((folder, result))

    return ModelUpgrader(
        "intent",
        root,
        ServedModel("fast", spec.get("served")),
        lambda: CandidateJob(TARGET, spec, fingerprint),
        swap,
        nice=5,
        poll_s=0.05,
    )


def test_a_better_candidate_is_swapped_in_and_reused_after_a_restart(tmp_path: Path) -> None:
    swaps: list = []
    upgrader = _upgrader(tmp_path, {"score": 0.9, "served": 0.8}, swaps)
    assert upgrader.run_once() is UpgradeState.SWAPPED
    [(folder, result)] = swaps
    assert (folder / "weights.txt").read_text() == "0.9"
    assert folder.parent == tmp_path / "accepted" / "fp1"
    assert (result.score, result.served_score) == (0.9, 0.8)
    snapshot = upgrader.snapshot()
    assert snapshot["tier"] == "full" and snapshot["validation_score"] == 0.9
    assert snapshot["upgrade"]["state"] == "swapped" and snapshot["upgrade"]["fraction"] == 1.0
    # The build ran in a child process, niced by 5 more than this one.
    assert int((folder / "pid").read_text()) != os.getpid()
    assert int((folder / "nice").read_text()) == min(os.nice(0) + 5, 19)

    # A restart: same fingerprint, a build that would fail if it ran: the accepted
    # candidate is served without training.
    again: list = []
    restarted = _upgrader(tmp_path, {"score": 0.9, "served": 0.8, "fail": True}, again)
    assert restarted.run_once() is UpgradeState.SWAPPED
    assert again[0][0] == folder
    assert restarted.snapshot()["upgrade"]["message"] == "swapped in a cached candidate"


@pytest.mark.parametrize("score", [0.7, 0.8])  # worse, and equal (not better)
def test_a_candidate_that_does_not_beat_the_served_model_is_kept_aside(
    tmp_path: Path, score: float
) -> None:
    swaps: list = []
    upgrader = _upgrader(tmp_path, {"score": score, "served": 0.8}, swaps)
    assert upgrader.run_once() is UpgradeState.REFUSED
    assert swaps == []
    kept = tmp_path / "refused" / "fp1"
    record = json.loads((kept / "reason.json").read_text())
    assert "does not beat the served model's 0.8000" in record["reason"]
    assert (record["score"], record["served_score"]) == (score, 0.8)
    assert (kept / "model" / "weights.txt").is_file()  # the candidate itself is kept
    snapshot = upgrader.snapshot()
    assert snapshot["tier"] == "fast" and snapshot["validation_score"] == 0.8
    assert snapshot["upgrade"]["state"] == "refused"
    assert snapshot["upgrade"]["reason"] == record["reason"]
    assert not list(tmp_path.glob(".*.tmp"))  # no build folder left behind
    # Not retrained: the recorded outcome stands (a build that would fail is not run).
    again = _upgrader(tmp_path, {"score": 0.99, "served": 0.8, "fail": True}, swaps)
    assert again.run_once() is UpgradeState.REFUSED and swaps == []
    # A new fingerprint (e.g. new corrections) is a new candidate.
    other = _upgrader(tmp_path, {"score": 0.95, "served": 0.8}, swaps, fingerprint="fp2")
    assert other.run_once() is UpgradeState.SWAPPED and len(swaps) == 1


def test_min_gain_is_required(tmp_path: Path) -> None:
    swaps: list = []
    upgrader = _upgrader(tmp_path, {"score": 0.85, "served": 0.8}, swaps)
    upgrader.min_gain = 0.1
    assert upgrader.run_once() is UpgradeState.REFUSED and swaps == []


def test_a_failed_build_is_reported_and_nothing_is_swapped(tmp_path: Path) -> None:
    swaps: list = []
    upgrader = _upgrader(tmp_path, {"score": 0.9, "served": 0.8, "fail": True}, swaps)
    assert upgrader.run_once() is UpgradeState.FAILED
    assert swaps == []
    assert upgrader.snapshot()["upgrade"]["reason"] == "build failed (RuntimeError)"
    record = json.loads((tmp_path / "failed" / "fp1" / "reason.json").read_text())
    assert "exited with code 1" in record["reason"]
    log = (tmp_path / "failed" / "fp1" / "child.log").read_text()
    assert "the fake build fails as asked" in log
    # A failure is no outcome: the next run builds again.
    retry = _upgrader(tmp_path, {"score": 0.9, "served": 0.8}, swaps)
    assert retry.run_once() is UpgradeState.SWAPPED and len(swaps) == 1


def test_old_candidates_are_pruned_but_refusals_keep_their_reason(tmp_path: Path) -> None:
    swaps: list = []
    for n in range(5):  # five refusals (e.g. five rounds of corrections)
        refused = _upgrader(tmp_path, {"score": 0.5, "served": 0.8}, swaps, fingerprint=f"r{n}")
        assert refused.run_once() is UpgradeState.REFUSED
        os.utime(tmp_path / "refused" / f"r{n}" / "reason.json", (n, n))  # r4 the newest
    for n in range(3):
        better = _upgrader(tmp_path, {"score": 0.9, "served": 0.8}, swaps, fingerprint=f"a{n}")
        assert better.run_once() is UpgradeState.SWAPPED
    with_model = sorted(p.parent.name for p in (tmp_path / "refused").glob("*/model"))
    assert with_model == ["r2", "r3", "r4"]
    assert len(list((tmp_path / "refused").glob("*/reason.json"))) == 5
    assert sorted(p.name for p in (tmp_path / "accepted").iterdir()) == ["a1", "a2"]


def test_a_swap_that_raises_keeps_the_served_model(tmp_path: Path) -> None:
    def swap(folder: Path, result: CandidateResult) -> None:
        raise OSError("cannot load")

    upgrader = ModelUpgrader(
        "intent",
        tmp_path,
        ServedModel("fast", 0.8),
        lambda: CandidateJob(TARGET, {"score": 0.9, "served": 0.8}, "fp1"),
        swap,
        poll_s=0.05,
    )
    assert upgrader.run_once() is UpgradeState.FAILED
    assert upgrader.snapshot()["tier"] == "fast"


def test_one_build_at_a_time_per_folder(tmp_path: Path) -> None:
    """Another process holds the lock: this one waits, then reuses its outcome."""
    swaps: list = []
    upgrader = _upgrader(tmp_path, {"score": 0.9, "served": 0.8}, swaps)
    tmp_path.mkdir(exist_ok=True)
    with _try_lock(tmp_path / ".lock") as mine:
        assert mine
        with _try_lock(tmp_path / ".lock") as second:  # flock is per open file
            assert not second
        thread = threading.Thread(target=upgrader.run_once)
        thread.start()
        deadline = time.monotonic() + DEADLINE_S
        while upgrader.status.state is not UpgradeState.WAITING:
            assert time.monotonic() < deadline, upgrader.status
            time.sleep(0.05)
        assert swaps == []
    thread.join(DEADLINE_S)
    assert upgrader.status.state is UpgradeState.SWAPPED


def test_close_ends_a_running_build(tmp_path: Path) -> None:
    swaps: list = []
    upgrader = _upgrader(
        tmp_path, {"score": 0.9, "served": 0.8, "steps": 1000, "sleep_s": 0.1}, swaps
    )
    upgrader.start()
    deadline = time.monotonic() + DEADLINE_S
    while not list(tmp_path.glob(".fp1.*/model/pid")):
        assert time.monotonic() < deadline, upgrader.status
        time.sleep(0.05)
    pid = int(next(tmp_path.glob(".fp1.*/model/pid")).read_text())
    while upgrader.status.fraction == 0.0:  # progress reaches the parent
        assert time.monotonic() < deadline, upgrader.status
        time.sleep(0.05)
    assert upgrader.status.state is UpgradeState.TRAINING
    assert 0.0 < upgrader.status.fraction < 1.0
    upgrader.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert swaps == []


def test_training_progress_maps_epochs_onto_a_share_of_the_build() -> None:
    seen: list[float] = []
    listener = training_progress(lambda fraction, message: seen.append(fraction), 0.0, 0.5)
    listener("full 1/2", 5, 10)
    listener("full 2/2", 10, 10)
    assert seen == [pytest.approx(0.125), pytest.approx(0.5)]


def test_labelled_examples_round_trip_and_version() -> None:
    examples = LabelledExamples.of([("where is my card", "card_arrival"), ("hi", "greeting")])
    assert LabelledExamples.of(json.loads(json.dumps(examples.rows()))) == examples
    assert examples.version() != LabelledExamples.of([("hi", "greeting")]).version()
    assert LabelledExamples().version() == ""
    with pytest.raises(ValueError):
        LabelledExamples(("a",), ())


def test_model_gauges_follow_the_healthz_block() -> None:
    state = SimpleNamespace(http_registry=CollectorRegistry())
    model = {
        "name": "intent",
        "tier": "fast",
        "validation_score": 0.8,
        "upgrade": {"state": "training", "fraction": 0.25},
    }
    update_model_gauges(state, model)
    update_model_gauges(state, {**model, "tier": "full", "validation_score": 0.9})
    text = generate_latest(state.http_registry).decode()
    assert 'keel_model_validation_score{model="intent",tier="full"} 0.9' in text
    assert 'tier="fast"' not in text  # the old tier's series is gone
    assert 'keel_model_upgrade_fraction{model="intent"} 0.25' in text
    assert 'keel_model_upgrade_state{model="intent",state="training"} 1.0' in text
    assert 'keel_model_upgrade_state{model="intent",state="swapped"} 0.0' in text


def test_model_gauges_ignore_a_model_detail_of_another_shape() -> None:
    state = SimpleNamespace(http_registry=CollectorRegistry())
    update_model_gauges(state, "loaded")  # e.g. the finance monitor's own "model" detail
    update_model_gauges(state, None)
    assert "keel_model" not in generate_latest(state.http_registry).decode()
