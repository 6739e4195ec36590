"""Benchmark of the one-command demo (issue 8): ``demo-startup``.

Runs the real ``keel-demo`` entry point (what ``make demo`` runs after ``make install``)
with its default budget in rounds: each round starts it on a new, empty state folder
(the *first run*, which trains and compresses every demo model) and then again on the
same folder (a *later run*, which loads them from the cache). Each figure is the wall
time from launch until the demo prints its URL (broker up, models ready, the three apps
and the landing page answering their health checks); then Ctrl-C (SIGINT) stops it and
the time until it has exited is recorded too. The metrics are medians of ``ctx.runs``
rounds (5), with min and max in the details; ``--budget quick`` runs one round.
Installing packages and fetching the Kafka jars (``make install``) is not part of the
figure.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.harness import BenchError, SuiteContext, SuiteResult, Target, suite

KEEL_DEMO = Path(sys.executable).parent / "keel-demo"
READY_PREFIX = "Keel demo is running: "
ISSUE = "issue 8 target (2 cores)"


def _port_block(count: int = 4) -> int:
    """A base port such that base .. base+count-1 are free on 127.0.0.1."""
    for base in range(23000, 60000, 89):
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise BenchError("no block of 4 free ports for the demo")


def _start_and_stop(state_dir: Path, timeout_s: float, ctx: SuiteContext) -> dict[str, Any]:
    """Launch the demo, time it until its URL is printed, then Ctrl-C it and time the stop.

    Returns ``ready_s``, ``stop_s`` and ``steps``: (seconds since launch, line) of each of
    the demo's ``[demo]`` step lines up to the URL.
    """
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    cmd = [str(KEEL_DEMO), "--state-dir", str(state_dir), "--port", str(_port_block())]
    if ctx.quick:
        env["KEEL_REC_MAX_PAIRS"] = "64"
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    ready_s = None
    # When each of the demo's own step lines ("[demo] preparing ...", "[demo] ... ready at
    # ...") appeared: where the start-up time goes.
    steps: list[tuple[float, str]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and ready_s is None:
            if proc.poll() is not None and lines.empty():
                break
            try:
                line = lines.get(timeout=1.0)
            except queue.Empty:
                continue
            if line.startswith("[demo] "):
                steps.append((round(time.perf_counter() - started, 2), line.strip()[:120]))
            if line.startswith(READY_PREFIX):
                ready_s = time.perf_counter() - started
                ctx.log(f"demo ready in {ready_s:.1f}s: {line.strip()}")
    finally:
        stop_started = time.perf_counter()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        stop_s = time.perf_counter() - stop_started
    if ready_s is None:
        tail = "".join(output)[-3000:]
        raise BenchError(f"keel-demo did not print its URL within {timeout_s:.0f}s:\n{tail}")
    if code != 0:
        raise BenchError(f"keel-demo exited with {code} after Ctrl-C:\n{''.join(output)[-3000:]}")
    return {"ready_s": ready_s, "stop_s": stop_s, "steps": steps}


@suite(
    "demo-startup",
    area="demo",
    description="keel-demo (make demo) from an empty state folder, then again with cached models",
    targets=[
        Target("first_run_s", "<=", 600.0, anchor=ISSUE),
        Target("later_run_s", "<=", 60.0, anchor=ISSUE),
    ],
)
def demo_startup(ctx: SuiteContext) -> SuiteResult:
    if not KEEL_DEMO.is_file():
        raise BenchError(f"{KEEL_DEMO} not found; run `make install` first")
    rounds = 1 if ctx.quick else ctx.runs
    cold: list[dict[str, Any]] = []
    warm: list[dict[str, Any]] = []
    for index in range(rounds):
        state_dir = Path(tempfile.mkdtemp(prefix="keel-bench-demo-"))
        try:
            ctx.log(f"round {index + 1}/{rounds}: first run on an empty state folder")
            cold.append(_start_and_stop(state_dir / "var", timeout_s=1800, ctx=ctx))
            ctx.log(f"round {index + 1}/{rounds}: later run on the same folder")
            warm.append(_start_and_stop(state_dir / "var", timeout_s=600, ctx=ctx))
        finally:
            shutil.rmtree(state_dir, ignore_errors=True)
    first = _spread([r["ready_s"] for r in cold])
    later = _spread([r["ready_s"] for r in warm])
    stop = _spread([r["stop_s"] for r in cold + warm])
    return SuiteResult(
        metrics={
            "first_run_s": first["median"],
            "first_run_s.min": first["min"],
            "first_run_s.max": first["max"],
            "later_run_s": later["median"],
            "later_run_s.min": later["min"],
            "later_run_s.max": later["max"],
            "stop_s": stop["median"],
            "stop_s.max": stop["max"],
        },
        details={
            "command": "keel-demo --state-dir EMPTY_DIR --port FREE_PORT (default budget)",
            "budget": "quick: small reranker budget (KEEL_REC_MAX_PAIRS=64), one round"
            if ctx.quick
            else "default",
            "measured": "launch -> URL printed (broker, models, apps and landing page healthy); "
            "stop = SIGINT -> exit; cold/warm steps: seconds since launch at which each "
            "of the demo's [demo] step lines appeared",
            "rounds": rounds,
            "order": "each round: a first run on a new empty folder, then a later run on it",
            "not_included": "make install (Python packages, Kafka jars, Chromium)",
            "first_run_s": first,
            "later_run_s": later,
            "stop_s": stop,
            "cold": cold,
            "warm": warm,
        },
        recipe={"rounds": rounds, "port_block": 4, "reranker_max_pairs": 64 if ctx.quick else None},
    )


def _spread(values: list[float]) -> dict[str, Any]:
    """Median, min, max (rounded to 0.1 s) and the runs."""
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
        "runs": [round(v, 2) for v in values],
    }
