"""API fuzzing with Schemathesis (its CLI, against a real running server)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

SEED = 20261129


@dataclass
class FuzzResult:
    """What a fuzzing run did: exit code, operations tested (from its JUnit report), output."""

    returncode: int
    operations: int
    failed_operations: list[str]
    output: str


def fuzz_for_server_errors(
    base_url: str,
    api_key: str,
    report_dir: Path,
    *,
    max_examples: int = 12,
    exclude_paths: Sequence[str] = (),
    timeout_s: float = 1500,
) -> FuzzResult:
    """Run Schemathesis against ``base_url/openapi.json``; its JUnit report goes to
    ``report_dir`` and says which operations ran and which failed.

    Every operation is exercised with the admin key (so the fuzzer gets past
    authentication and reaches the handlers), with a fixed seed and a bounded number of
    examples, and checked for one thing only: no 5xx answer. ``exclude_paths`` are
    operations too costly to call hundreds of times (retraining), each said why by the
    caller.
    """
    exe = Path(sys.executable).parent / "schemathesis"
    cmd = [
        str(exe),
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(max_examples),
        "--seed",
        str(SEED),
        "--generation-deterministic",  # implies no example database on disk
        "--workers",
        "1",
        "--request-timeout",
        "120",
        "--no-color",
        "--continue-on-failure",
        "-H",
        f"X-API-Key: {api_key}",
        "--report",
        "junit",
        "--report-junit-path",
        str(report_dir / "schemathesis.xml"),
    ]
    for path in exclude_paths:
        cmd += ["--exclude-path", path]
    report_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    operations, failed = _read_junit(report_dir / "schemathesis.xml")
    return FuzzResult(done.returncode, operations, failed, done.stdout + done.stderr)


def _read_junit(path: Path) -> tuple[int, list[str]]:
    if not path.is_file():
        return 0, []
    root = ElementTree.parse(path).getroot()
    cases = list(root.iter("testcase"))
    failed = [
        case.get("name", "?")
        for case in cases
        if case.find("failure") is not None or case.find("error") is not None
    ]
    return len(cases), failed


def explain(result: FuzzResult, chars: int = 6000) -> str:
    """The end of the fuzzer's report, for an assertion message."""
    return f"failed operations: {result.failed_operations}\n{result.output[-chars:]}"
