"""The benchmark harness: budgets, where results go, the run summary and the report."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bench import harness
from bench.harness import RUN_SUMMARY, BenchError, SuiteContext, SuiteResult, Target
from bench.report import write_report


def test_budget_is_validated_and_full_results_go_to_their_own_folder(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="budget='huge'"):
        SuiteContext(data_dir=tmp_path, budget="huge")
    standard = SuiteContext(data_dir=tmp_path)
    full = SuiteContext(data_dir=tmp_path, budget="full")
    quick = SuiteContext(data_dir=tmp_path, budget="quick")
    assert standard.results_dir == harness.RESULTS_DIR and not standard.quick
    assert full.results_dir == harness.RESULTS_DIR / "full"
    assert quick.quick
    # Smoke runs never overwrite the published results.
    assert quick.results_dir == harness.QUICK_RESULTS_DIR
    assert not quick.results_dir.is_relative_to(harness.RESULTS_DIR)
    # Only the full budget adds the GPU-sized research strategies.
    assert full.research and not standard.research and not quick.research
    # The Chinese suites keep their rule: fine-tuning under full, or standard on a GPU.
    assert full.fine_tune and not quick.fine_tune
    assert standard.fine_tune == harness.gpu_available()


def test_every_budget_trains_the_production_recipe_quick_for_one_epoch(tmp_path: Path) -> None:
    from bench.suites.core_training import SERVED_MAX_DROP_POINTS, production_config
    from keel.training import ClassifierConfig

    # The apps' ``full`` budget: keel's ``full`` strategy with its default epochs and
    # learning rate (customer_service.engine.train_intent_classifier), on a CPU as well.
    app_full = ClassifierConfig(strategy="full")
    for budget in ("standard", "full"):
        config = production_config(SuiteContext(data_dir=tmp_path, budget=budget))
        assert config.strategy == "full"
        assert (config.epochs, config.learning_rate) == (app_full.epochs, app_full.learning_rate)
        assert config.head_learning_rate == app_full.head_learning_rate
        assert config.early_stopping_patience == app_full.early_stopping_patience
    quick = production_config(SuiteContext(data_dir=tmp_path, budget="quick"), seed=14)
    assert quick.strategy == "full" and quick.epochs == 1 and quick.seed == 14
    # Issue 13: the served model stays within 1 point of its uncompressed parent.
    assert SERVED_MAX_DROP_POINTS == 1.0


def _toy_suite(ctx: SuiteContext) -> SuiteResult:
    value = 0.5 if ctx.budget == "full" else 0.25
    return SuiteResult(
        metrics={"score": value},
        targets=[Target("score", ">=", 0.4, "toy")],
        recipe={"strategy": "toy"},
    )


def test_run_suite_and_report_show_budgets_and_the_run_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        harness._SUITES, "toy", harness.Suite("toy", "testing", "a toy suite", _toy_suite)
    )
    results = tmp_path / "results"
    standard = harness.run_suite("toy", SuiteContext(data_dir=tmp_path, results_dir=results))
    full = harness.run_suite(
        "toy", SuiteContext(data_dir=tmp_path, budget="full", results_dir=results / "full")
    )
    assert standard["budget"] == "standard" and standard["targets"][0]["met"] is False
    assert standard["targets"][0]["anchor"] == "toy"
    assert standard["recipe"] == {"strategy": "toy"}
    assert set(standard["load_average"]) == {"start", "end"}
    assert {"commit", "dirty"} <= set(standard["git"])
    assert {"simd", "versions"} <= set(standard["machine"])
    assert "torch_num_threads" in standard["threads"]
    assert full["budget"] == "full" and full["targets"][0]["met"] is True
    assert json.loads((results / "toy.json").read_text())["metrics"] == {"score": 0.25}
    summary = {
        "command": "python -m bench all",
        "budget": "standard",
        "split": "valid",
        "started": "2026-11-28T00:00:00+00:00",
        "total_s": 600.0,
        "machine": standard["machine"],
        "suites": {"toy": 1.0, "broken": "failed: no data"},
    }
    (results / RUN_SUMMARY).write_text(json.dumps(summary))
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- bench-summary:start -->\nold\n<!-- bench-summary:end -->\nend\n")

    out = write_report(results, tmp_path / "benchmarks.md", readme)

    text = out.read_text()
    assert "10.0 min" in text and "failed: broken" in text
    assert "## Full-budget runs (`--budget full`)" in text
    assert text.count("### `toy`") == 2  # the standard record and the full one
    table = readme.read_text()
    assert "old" not in table and table.startswith("intro\n") and table.endswith("end\n")
    rows = [line for line in table.splitlines() if line.startswith("| `toy`")]
    assert [row.split(" | ")[6] for row in rows] == ["standard", "full"]
    assert [row.split(" | ")[4] for row in rows] == ["**no**", "yes"]


def test_the_report_judges_old_records_against_the_targets_declared_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record run when its suite had a self-set target and a lower bar is shown against
    today's declared targets only."""
    declared = (Target("accuracy", ">=", 0.97, "issue 13"),)
    monkeypatch.setitem(
        harness._SUITES, "toy", harness.Suite("toy", "testing", "toy", _toy_suite, declared)
    )
    results = tmp_path / "results"
    results.mkdir()
    old = {
        "suite": "toy",
        "area": "testing",
        "description": "toy",
        "metrics": {"accuracy": 0.96, "head.accuracy": 0.917},
        "targets": [
            Target("accuracy", ">=", 0.95, "old issue").evaluate({"accuracy": 0.96}),
            Target("head.accuracy", ">=", 0.917, "self-set").evaluate({"head.accuracy": 0.917}),
        ],
        "split": "valid",
        "quick": False,
        "budget": "standard",
        "machine": {"cpu": "a test CPU", "cores": 2},
        "date": "2026-11-28T00:00:00+00:00",
        "duration_s": 1.0,
    }
    (results / "toy.json").write_text(json.dumps(old))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- bench-summary:start -->\n<!-- bench-summary:end -->\n")
    write_report(results, tmp_path / "benchmarks.md", readme)
    rows = [line for line in readme.read_text().splitlines() if line.startswith("| `toy`")]
    assert rows == [
        "| `toy` | accuracy | 0.96 | >= 0.97 | **no** | valid | standard | 2 cores | 2026-11-28 |"
    ]


# ------------------------------------------------------------------ timing helpers
class _Clock:
    """A fake ``time.perf_counter`` that workloads advance by known amounts."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _timed_workloads(
    monkeypatch: pytest.MonkeyPatch, order: list[str]
) -> Callable[[str, float], Callable[[], None]]:
    """A maker of fake workloads: each appends its name to ``order`` and advances a fake
    ``perf_counter`` (patched into the harness) by its seconds."""
    clock = _Clock()
    monkeypatch.setattr(harness.time, "perf_counter", clock)

    def named(name: str, seconds: float) -> Callable[[], None]:
        def run() -> None:
            order.append(name)
            clock.now += seconds

        return run

    return named


def test_timed_runs_reports_median_min_max_of_the_timed_runs_after_warmup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = _Clock()
    monkeypatch.setattr(harness.time, "perf_counter", clock)
    durations = iter([9.0, 3.0, 1.0, 2.0, 5.0, 4.0])  # the first call is the warm-up
    calls = []

    def workload() -> None:
        calls.append(1)
        clock.now += next(durations)

    timings = harness.timed_runs(workload, runs=5, warmup=1)

    assert len(calls) == 6
    assert timings.values == (3.0, 1.0, 2.0, 5.0, 4.0)  # the 9 s warm-up is not counted
    assert (timings.median, timings.min, timings.max) == (3.0, 1.0, 5.0)
    assert timings.as_dict() == {
        "median_s": 3.0,
        "min_s": 1.0,
        "max_s": 5.0,
        "runs_s": [3.0, 1.0, 2.0, 5.0, 4.0],
    }
    rate = timings.rate(10)  # 10 items per run
    assert rate["median"] == pytest.approx(10 / 3) and rate["min"] == 2.0 and rate["max"] == 10.0


def test_timed_runs_rejects_no_runs() -> None:
    with pytest.raises(ValueError, match="runs=0"):
        harness.timed_runs(lambda: None, runs=0)


def test_paired_ratio_alternates_a_and_b_and_takes_the_median_of_pair_ratios(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = _Clock()
    monkeypatch.setattr(harness.time, "perf_counter", clock)
    order: list[str] = []
    a_times = iter([1.0, 1.0, 2.0, 1.0, 1.0, 4.0])  # warm-up, then 5 timed
    b_times = iter([3.0, 3.0, 3.0, 5.0, 2.0, 4.0])

    def a() -> None:
        order.append("a")
        clock.now += next(a_times)

    def b() -> None:
        order.append("b")
        clock.now += next(b_times)

    result = harness.paired_ratio(a, b, runs=5, warmup=1)

    assert order == ["a", "b"] * 6  # A B A B ..., warm-up pair first
    # Per-pair ratios time(B) / time(A): 3/1, 3/2, 5/1, 2/1, 4/4.
    assert result.ratios == (3.0, 1.5, 5.0, 2.0, 1.0)
    assert (result.median, result.min, result.max) == (2.0, 1.0, 5.0)
    # Not the ratio of the medians (3 / 1 = 3): each pair shares the machine's load.
    assert result.a.median == 1.0 and result.b.median == 3.0
    shown = result.as_dict()
    assert shown["pair_ratios"] == [3.0, 1.5, 5.0, 2.0, 1.0] and shown["median"] == 2.0


def test_interleaved_runs_time_every_workload_round_by_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order: list[str] = []
    named = _timed_workloads(monkeypatch, order)
    timings = harness.interleaved_runs(
        {"x": named("x", 1.0), "y": named("y", 2.0), "z": named("z", 4.0)}, runs=2, warmup=0
    )

    assert order == ["x", "y", "z", "x", "y", "z"]
    assert timings["z"].values == (4.0, 4.0)
    assert harness.round_ratios(timings["x"], timings["z"]) == (4.0, 4.0)
    assert harness.ratio_summary([1.0, 3.0, 2.0])["median"] == 2.0


def test_interleaved_runs_shuffle_the_order_of_each_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order: list[str] = []
    named = _timed_workloads(monkeypatch, order)
    fns = {n: named(n, s) for n, s in (("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0))}
    timings = harness.interleaved_runs(fns, runs=12, warmup=0, shuffle_seed=7)

    rounds = [order[i : i + 4] for i in range(0, len(order), 4)]
    assert all(sorted(r) == ["a", "b", "c", "d"] for r in rounds)  # each once per round
    assert len({tuple(r) for r in rounds}) > 1  # the order changes between rounds
    assert {r[-1] for r in rounds} != {"d"}  # the last workload is not always last
    # Every workload's times stay its own, whatever its place in the round.
    assert timings["c"].values == (3.0,) * 12 and timings["a"].values == (1.0,) * 12
    order.clear()
    harness.interleaved_runs(fns, runs=12, warmup=0, shuffle_seed=7)
    assert [order[i : i + 4] for i in range(0, len(order), 4)] == rounds  # seeded


# --------------------------------------------------------------- machine facts
def test_cpu_flags_name_the_simd_extensions_int8_speed_depends_on() -> None:
    epyc_avx2 = "model name\t: AMD EPYC\nflags\t\t: fpu sse4_2 avx avx2 fma\n"
    sapphire = (
        "flags\t\t: avx2 avx512f avx512bw avx512_vnni amx_tile amx_int8 avx_vnni\n"
        "flags\t\t: (a second core, ignored)\n"
    )
    assert harness.cpu_flags(epyc_avx2) == ["avx2"]
    assert harness.cpu_flags(sapphire) == ["amx", "avx2", "avx512", "vnni"]
    assert harness.cpu_flags("flags\t: sse2 avx_vnni\n") == ["vnni"]
    assert harness.cpu_flags("") == []


def test_machine_line_shows_simd_load_and_commit_and_tolerates_old_records() -> None:
    old = {"machine": {"cpu": "AMD EPYC", "cores": 2, "gpu": None}}
    assert harness.machine_line(old) == "AMD EPYC, 2 cores"
    new = {
        "machine": {"cpu": "AMD EPYC", "cores": 2, "gpu": None, "simd": ["avx2"]},
        "load_average": {"start": [1.5, 1.0, 0.5], "end": [2.25, 1.0, 0.5]},
        "git": {"commit": "0123456789abcdef", "dirty": True},
    }
    line = harness.machine_line(new)
    assert "SIMD avx2" in line and "load 1.5 → 2.25" in line
    assert "`0123456789`" in line and "dirty" in line


# -------------------------------------------------------------------- targets
def test_a_target_without_an_anchor_is_refused() -> None:
    with pytest.raises(ValueError, match="anchor is empty"):
        Target("accuracy", ">=", 0.9)
    with pytest.raises(ValueError, match="anchor is empty"):
        Target("accuracy", ">=", 0.9, anchor="  ")


def test_every_registered_suite_declares_its_targets_with_an_anchor() -> None:
    suites = harness.discover()
    assert "finance-scaleout" in suites and "trainer-throughput" in suites
    declared = {name: entry.targets for name, entry in suites.items()}
    assert declared["finance-throughput"], "finance-throughput declares its targets up front"
    for name, targets in declared.items():
        for target in targets:
            assert target.anchor.strip(), f"{name}: {target.metric} has no anchor"
            assert isinstance(target, Target)
    # The self-set target (the head's own validation score) is gone.
    assert all(t.metric != "head.accuracy" for t in declared["banking77"])
    metrics = {t.metric for t in declared["finance-throughput"]}
    assert {"msgs_per_s", "speedup_vs_naive", "speedup_vs_batched"} <= metrics
