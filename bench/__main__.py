"""Command line of the benchmark harness."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import traceback
from pathlib import Path

from bench.harness import (
    BUDGETS,
    DEFAULT_DATA_DIR,
    RUN_SUMMARY,
    BenchError,
    SuiteContext,
    discover,
    git_state,
    load_average,
    machine_info,
    run_suite,
)
from bench.report import write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the suites")
    for cmd in ("run", "all"):
        p = sub.add_parser(cmd, help="run one suite" if cmd == "run" else "run every suite")
        if cmd == "run":
            p.add_argument("suites", nargs="+", metavar="SUITE")
        else:
            p.add_argument("--skip", nargs="*", default=[], metavar="SUITE")
        p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
        p.add_argument("--split", default="valid", help="valid (default) or test")
        p.add_argument(
            "--budget",
            choices=BUDGETS,
            default="standard",
            help="quick: smoke run (tiny data, one epoch; not results); standard "
            "(default): the accuracy suites run the apps' production recipe (full "
            "fine-tuning, then ONNX int8 within 1 point) on CPU or GPU and report the "
            "served model, several hours on 2 CPU cores; full: standard plus the "
            "GPU-sized research strategies (contrastive few-shot, 3 seeds), results in "
            "bench/results/full",
        )
        p.add_argument("--quick", action="store_true", help="same as --budget quick")
    sub.add_parser("report", help="write docs/benchmarks.md from bench/results/*.json")
    args = parser.parse_args(argv)

    suites = discover()
    if args.command == "list":
        for name, entry in suites.items():
            print(f"{name:24s} {entry.area:18s} {entry.description}")
        return 0
    if args.command == "report":
        print(write_report())
        return 0
    names = args.suites if args.command == "run" else [n for n in suites if n not in args.skip]
    unknown = [name for name in names if name not in suites]
    if unknown:
        print(f"[bench] unknown suite(s): {', '.join(unknown)}; see `python -m bench list`")
        return 2
    budget = "quick" if args.quick else args.budget
    ctx = SuiteContext(data_dir=args.data_dir.resolve(), split=args.split, budget=budget)
    failed: list[str] = []
    durations: dict[str, float | str] = {}
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    started = time.perf_counter()
    for i, name in enumerate(names, 1):
        print(f"[bench] ({i}/{len(names)}) {name}", flush=True)
        try:
            record = run_suite(name, ctx)
        except BenchError as exc:
            print(f"[bench] {name}: {exc}", file=sys.stderr)
            failed.append(name)
            durations[name] = f"failed: {exc}"
            continue
        except Exception as exc:  # one broken suite must not stop `bench all`
            traceback.print_exc()
            print(f"[bench] {name} failed: {exc!r}", file=sys.stderr, flush=True)
            failed.append(name)
            durations[name] = f"failed: {exc!r}"
            continue
        durations[name] = record["duration_s"]
        print(json.dumps(record, default=str))
    if args.command == "all":
        summary = {
            "command": "python -m bench all "
            + " ".join(sys.argv[2:] if argv is None else argv[1:]),
            "budget": budget,
            "split": args.split,
            "started": started_at,
            "total_s": round(time.perf_counter() - started, 1),
            "machine": machine_info(),
            "load_average_at_end": load_average(),
            "git": git_state(),
            "suites": durations,
        }
        results_dir = ctx.results_dir or Path()
        results_dir.mkdir(parents=True, exist_ok=True)
        (results_dir / RUN_SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
        print(f"[bench] {len(names)} suites in {summary['total_s'] / 60:.1f} min", flush=True)
        if not ctx.quick:  # smoke runs write to var/, not to the published report
            write_report()
    if ctx.quick:
        print(f"[bench] quick run: results in {ctx.results_dir} (not bench/results)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
