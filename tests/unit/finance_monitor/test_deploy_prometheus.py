"""deploy/prometheus and deploy/alertmanager pass Prometheus' and Alertmanager's own
checkers: promtool check config / check rules / test rules (sample series), amtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PROMETHEUS = REPO / "deploy" / "prometheus"


def _tool(name: str) -> str:
    path = shutil.which(name) or f"/usr/bin/{name}"
    if not Path(path).is_file():
        pytest.fail(f"{name} not found: run `make install` (Debian's prometheus packages)")
    return path


def _run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


def test_promtool_checks_the_scrape_config() -> None:
    out = _run(_tool("promtool"), "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert "is valid prometheus config file syntax" in out


def test_promtool_checks_the_rules() -> None:
    out = _run(_tool("promtool"), "check", "rules", str(PROMETHEUS / "rules" / "keel.yml"))
    assert "SUCCESS: 13 rules found" in out


def test_the_rules_fire_on_sample_series() -> None:
    out = _run(_tool("promtool"), "test", "rules", str(PROMETHEUS / "tests" / "keel_test.yml"))
    assert "SUCCESS" in out


def test_every_rule_has_a_promtool_test() -> None:
    import yaml

    rules = yaml.safe_load((PROMETHEUS / "rules" / "keel.yml").read_text())
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    tests = yaml.safe_load((PROMETHEUS / "tests" / "keel_test.yml").read_text())
    tested = {
        case["alertname"]
        for t in tests["tests"]
        for case in t["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert names == tested


def test_amtool_checks_the_alertmanager_config() -> None:
    out = _run(
        _tool("amtool"), "check-config", str(REPO / "deploy" / "alertmanager" / "alertmanager.yml")
    )
    assert "SUCCESS" in out
