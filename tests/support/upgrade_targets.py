"""Candidate builds for the live-upgrade tests: run in ``keel_service.upgrade``'s child."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def fake_build(spec: dict[str, Any], out_dir: Path, progress: Any) -> dict[str, Any]:
    """Writes ``weights.txt``, reports ``steps`` progress steps, returns the given scores;
    ``fail`` raises, ``sleep_s`` sleeps per step (a long build to stop)."""
    (out_dir / "pid").write_text(str(os.getpid()))
    (out_dir / "nice").write_text(str(os.nice(0)))
    steps = int(spec.get("steps", 4))
    for step in range(1, steps + 1):
        time.sleep(float(spec.get("sleep_s", 0.0)))
        progress(step / steps, f"step {step}/{steps}")
    if spec.get("fail"):
        raise RuntimeError("the fake build fails as asked")
    (out_dir / "weights.txt").write_text(str(spec["score"]))
    return {"score": spec["score"], "served_score": spec["served"], "validation_size": 10}
