"""The benchmark harness: budgets, where results go, the run summary and the report."""

from __future__ import annotations

import json
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
    assert full.results_dir == harness.RESULTS_DIR / "full" and full.fine_tune
    assert quick.quick and not quick.fine_tune
    assert standard.fine_tune == harness.gpu_available()


def _toy_suite(ctx: SuiteContext) -> SuiteResult:
    value = 0.5 if ctx.budget == "full" else 0.25
    return SuiteResult(metrics={"score": value}, targets=[Target("score", ">=", 0.4, "toy")])


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
