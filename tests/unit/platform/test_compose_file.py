"""docker-compose.yml and the Dockerfile: structure, commands parsed by each app's own CLI, and
Debian's compose client's validation (no Docker engine here)."""

from __future__ import annotations

import importlib
import os
import re
import shlex
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


def _dockerfile_commands() -> list[str]:
    """Every RUN and CMD of the Dockerfile (continuation lines joined)."""
    text = (REPO_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [
        line.split(None, 1)[1] for line in text.splitlines() if line.startswith(("RUN ", "CMD "))
    ]


def _parse_with_app_cli(package: str, command: list[str]) -> None:
    """``command`` (after the console script) must parse with the app's own parser."""
    module = importlib.import_module(f"{package}.cli")
    parser = module.build_parser()
    try:
        parser.parse_args(command)
    except SystemExit as exc:  # argparse's way of saying no
        raise AssertionError(f"{package} CLI rejects {command!r}") from exc


def test_one_parameterised_dockerfile_and_its_commands_parse_with_each_apps_cli() -> None:
    services = _compose()["services"]
    commands = _dockerfile_commands()
    assert any("${CLI}" in c for c in commands) and any("KEEL_CLI" in c for c in commands)
    for name, package in APPS.items():
        build = services[name]["build"]
        assert build["context"] == "." and "dockerfile" not in build  # the root Dockerfile
        args = build["args"]
        assert args["APP"] == package and args["CLI"] == name
        assert (REPO_ROOT / "apps" / package / "src" / package / "cli.py").is_file()
        values = {"CLI": args["CLI"], "KEEL_CLI": args["CLI"], "PORT": str(args["PORT"])}
        values["KEEL_PORT"] = values["PORT"]
        checked = 0
        for command in commands:
            expanded = re.sub(
                r"\$\{(\w+)\}", lambda m, v=values: v.get(m.group(1), m.group(0)), command
            )
            argv = shlex.split(expanded)
            if argv and argv[0] == "exec":
                argv = argv[1:]
            if argv and argv[0] == name:
                _parse_with_app_cli(package, argv[1:])
                checked += 1
        assert checked >= 2, f"{name}: expected a prepare RUN and a serve CMD, checked {checked}"
        assert "readyz" in " ".join(services[name]["healthcheck"]["test"])
    replay = services["replay"]
    assert replay["command"][0] == "finance-monitor"
    _parse_with_app_cli("finance_monitor", replay["command"][1:])
    assert services["finance-monitor"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert replay["depends_on"]["finance-monitor"]["condition"] == "service_healthy"
    assert replay["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_the_dockerfile_copies_paths_that_exist() -> None:
    for line in (REPO_ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (REPO_ROOT / src).exists(), f"Dockerfile copies missing {src}"


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
        assert services[name]["build"]["args"]["APP"] == APPS[name]
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
