"""Suite registry, run context, result JSON and markdown tables.

A suite is a function ``(ctx: SuiteContext) -> SuiteResult`` registered with
``@suite(...)`` in any module of ``bench/suites``; modules are discovered, so adding a
suite never edits this file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import json
import os
import pkgutil
import platform
import random
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
RESULTS_DIR = REPO_ROOT / "bench" / "results"
# Smoke runs (``--budget quick``) write here (git-ignored ``var/``), never over real results.
QUICK_RESULTS_DIR = REPO_ROOT / "var" / "bench" / "results-quick"
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
        # A target must come from somewhere outside the run it judges (an issue, a
        # published result), never from the number it is then compared with.
        if not self.anchor.strip():
            raise ValueError(
                f"Target({self.metric!r}): anchor is empty; name its source "
                "(an issue number or a published result)"
            )

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
    """What a suite returns: headline metrics (name -> number), free-form details, plots.

    ``recipe`` is the exact recipe the figures come from (strategy, epochs, max length,
    variant, sizes, thread settings, ...), recorded in the JSON. Targets are declared in
    ``@suite(targets=...)``; ``targets`` here is only for a suite that still returns them.
    """

    metrics: dict[str, float]
    targets: list[Target] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)  # paths relative to the repo root
    recipe: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------- timing
@dataclass(frozen=True)
class Timings:
    """Wall times (seconds) of repeated runs of one workload, after warm-up."""

    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("Timings needs at least one value")

    @property
    def median(self) -> float:
        return float(statistics.median(self.values))

    @property
    def min(self) -> float:
        return float(min(self.values))

    @property
    def max(self) -> float:
        return float(max(self.values))

    def as_dict(self, digits: int = 6) -> dict[str, Any]:
        """``{"median_s", "min_s", "max_s", "runs_s"}`` for the JSON."""
        return {
            "median_s": round(self.median, digits),
            "min_s": round(self.min, digits),
            "max_s": round(self.max, digits),
            "runs_s": [round(v, digits) for v in self.values],
        }

    def rate(self, items: float) -> dict[str, Any]:
        """Items per second of each run: ``{"median", "min", "max", "runs"}``.

        The median rate is the median of the per-run rates (the slowest run gives the min).
        """
        rates = [items / max(v, 1e-12) for v in self.values]
        return {
            "median": float(statistics.median(rates)),
            "min": float(min(rates)),
            "max": float(max(rates)),
            "runs": [round(r, 3) for r in rates],
        }


def timed_runs(fn: Callable[[], Any], runs: int = 5, warmup: int = 1) -> Timings:
    """Call ``fn`` ``warmup`` times untimed, then ``runs`` times timed (wall clock).

    Every speed figure of the bench is the median of at least 5 such runs, with min and
    max in the JSON (a 2-core machine shared with other work is noisy: 30% run to run).

    Args:
        fn: the workload, called with no arguments.
        runs: timed calls (>= 1).
        warmup: untimed calls first (caches, lazy initialisation, thread pools).

    Returns:
        The runs' wall times.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs={runs}, warmup={warmup}: need runs >= 1 and warmup >= 0")
    for _ in range(warmup):
        fn()
    values = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        values.append(time.perf_counter() - started)
    return Timings(tuple(values))


@dataclass(frozen=True)
class PairedRatio:
    """How many times faster A is than B, run pair by pair (A B A B ...)."""

    ratios: tuple[float, ...]
    a: Timings
    b: Timings

    @property
    def median(self) -> float:
        return float(statistics.median(self.ratios))

    @property
    def min(self) -> float:
        return float(min(self.ratios))

    @property
    def max(self) -> float:
        return float(max(self.ratios))

    def as_dict(self) -> dict[str, Any]:
        return {
            "median": round(self.median, 4),
            "min": round(self.min, 4),
            "max": round(self.max, 4),
            "pair_ratios": [round(r, 4) for r in self.ratios],
            "a": self.a.as_dict(),
            "b": self.b.as_dict(),
        }


def interleaved_runs(
    fns: dict[str, Callable[[], Any]],
    runs: int = 5,
    warmup: int = 1,
    shuffle_seed: int | None = None,
) -> dict[str, Timings]:
    """Time several workloads round by round (A B C, A B C, ...), ``runs`` rounds.

    Interleaving gives every workload the same share of the machine's load changes, so
    per-round ratios (see ``round_ratios``) compare like with like.

    Args:
        fns: name -> workload, each called with no arguments.
        runs: timed rounds (>= 1).
        warmup: untimed rounds first.
        shuffle_seed: when set, each timed round runs the workloads in a new order
            drawn from this seed (B C A, C A B, ...), so no workload always runs
            first or last in its round (after a slow neighbour, in a cache that one
            filled, ...).

    Returns:
        name -> the wall times of its runs, in round order.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs={runs}, warmup={warmup}: need runs >= 1 and warmup >= 0")
    if not fns:
        raise ValueError("interleaved_runs needs at least one workload")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    shuffler = random.Random(shuffle_seed) if shuffle_seed is not None else None
    for _ in range(runs):
        if shuffler is not None:
            shuffler.shuffle(names)
        for name in names:
            started = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - started)
    return {name: Timings(tuple(values)) for name, values in times.items()}


def round_ratios(a: Timings, b: Timings) -> tuple[float, ...]:
    """Per-round speed ratios of A over B (time of B / time of A), for equal work."""
    return tuple(tb / max(ta, 1e-12) for ta, tb in zip(a.values, b.values, strict=True))


def paired_ratio(
    a: Callable[[], Any], b: Callable[[], Any], runs: int = 5, warmup: int = 1
) -> PairedRatio:
    """Speed ratio of ``a`` over ``b`` (time of B / time of A), taken per pair of runs.

    Runs alternate A B A B ... so both sides see the same machine load; each pair gives
    one ratio and the figure is their median (min and max beside it). With equal work
    on both sides, a ratio above 1 means A is faster.

    Args:
        a: the workload whose speed-up is reported.
        b: the baseline workload.
        runs: timed pairs (>= 1).
        warmup: untimed calls of each side first.
    """
    timings = interleaved_runs({"a": a, "b": b}, runs=runs, warmup=warmup)
    return PairedRatio(round_ratios(timings["a"], timings["b"]), timings["a"], timings["b"])


def ratio_summary(ratios: Sequence[float]) -> dict[str, Any]:
    """Median, min, max of per-pair ratios measured by a suite itself (e.g. rates of
    interleaved windows)."""
    if not ratios:
        raise ValueError("ratio_summary needs at least one ratio")
    return {
        "median": float(statistics.median(ratios)),
        "min": float(min(ratios)),
        "max": float(max(ratios)),
        "pair_ratios": [round(float(r), 4) for r in ratios],
    }


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

    - ``quick``: tiny data (a few rows per label) and one epoch of every recipe, the
      production one included; a smoke run, its numbers are not results (written to
      ``var/bench/results-quick``);
    - ``standard`` (default, what ``make bench`` runs): every suite on the real data; the
      accuracy suites run the apps' production recipe on any machine, GPU or CPU alone:
      ``keel.training`` ``full`` fine-tuning (LP-FT, keel's default epochs and learning
      rate, as ``prepare --budget full`` trains) and ``keel.compression.compress`` to the
      ONNX int8 variant within 1 accuracy point of its fp32 parent (on validation). The
      served (compressed) model's score is the headline metric, the parent's is beside it,
      with the training and compression seconds. Several hours on 2 CPU cores;
    - ``full``: ``standard`` plus the research strategies that only a GPU makes
      affordable (``banking77-fewshot``'s contrastive ``fewshot`` strategy and its seeds
      14-15); results go to ``bench/results/full``.

    The Chinese suites keep their own rule (``fine_tune``): their encoder fine-tuning
    runs under ``full``, or ``standard`` on a GPU.
    """

    data_dir: Path
    split: str = "valid"
    budget: str = "standard"
    results_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.budget not in BUDGETS:
            raise BenchError(f"budget={self.budget!r}: use one of {', '.join(BUDGETS)}")
        if self.results_dir is None:
            self.results_dir = {"full": RESULTS_DIR / "full", "quick": QUICK_RESULTS_DIR}.get(
                self.budget, RESULTS_DIR
            )

    @property
    def quick(self) -> bool:
        return self.budget == "quick"

    @property
    def fine_tune(self) -> bool:
        """Whether the Chinese suites (``bench/suites/chinese.py``) add their encoder
        fine-tuning: the full budget, or standard on a GPU. The English accuracy suites
        run the production recipe (fine-tuning included) under every budget."""
        return self.budget == "full" or (self.budget == "standard" and gpu_available())

    @property
    def research(self) -> bool:
        """Whether suites add their GPU-sized research strategies: the ``full`` budget."""
        return self.budget == "full"

    @property
    def is_test(self) -> bool:
        return self.split == "test"

    @property
    def runs(self) -> int:
        """Timed runs per speed figure (medians of at least 5, every budget)."""
        return 5

    def valid_file(self, dataset: str, valid: str) -> Path:
        """The validation file of ``dataset``: where every choice (strategy, variant,
        threshold) is made, whatever split is reported."""
        path = self.data_dir / dataset / valid
        if not path.is_file():
            raise BenchError(f"{path} not found; pass --data-dir to point at the data sets")
        return path

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
    targets: tuple[Target, ...] = ()


_SUITES: dict[str, Suite] = {}


def suite(
    name: str, *, area: str, description: str, targets: Sequence[Target] = ()
) -> Callable[[SuiteFn], SuiteFn]:
    """Register a benchmark suite under ``name`` (stable: evaluators read it).

    ``targets`` are declared here, before any run, each with its ``anchor`` (the issue
    or published result it comes from), so no target can be set from a measured number.
    """

    def register(fn: SuiteFn) -> SuiteFn:
        if name in _SUITES:
            raise BenchError(f"suite {name!r} registered twice")
        _SUITES[name] = Suite(
            name=name, area=area, description=description, fn=fn, targets=tuple(targets)
        )
        return fn

    return register


def discover() -> dict[str, Suite]:
    """Import every module of ``bench.suites`` so their ``@suite`` decorators run."""
    import bench.suites as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"bench.suites.{info.name}")
    return dict(sorted(_SUITES.items()))


def cpu_flags(cpuinfo: str) -> list[str]:
    """The SIMD extensions that int8 speed depends on, from ``/proc/cpuinfo`` text.

    Returns a sorted subset of ``avx2``, ``avx512`` (any ``avx512*`` flag), ``vnni``
    (``avx512_vnni`` or ``avx_vnni``) and ``amx`` (any ``amx_*`` flag).
    """
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
            break
    found = set()
    if "avx2" in flags:
        found.add("avx2")
    if any(f.startswith("avx512") for f in flags):
        found.add("avx512")
    if flags & {"avx512_vnni", "avx_vnni"}:
        found.add("vnni")
    if any(f.startswith("amx_") for f in flags):
        found.add("amx")
    return sorted(found)


def _package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def git_state(repo: Path = REPO_ROOT) -> dict[str, Any]:
    """``{"commit", "dirty"}`` of the checkout the bench runs from (None when not a repo)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def thread_settings() -> dict[str, Any]:
    """Thread settings in force: torch's intra/inter-op threads and the env variables."""
    settings: dict[str, Any] = {
        name: os.environ.get(name)
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "KEEL_BENCH_THREADS")
    }
    try:
        import torch

        settings["torch_num_threads"] = torch.get_num_threads()
        settings["torch_num_interop_threads"] = torch.get_num_interop_threads()
    except Exception:  # torch missing or broken: the other facts still count
        settings["torch_num_threads"] = None
    return settings


def machine_info() -> dict[str, Any]:
    """CPU model, cores, SIMD flags, memory, GPU, library versions: the JSON's ``machine``."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = ""
    with contextlib.suppress(OSError):  # not Linux: model and flags stay unknown
        cpuinfo = Path("/proc/cpuinfo").read_text()
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
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
        "simd": cpu_flags(cpuinfo),
        "memory_gb": mem_gb,
        "gpu": gpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            name: _package_version(name)
            for name in ("onnxruntime", "torch", "transformers", "kafka-python", "confluent-kafka")
        },
    }


def run_suite(name: str, ctx: SuiteContext) -> dict[str, Any]:
    """Run one suite, write ``results/NAME.json`` and ``results/NAME.md``, return the record."""
    suites = discover()
    if name not in suites:
        raise BenchError(f"unknown suite {name!r}; known: {', '.join(suites)}")
    entry = suites[name]
    load_at_start = load_average()
    started = time.perf_counter()
    result = entry.fn(ctx)
    duration = time.perf_counter() - started
    targets = list(entry.targets) + [t for t in result.targets if t not in entry.targets]
    record = {
        "suite": name,
        "area": entry.area,
        "description": entry.description,
        "metrics": {k: _plain(v) for k, v in result.metrics.items()},
        "targets": [t.evaluate(result.metrics) for t in targets],
        "split": ctx.split,
        "quick": ctx.quick,
        "budget": ctx.budget,
        "data_dir": str(ctx.data_dir),
        "machine": machine_info(),
        "threads": thread_settings(),
        "load_average": {"start": load_at_start, "end": load_average()},
        "git": git_state(),
        "recipe": result.recipe,
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


def machine_line(record: dict[str, Any]) -> str:
    """The conditions of a record in one line: CPU, cores, SIMD flags, GPU, load, commit.

    Records written before these facts were kept show what they have.
    """
    machine = record["machine"]
    parts = [f"{machine['cpu']}, {machine['cores']} cores"]
    if "simd" in machine:
        parts.append("SIMD " + ("/".join(machine["simd"]) or "none of AVX2/AVX-512/VNNI/AMX"))
    if machine.get("gpu"):
        parts.append(f"GPU {machine['gpu']}")
    load = record.get("load_average") or {}
    if load.get("start") and load.get("end"):
        parts.append(f"load {load['start'][0]:g} → {load['end'][0]:g} (1 min)")
    git = record.get("git") or {}
    if git.get("commit"):
        parts.append(f"commit `{git['commit'][:10]}`{' (dirty tree)' if git.get('dirty') else ''}")
    return "; ".join(parts)


def markdown_table(record: dict[str, Any]) -> str:
    """One suite's result as a markdown table: metric, value, target, met, anchor."""
    targets = {t["metric"]: t for t in record["targets"]}
    lines = [
        f"### `{record['suite']}` — {record['description']}",
        "",
        f"split `{record['split']}`, budget `{record_budget(record)}`; "
        f"{machine_line(record)}; {record['date']}; {record['duration_s']} s",
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
