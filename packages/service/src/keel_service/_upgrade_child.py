"""The live upgrade's child process: ``python _upgrade_child.py RUN_DIR NICE``.

Run as a script (not ``-m keel_service...``) so that it imports nothing but the standard
library before the build target: starting it costs milliseconds, not the web stack.
Reads ``RUN_DIR/job.json`` (``target``, ``spec``), lowers its CPU priority, calls
``target(spec, RUN_DIR/model, progress)``, writes ``RUN_DIR/result.json``; progress goes
to ``RUN_DIR/progress.json``.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``path`` atomically (a reader never sees half a file)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1, default=str)
    os.replace(tmp, path)


def file_progress(path: Path) -> Callable[[float, str], None]:
    """A ``progress(fraction, message)`` that writes ``path`` (at most ~4 times a second)."""
    last = [0.0]

    def progress(fraction: float, message: str = "") -> None:
        now = time.monotonic()
        if fraction < 1.0 and now - last[0] < 0.25:
            return
        last[0] = now
        write_json(path, {"fraction": float(fraction), "message": message, "time": time.time()})

    return progress


def run_child(work: Path, nice: int = 0) -> int:
    """Lower the CPU priority, read the job, build, write the result."""
    if nice:
        os.nice(nice)
    try:
        job = json.loads((work / "job.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"{work / 'job.json'}: {exc}", file=sys.stderr)
        return 2
    module_name, _, function_name = str(job["target"]).partition(":")
    build = getattr(importlib.import_module(module_name), function_name)
    progress = file_progress(work / "progress.json")
    started = time.perf_counter()
    out_dir = work / "model"
    out_dir.mkdir(exist_ok=True)
    result = build(job["spec"], out_dir, progress)
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        payload = dataclasses.asdict(result)
    else:
        payload = dict(result)
    if not payload.get("seconds"):
        payload["seconds"] = round(time.perf_counter() - started, 1)
    progress(1.0, "done")
    write_json(work / "result.json", payload)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as the child process
    # Like ``python -m``: the working directory, not this file's folder, is on the path.
    sys.path[0] = os.getcwd()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sys.exit(run_child(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0))
