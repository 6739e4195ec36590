"""``keel.models.prepare_artifact``: build once per fingerprint, publish atomically."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from pathlib import Path

import pytest

from keel.models import fingerprint_hash, prepare_artifact, published_artifact


def _writer(calls: list[str], text: str = "model"):  # type: ignore[no-untyped-def]
    def build(folder: Path) -> None:
        assert folder.is_dir() and not any(folder.iterdir())
        calls.append(text)
        (folder / "weights.txt").write_text(text, encoding="utf-8")

    return build


def test_second_call_with_the_same_fingerprint_does_not_rebuild(tmp_path: Path) -> None:
    calls: list[str] = []
    first = prepare_artifact(tmp_path / "m", {"data": "abc", "epochs": 2}, _writer(calls))
    # Same content, other key order: same fingerprint.
    second = prepare_artifact(tmp_path / "m", {"epochs": 2, "data": "abc"}, _writer(calls))
    assert calls == ["model"]
    assert first == second == published_artifact(tmp_path / "m")
    assert (first / "weights.txt").read_text(encoding="utf-8") == "model"
    pointer = json.loads((tmp_path / "m" / "current").read_text(encoding="utf-8"))
    assert pointer["version"] == first.name == fingerprint_hash({"data": "abc", "epochs": 2})


def test_changed_fingerprint_rebuilds_and_removes_the_old_version(tmp_path: Path) -> None:
    calls: list[str] = []
    old = prepare_artifact(tmp_path, "v1", _writer(calls, "one"))
    new = prepare_artifact(tmp_path, "v2", _writer(calls, "two"))
    assert calls == ["one", "two"]
    assert new != old and not old.exists()
    assert published_artifact(tmp_path) == new
    assert (new / "weights.txt").read_text(encoding="utf-8") == "two"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [new.name]


def test_force_rebuilds_the_same_version(tmp_path: Path) -> None:
    calls: list[str] = []
    prepare_artifact(tmp_path, "v1", _writer(calls, "one"))
    folder = prepare_artifact(tmp_path, "v1", _writer(calls, "again"), force=True)
    assert calls == ["one", "again"]
    assert (folder / "weights.txt").read_text(encoding="utf-8") == "again"


def test_a_crash_mid_build_leaves_the_old_version_published(tmp_path: Path) -> None:
    old = prepare_artifact(tmp_path, "v1", _writer([], "one"))

    def crashing(folder: Path) -> None:
        (folder / "weights.txt").write_text("half", encoding="utf-8")
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        prepare_artifact(tmp_path, "v2", crashing)
    assert published_artifact(tmp_path) == old
    assert (old / "weights.txt").read_text(encoding="utf-8") == "one"
    # No half-built folder is left behind, and the next try builds the new version.
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == [old.name]
    calls: list[str] = []
    new = prepare_artifact(tmp_path, "v2", _writer(calls, "two"))
    assert calls == ["two"] and published_artifact(tmp_path) == new


def test_a_folder_without_the_completion_marker_is_rebuilt(tmp_path: Path) -> None:
    # What a build killed with SIGKILL after a rename-less copy would leave: the version's
    # folder without its marker must not count as prepared.
    (tmp_path / fingerprint_hash("v1")).mkdir()
    calls: list[str] = []
    folder = prepare_artifact(tmp_path, "v1", _writer(calls))
    assert calls == ["model"] and (folder / "weights.txt").is_file()


def test_nothing_published_reads_as_none(tmp_path: Path) -> None:
    assert published_artifact(tmp_path / "absent") is None
    (tmp_path / "current").write_text("not json", encoding="utf-8")
    assert published_artifact(tmp_path) is None


def test_two_concurrent_preparers_in_threads_build_once(tmp_path: Path) -> None:
    calls: list[str] = []
    gate = threading.Barrier(2)
    results: list[Path] = []

    def slow_build(folder: Path) -> None:
        calls.append("built")
        time.sleep(0.5)  # the other thread reaches the lock meanwhile
        (folder / "weights.txt").write_text("model", encoding="utf-8")

    def worker() -> None:
        gate.wait()
        results.append(prepare_artifact(tmp_path, "same", slow_build))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert calls == ["built"]
    assert len(results) == 2 and results[0] == results[1] == published_artifact(tmp_path)


def _process_build(folder: Path) -> None:
    log = folder.parents[2] / "builds.log"
    with open(log, "a", encoding="utf-8") as handle:
        handle.write("built\n")
    time.sleep(0.5)
    (folder / "weights.txt").write_text("model", encoding="utf-8")


def _process_worker(root: str, start: float) -> None:
    # Start together, so both reach the lock while the first one is building.
    time.sleep(max(0.0, start - time.time()))
    prepare_artifact(root, {"fingerprint": "same"}, _process_build)


def test_two_concurrent_preparer_processes_build_once(tmp_path: Path) -> None:
    root = tmp_path / "models" / "intent"
    context = multiprocessing.get_context("spawn")
    start = time.time() + 3.0
    processes = [context.Process(target=_process_worker, args=(str(root), start)) for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0]
    assert (tmp_path / "builds.log").read_text(encoding="utf-8").splitlines() == ["built"]
    published = published_artifact(root)
    assert published is not None and (published / "weights.txt").is_file()
