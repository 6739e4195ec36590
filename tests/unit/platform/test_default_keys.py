"""Outside the demo no app serves without its own key, and each says how to set one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

APPS = [
    ("customer_service", "KEEL_CS_API_KEY"),
    ("finance_monitor", "KEEL_FM_API_KEY"),
    ("recommender", "KEEL_REC_API_KEY"),
]


@pytest.mark.parametrize(("package", "var"), APPS)
@pytest.mark.parametrize("key", [None, "dev-key"])
def test_serve_refuses_a_missing_or_default_key(package: str, var: str, key: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    if key is not None:
        env[var] = key
    done = subprocess.run(
        [sys.executable, "-m", f"{package}.cli", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert var in done.stderr and "secrets.token_urlsafe" in done.stderr
    assert "Traceback" not in done.stderr
