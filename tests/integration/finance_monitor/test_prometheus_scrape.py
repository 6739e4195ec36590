"""Debian's Prometheus, run once with the repository's scrape config and rules pointed at
a running finance monitor (real broker, real uvicorn): every target is up, the rules load."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from keel_service.servers import free_port, start_app_server, stop_process_group
from tests.integration.finance_monitor.fm_support import fm_env, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy" / "prometheus"


def _config(targets: dict[str, str], tmp_path: Path) -> Path:
    """deploy/prometheus/prometheus.yml with each job's targets replaced by the running
    ones (jobs without a running target dropped) and a fast scrape interval."""
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(DEPLOY / f) for f in config["rule_files"]]
    config.pop("alerting", None)
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] in targets:
            labels = job["static_configs"][0].get("labels", {})
            job["static_configs"] = [{"targets": [targets[job["job_name"]]], "labels": labels}]
            jobs.append(job)
    assert sorted(j["job_name"] for j in jobs) == sorted(targets)
    config["scrape_configs"] = jobs
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _targets(url: str) -> list[dict[str, Any]]:
    try:
        return httpx.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
    except (httpx.HTTPError, ValueError, KeyError):
        return []


def test_prometheus_scrapes_every_target(
    kafka_bootstrap: str, fm_models_dir: Path, tmp_path: Path
) -> None:
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).is_file():
        pytest.fail("prometheus not found: run `make install` (Debian's prometheus package)")
    env = fm_env(kafka_bootstrap, tmp_path / "state", fm_models_dir)
    with start_app_server("finance_monitor.main:create_app", env=env, timeout_s=300) as base:
        fm = base.split("://", 1)[1].rstrip("/")
        config = _config({"keel-finance-monitor": fm}, tmp_path)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with (tmp_path / "prometheus.log").open("ab") as log:
            proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            targets = wait_for(
                lambda: [t for t in _targets(url) if t["health"] == "up"] or None,
                120,
                "Prometheus to scrape its targets",
            )
            targets = wait_for(
                lambda: all(t["health"] == "up" for t in _targets(url)) and _targets(url),
                120,
                "every target to be up",
            )
            assert {t["labels"]["job"] for t in targets} == {"keel-finance-monitor"}
            assert all(t["lastError"] == "" for t in targets)
            groups = httpx.get(f"{url}/api/v1/rules").json()["data"]["groups"]
            assert {g["name"] for g in groups} == {
                "keel-availability",
                "keel-drift",
                "keel-finance-pipeline",
                "keel-models",
            }
            # the app's metrics the rules read are in Prometheus
            series = wait_for(
                lambda: httpx.get(f"{url}/api/v1/query", params={"query": "keel_ready"}).json()[
                    "data"
                ]["result"],
                60,
                "keel_ready to be scraped",
            )
            assert series[0]["value"][1] == "1"
        finally:
            stop_process_group(proc)
