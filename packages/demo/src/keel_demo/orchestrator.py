"""Runs the whole demo: broker, model preparation, the three apps, the replay, the landing page."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from keel_demo.landing import create_landing_app
from keel_demo.processes import (
    Child,
    DemoError,
    DemoInterrupted,
    run_foreground,
    spawn,
    stop,
    wait_healthy,
)
from keel_demo.services import APPS, AppService
from keel_service.servers import uvicorn_command

REPO_ROOT = Path(__file__).resolve().parents[4]
KAFKA_LOCAL = REPO_ROOT / "scripts" / "kafka_local.py"


@dataclass
class DemoOptions:
    """How the demo runs; the defaults are what `make demo` uses."""

    state_dir: Path = REPO_ROOT / "var"
    host: str = "127.0.0.1"
    base_port: int = 8100
    budget: str = "fast"
    replay_rate: float = 20.0
    time_scale: float = 5.0
    surge_topic: str | None = "Earnings"
    replay: bool = True

    def __post_init__(self) -> None:
        if self.budget not in {"fast", "full"}:
            raise ValueError(f"budget={self.budget!r}: use 'fast' or 'full'")
        if not 1024 <= self.base_port <= 65000:
            raise ValueError(f"base_port={self.base_port!r}: use a port in 1024-65000")
        if self.time_scale <= 0:
            raise ValueError(f"time_scale={self.time_scale!r}: must be positive")
        if self.replay_rate <= 0:
            raise ValueError(f"replay_rate={self.replay_rate!r}: must be positive")


@dataclass
class Demo:
    options: DemoOptions
    stop_event: threading.Event = field(default_factory=threading.Event)
    children: list[Child] = field(default_factory=list)
    bootstrap: str = ""
    started_broker: bool = False
    _landing: uvicorn.Server | None = None
    _landing_thread: threading.Thread | None = None
    keys: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Fresh random keys for this run (a key the caller exported is kept): the apps
        # refuse to start with a default key, and these are printed with the URL.
        for app in APPS:
            for var in app.key_vars():
                self.keys[var] = os.environ.get(var) or secrets.token_urlsafe(18)

    @property
    def url(self) -> str:
        return f"http://{self.options.host}:{self.options.base_port}/"

    def app_url(self, app: AppService) -> str:
        return f"http://{self.options.host}:{self.options.base_port + app.port_offset}"

    def _bin(self, script: str) -> str:
        return str(Path(sys.executable).parent / script)

    def _env(self, app: AppService | None = None) -> dict[str, str]:
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "HF_HUB_OFFLINE": "1"}
        if app is not None:
            env[f"{app.env_prefix}STATE_DIR"] = str(self.options.state_dir / app.name)
            env.update({var: self.keys[var] for var in app.key_vars()})
            for name, value in app.defaults:
                env.setdefault(name, value)
        return env

    def start_broker(self) -> None:
        external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if external:
            self.bootstrap = external
            print(f"[demo] using the Kafka cluster at {external}", flush=True)
            return
        print("[demo] starting the local Kafka broker...", flush=True)
        out = subprocess.run(
            [
                sys.executable,
                str(KAFKA_LOCAL),
                "start",
                "--dir",
                str(self.options.state_dir / "kafka"),
            ],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise DemoError(f"kafka-local failed:\n{out.stderr}")
        self.bootstrap = out.stdout.strip().splitlines()[-1]
        self.started_broker = True
        print(f"[demo] Kafka broker at {self.bootstrap}", flush=True)

    def prepare_models(self) -> None:
        """Train (or load cached) demo models for every app, one after another, with progress."""
        for app in APPS:
            print(f"[demo] preparing {app.title} (budget {self.options.budget})...", flush=True)
            cmd = [self._bin(app.cli), "prepare"]
            if self.options.budget == "full":  # each app's default is its fast budget
                cmd += ["--budget", "full"]
            code = run_foreground(f"{app.cli} prepare", cmd, self._env(app), self.stop_event)
            if code != 0:
                raise DemoError(f"`{app.cli} prepare` failed with exit code {code}")

    def start_apps(self) -> None:
        print("[demo] starting the three apps...", flush=True)
        logs = self.options.state_dir / "logs"
        for app in APPS:
            port = self.options.base_port + app.port_offset
            cmd = uvicorn_command(app.factory, host=self.options.host, port=port)
            self.children.append(spawn(app.name, cmd, self._env(app), logs / f"{app.name}.log"))
        for app, child in zip(APPS, self.children, strict=True):
            wait_healthy(child, self.app_url(app), 300, self.stop_event)
            print(f"[demo] {app.title} ready at {self.app_url(app)}", flush=True)

    def start_replay(self) -> None:
        finance = next(a for a in APPS if a.name == "finance_monitor")
        cmd = [
            self._bin(finance.cli),
            "replay",
            "--demo",
            "--rate",
            f"{self.options.replay_rate:g}/s",
            "--time-scale",
            f"{self.options.time_scale:g}",
        ]
        if self.options.surge_topic:
            cmd += ["--surge-topic", self.options.surge_topic]
        self.children.append(
            spawn("replay", cmd, self._env(finance), self.options.state_dir / "logs" / "replay.log")
        )

    def start_landing(self) -> None:
        app = create_landing_app([(svc, self.app_url(svc)) for svc in APPS])
        config = uvicorn.Config(
            app, host=self.options.host, port=self.options.base_port, log_level="warning"
        )
        self._landing = uvicorn.Server(config)
        self._landing_thread = threading.Thread(target=self._landing.run, daemon=True)
        self._landing_thread.start()
        deadline = time.monotonic() + 30
        while not self._landing.started:  # print the URL only once it answers
            if not self._landing_thread.is_alive() or time.monotonic() > deadline:
                raise DemoError(
                    f"the landing page could not start on port {self.options.base_port}"
                )
            time.sleep(0.05)

    def run(self) -> None:
        """Start everything, print the URL, and block until ``self.stop_event`` is set."""
        stop_event = self.stop_event
        steps = [self.start_broker, self.prepare_models, self.start_apps]
        if self.options.replay:
            steps.append(self.start_replay)
        steps.append(self.start_landing)
        try:
            for step in steps:
                if stop_event.is_set():
                    return
                try:
                    step()
                except DemoInterrupted:
                    return
            keys = "\n".join(f"  {var}={key}" for var, key in self.keys.items())
            print(
                f"\nKeel demo is running: {self.url}\n"
                f"API keys of this run (demo only; the agent page asks for KEEL_CS_AGENT_KEY):\n"
                f"{keys}\n(Ctrl-C stops everything)",
                flush=True,
            )
            while not stop_event.wait(1.0):
                for child in self.children:
                    if child.name != "replay" and not child.alive():
                        raise DemoError(f"{child.name} stopped:\n{child.log_tail()}")
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        if self._landing is not None:
            self._landing.should_exit = True
            if self._landing_thread is not None:
                self._landing_thread.join(timeout=10)
        for child in reversed(self.children):
            stop(child)
        self.children.clear()
        if self.started_broker:
            subprocess.run(
                [
                    sys.executable,
                    str(KAFKA_LOCAL),
                    "stop",
                    "--dir",
                    str(self.options.state_dir / "kafka"),
                ],
                capture_output=True,
                text=True,
            )
            self.started_broker = False
        print("[demo] stopped everything it started", flush=True)
