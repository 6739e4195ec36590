"""docker-compose.yml is checked by review and by these structural checks (no Docker engine here)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
APPS = {
    "customer-service": "customer_service",
    "finance-monitor": "finance_monitor",
    "recommender": "recommender",
}


def _compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_kafka_service_is_kraft_with_healthcheck() -> None:
    kafka = _compose()["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "test" in kafka["healthcheck"]


def test_every_app_has_a_dockerfile_healthcheck_and_waits_for_kafka_when_it_needs_it() -> None:
    services = _compose()["services"]
    for name, package in APPS.items():
        svc = services[name]
        dockerfile = REPO_ROOT / svc["build"]["dockerfile"]
        assert dockerfile.is_file(), dockerfile
        text = dockerfile.read_text()
        assert f"--package keel-{name}" in text, "the image installs only its own app"
        assert f"{package}.main:create_app" in text
        assert "healthz" in " ".join(svc["healthcheck"]["test"])
    assert services["finance-monitor"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    replay = services["replay"]["depends_on"]
    assert replay["finance-monitor"]["condition"] == "service_healthy"
    assert replay["kafka"]["condition"] == "service_healthy"


def test_every_dockerfile_copies_paths_that_exist() -> None:
    for package in APPS.values():
        for line in (REPO_ROOT / "apps" / package / "Dockerfile").read_text().splitlines():
            if line.startswith("COPY "):
                for src in line.split()[1:-1]:
                    assert (REPO_ROOT / src).exists(), f"{package}/Dockerfile copies missing {src}"


def _compose_client() -> list[str] | None:
    """``docker compose`` (v2 plugin) or ``docker-compose`` (v1), whichever is installed."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_client_accepts_the_file() -> None:
    """The compose client parses and normalises the file (no engine is needed for this)."""
    client = _compose_client()
    if client is None:
        pytest.skip("no compose client installed (scripts/install adds Debian's docker-compose)")
    keys = {f"KEEL_{p}_API_KEY": f"test-key-{p.lower()}-0123456789" for p in ("CS", "FM", "REC")}
    env = {k: v for k, v in os.environ.items() if k != "KEEL_BIND_ADDRESS"}
    result = _compose_config(client, {**env, **keys})
    assert result.returncode == 0, result.stderr
    normalised = yaml.safe_load(result.stdout)
    services = normalised["services"]
    assert set(services) >= {"kafka", *APPS, "replay"}
    assert services["replay"]["depends_on"]["finance-monitor"]["condition"] == "service_healthy"
    for name in APPS:
        assert services[name]["build"]["dockerfile"] == f"apps/{APPS[name]}/Dockerfile"
        env_prefix = {"customer-service": "CS", "finance-monitor": "FM", "recommender": "REC"}[name]
        key_var = f"KEEL_{env_prefix}_API_KEY"
        assert services[name]["environment"][key_var] == keys[key_var]
    for name in (*APPS, "kafka"):
        for port in services[name]["ports"]:
            published = port if isinstance(port, str) else port.get("host_ip", "")
            assert "127.0.0.1" in str(published), f"{name} publishes {port} beyond loopback"


def _compose_config(client: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*client, "-f", str(REPO_ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
        env=env,
        timeout=120,
    )


def test_compose_refuses_to_run_without_keys() -> None:
    """No default key works outside the demo: without the keys the file does not resolve."""
    client = _compose_client()
    if client is None:
        pytest.skip("no compose client installed (scripts/install adds Debian's docker-compose)")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    result = _compose_config(client, env)
    assert result.returncode != 0
    assert "KEEL_" in result.stderr and "API_KEY" in result.stderr
