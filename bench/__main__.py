"""Command line of the benchmark harness."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.harness import DEFAULT_DATA_DIR, BenchError, SuiteContext, discover, run_suite
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
        p.add_argument("--quick", action="store_true", help="smaller budgets, for smoke runs")
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
    ctx = SuiteContext(data_dir=args.data_dir.resolve(), split=args.split, quick=args.quick)
    failed: list[str] = []
    for name in names:
        try:
            record = run_suite(name, ctx)
        except BenchError as exc:
            print(f"[bench] {name}: {exc}", file=sys.stderr)
            failed.append(name)
            continue
        print(json.dumps(record, default=str))
    if args.command == "all":
        write_report()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
