"""Shared by the recommender integration and e2e tests: a prepared state dir (real
fine-tuned encoder, tiny budget) built once per session, and the server environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

APP = "recommender.main:create_app"
API_KEY = "test-admin-key"

#: Real training, test-sized: 64 pairs = 2 fine-tuning steps; ONNX export skipped.
TEST_ENV = {"KEEL_REC_MAX_PAIRS": "64", "KEEL_REC_COMPRESS": "false", "KEEL_REC_NUM_THREADS": "1"}


def prepare_state(state_dir: Path, extra_env: dict[str, str] | None = None) -> Path:
    """Run ``recommender prepare`` once into ``state_dir`` (reused when already there);
    ``extra_env`` overrides settings (e.g. the encoder)."""
    env = {**os.environ, **TEST_ENV, **(extra_env or {}), "KEEL_REC_STATE_DIR": str(state_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "recommender.cli", "prepare"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if done.returncode != 0:
        raise RuntimeError(f"recommender prepare failed:\n{done.stdout}\n{done.stderr}")
    return state_dir


def copy_state(prepared: Path, target: Path) -> Path:
    """A private copy of a prepared state dir, so servers of different tests never share
    a database."""
    shutil.copytree(prepared, target)
    return target


def server_env(state_dir: Path) -> dict[str, str]:
    """Environment of a recommender server on ``state_dir``."""
    return {**TEST_ENV, "KEEL_REC_STATE_DIR": str(state_dir), "KEEL_REC_API_KEY": API_KEY}
