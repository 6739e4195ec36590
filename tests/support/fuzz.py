"""API fuzzing with Schemathesis (its CLI, against a real running server)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

SEED = 20261129


def fuzz_for_server_errors(
    base_url: str,
    api_key: str,
    *,
    max_examples: int = 25,
    exclude_paths: Sequence[str] = (),
    timeout_s: float = 1500,
) -> subprocess.CompletedProcess[str]:
    """Run Schemathesis against ``base_url/openapi.json`` and return the finished process.

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
        "--generation-deterministic",
        "--workers",
        "1",
        "--request-timeout",
        "120",
        "--no-color",
        "--continue-on-failure",
        "-H",
        f"X-API-Key: {api_key}",
    ]
    for path in exclude_paths:
        cmd += ["--exclude-path", path]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)


def explain(result: subprocess.CompletedProcess[str], chars: int = 6000) -> str:
    """The end of the fuzzer's report, for an assertion message."""
    return (result.stdout + result.stderr)[-chars:]
