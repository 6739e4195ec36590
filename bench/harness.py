"""Suite registry, run context, result JSON and markdown tables.

A suite is a function ``(ctx: SuiteContext) -> SuiteResult`` registered with
``@suite(...)`` in any module of ``bench/suites``; modules are discovered, so adding a
suite never edits this file.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import pkgutil
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
RESULTS_DIR = REPO_ROOT / "bench" / "results"
# What ``python -m bench all`` writes beside the suite records: budget, total and per-suite time.
RUN_SUMMARY = "bench-all.json"

_COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda v, t: v >= t,
    "<=": lambda v, t: v <= t,
    ">": lambda v, t: v > t,
    "<": lambda v, t: v < t,
    "==": lambda v, t: v == t,
}


class BenchError(Exception):
    """A suite cannot run (missing data file, unknown suite)."""


@dataclass(frozen=True)
class Target:
    """A target a metric is compared against; ``anchor`` says where the number comes from."""

    metric: str
    comparison: str
    threshold: float
    anchor: str = ""

    def __post_init__(self) -> None:
        if self.comparison not in _COMPARATORS:
            raise ValueError(f"comparison={self.comparison!r}: use one of {sorted(_COMPARATORS)}")

    def evaluate(self, metrics: dict[str, float]) -> dict[str, Any]:
        value = metrics.get(self.metric)
        met = value is not None and _COMPARATORS[self.comparison](float(value), self.threshold)
        return {
            "metric": self.metric,
            "comparison": self.comparison,
            "threshold": self.threshold,
            "value": value,
            "met": bool(met),
            "anchor": self.anchor,
        }


@dataclass
class SuiteResult:
    """What a suite returns: headline metrics (name -> number), targets, free-form details."""

    metrics: dict[str, float]
    targets: list[Target] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)  # paths relative to the repo root


BUDGETS = ("quick", "standard", "full")


def gpu_available() -> bool:
    """Whether torch sees a CUDA GPU (False when torch is missing or broken)."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # torch missing or broken CUDA: no GPU
        return False


@dataclass
class SuiteContext:
    """Where a suite reads data from and how hard it should work.

    ``budget``:

    - ``quick``: tiny data and one epoch; a smoke run, its numbers are not results;
    - ``standard`` (default, what ``make bench`` runs): every suite on the real data, sized
      so the whole run fits in 90 minutes on 2 CPU cores; encoder fine-tuning in the
      accuracy suites runs only when a GPU is present, otherwise they report the
      frozen-encoder strategies;
    - ``full``: every strategy with its full recipe (encoder fine-tuning included), for a
      GPU machine or a long CPU run; results go to ``bench/results/full``.
    """

    data_dir: Path
    split: str = "valid"
    budget: str = "standard"
    results_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.budget not in BUDGETS:
            raise BenchError(f"budget={self.budget!r}: use one of {', '.join(BUDGETS)}")
        if self.results_dir is None:
            self.results_dir = RESULTS_DIR / "full" if self.budget == "full" else RESULTS_DIR

    @property
    def quick(self) -> bool:
        return self.budget == "quick"

    @property
    def fine_tune(self) -> bool:
        """Whether suites fine-tune encoders: the full budget, or standard on a GPU."""
        return self.budget == "full" or (self.budget == "standard" and gpu_available())

    @property
    def is_test(self) -> bool:
        return self.split == "test"

    def data_file(self, dataset: str, *, valid: str, test: str) -> Path:
        """Path of the evaluation file of ``dataset`` for the chosen split.

        ``--split test`` reads the held-back file named like the train/valid ones,
        placed in the same folder for independent evaluation.
        """
        name = test if self.is_test else valid
        path = self.data_dir / dataset / name
        if not path.is_file():
            raise BenchError(
                f"{path} not found (split={self.split!r}, data dir={self.data_dir}); "
                "pass --data-dir to point at the data sets"
            )
        return path

    def train_file(self, dataset: str, name: str) -> Path:
        path = self.data_dir / dataset / name
        if not path.is_file():
            raise BenchError(f"{path} not found; pass --data-dir to point at the data sets")
        return path

    def log(self, message: str) -> None:
        print(f"[bench] {message}", flush=True)


SuiteFn = Callable[[SuiteContext], SuiteResult]


@dataclass(frozen=True)
class Suite:
    name: str
    area: str
    description: str
    fn: SuiteFn


_SUITES: dict[str, Suite] = {}


def suite(name: str, *, area: str, description: str) -> Callable[[SuiteFn], SuiteFn]:
    """Register a benchmark suite under ``name`` (stable: evaluators read it)."""

    def register(fn: SuiteFn) -> SuiteFn:
        if name in _SUITES:
            raise BenchError(f"suite {name!r} registered twice")
        _SUITES[name] = Suite(name=name, area=area, description=description, fn=fn)
        return fn

    return register


def discover() -> dict[str, Suite]:
    """Import every module of ``bench.suites`` so their ``@suite`` decorators run."""
    import bench.suites as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"bench.suites.{info.name}")
    return dict(sorted(_SUITES.items()))


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    gpu = None
    if gpu_available():
        import torch

        gpu = torch.cuda.get_device_name(0)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "gpu": gpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def run_suite(name: str, ctx: SuiteContext) -> dict[str, Any]:
    """Run one suite, write ``results/NAME.json`` and ``results/NAME.md``, return the record."""
    suites = discover()
    if name not in suites:
        raise BenchError(f"unknown suite {name!r}; known: {', '.join(suites)}")
    entry = suites[name]
    started = time.perf_counter()
    result = entry.fn(ctx)
    duration = time.perf_counter() - started
    record = {
        "suite": name,
        "area": entry.area,
        "description": entry.description,
        "metrics": {k: _plain(v) for k, v in result.metrics.items()},
        "targets": [t.evaluate(result.metrics) for t in result.targets],
        "split": ctx.split,
        "quick": ctx.quick,
        "budget": ctx.budget,
        "data_dir": str(ctx.data_dir),
        "machine": machine_info(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "duration_s": round(duration, 1),
        "details": result.details,
        "plots": result.plots,
    }
    results_dir = ctx.results_dir or RESULTS_DIR
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{name}.json").write_text(json.dumps(record, indent=2, default=_plain) + "\n")
    (results_dir / f"{name}.md").write_text(markdown_table(record))
    return record


def _plain(value: Any) -> Any:
    """numpy scalars -> Python numbers, rounded for readability."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return round(value, 6)
    return value


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def record_budget(record: dict[str, Any]) -> str:
    """The budget a record ran with (records written before budgets existed: quick flag)."""
    return str(record.get("budget") or ("quick" if record.get("quick") else "standard"))


def markdown_table(record: dict[str, Any]) -> str:
    """One suite's result as a markdown table: metric, value, target, met, anchor."""
    targets = {t["metric"]: t for t in record["targets"]}
    machine = record["machine"]
    lines = [
        f"### `{record['suite']}` — {record['description']}",
        "",
        f"split `{record['split']}`, budget `{record_budget(record)}`; "
        f"{machine['cpu']}, {machine['cores']} cores"
        f"{', GPU ' + machine['gpu'] if machine.get('gpu') else ''}; {record['date']}; "
        f"{record['duration_s']} s",
        "",
        "| metric | measured | target | met | anchor |",
        "| --- | --- | --- | --- | --- |",
    ]
    for metric, value in record["metrics"].items():
        target = targets.get(metric)
        if target:
            goal = f"{target['comparison']} {_fmt(target['threshold'])}"
            met = "yes" if target["met"] else "**no**"
            anchor = target["anchor"]
        else:
            goal, met, anchor = "", "", ""
        lines.append(f"| {metric} | {_fmt(value)} | {goal} | {met} | {anchor} |")
    return "\n".join(lines) + "\n"
