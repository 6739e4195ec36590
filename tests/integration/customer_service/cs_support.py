"""Helpers shared by the customer-service integration and e2e tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

APP = "customer_service.main:create_app"
API_KEY = "test-admin-key"


def prepare_state(state_dir: Path, languages: str = "en") -> Path:
    """Run ``customer-service prepare`` (head budget, no compression, bundled demo data) once;
    a second call finds everything cached and returns in seconds. ``languages="en,zh"``
    adds the Chinese pipeline (me5-small, in ``<state_dir>/zh``) to the English one."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "customer_service.cli",
            "prepare",
            "--state-dir",
            str(state_dir),
            "--no-compress",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "KEEL_CS_API_KEY": API_KEY, "KEEL_CS_LANGUAGES": languages},
    )
    if result.returncode != 0:
        raise RuntimeError(f"prepare failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return state_dir


def server_env(state_dir: Path, **overrides: str) -> dict[str, str]:
    """Environment of a test server on the prepared state dir.

    Its settings match ``prepare_state``'s (no compression): a server with other settings
    would find the prepared intent model stale and retrain it at start-up (a minute on 2
    cores), and publish its own in the shared folder, so the next module retrained again.
    """
    env = {
        "KEEL_CS_STATE_DIR": str(state_dir),
        "KEEL_CS_API_KEY": API_KEY,
        "KEEL_CS_COMPRESS": "false",
        "KEEL_CS_RATE_LIMIT_PER_MINUTE": "100000",
        "KEEL_CS_RATE_LIMIT_BURST": "10000",
        "KEEL_CS_NUM_THREADS": "1",
    }
    env.update(overrides)
    return env


def copy_state(prepared: Path, target: Path) -> Path:
    """A server's own state folder (for a replica, or a server on another database): a
    copy of the prepared one with its own knowledge-base index and no database; the
    trained models are shared read-only through a link."""
    shutil.copytree(
        prepared,
        target,
        ignore=shutil.ignore_patterns("models", "*.sqlite3*", "*.migrate-lock"),
    )
    (target / "models").symlink_to(prepared / "models", target_is_directory=True)
    return target


def bilingual_state(prepared: Path, target: Path) -> Path:
    """A server state for ``KEEL_CS_LANGUAGES=en,zh``: the Chinese pipeline is prepared
    into ``prepared`` (the English one there is reused), then ``prepared`` is copied like
    :func:`copy_state`, both languages' models linked."""
    prepare_state(prepared, languages="en,zh")
    state = copy_state(prepared, target)
    (state / "zh" / "models").symlink_to(prepared / "zh" / "models", target_is_directory=True)
    return state
