#!/usr/bin/env python3
"""Run a real Prometheus Alertmanager from Debian's ``prometheus-alertmanager`` package.

Usage: scripts/alertmanager-local start|stop|status|url [--dir DIR] [--config FILE]

``start`` starts ``prometheus-alertmanager`` on a free port on 127.0.0.1 with the
repository's ``deploy/alertmanager/alertmanager.yml`` (or ``--config``), its own data
folder (``--storage.path`` under ``--dir``) and no cluster gossip
(``--cluster.listen-address=``), and prints its URL once ``/-/ready`` answers.
``stop`` stops it (SIGTERM, then SIGKILL); ``status`` says whether it runs.

The state (pid, port, data, log) lives under ``--dir`` (default ``var/alertmanager``).
If ``KEEL_ALERTMANAGER_URL`` is set, ``start`` starts nothing and prints that URL.
Standard library only, so it runs before the project's virtualenv exists.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO_ROOT / "var" / "alertmanager"
DEFAULT_CONFIG = REPO_ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
BINARY = "/usr/bin/prometheus-alertmanager"


class AlertmanagerLocalError(RuntimeError):
    """A step failed; the message says which and where the log is."""


def binary() -> str:
    """Path of the Alertmanager binary (``KEEL_ALERTMANAGER_BIN`` overrides)."""
    path = os.environ.get("KEEL_ALERTMANAGER_BIN") or BINARY
    if not Path(path).is_file():
        raise AlertmanagerLocalError(
            f"{path} not found; install Debian's 'prometheus-alertmanager' package "
            "(scripts/install does: apt-get install prometheus-alertmanager)"
        )
    return path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _state_file(state_dir: Path) -> Path:
    return state_dir / "alertmanager.json"


def read_state(state_dir: Path) -> dict[str, object] | None:
    """The running instance's pid, port and paths, if one was started here."""
    path = _state_file(state_dir)
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def url_of(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as dead.
    with contextlib.suppress(OSError, ValueError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def is_running(state_dir: Path) -> bool:
    """Whether the instance started under ``state_dir`` runs and answers."""
    state = read_state(state_dir)
    if state is None:
        return False
    return _alive(int(state["pid"])) and _ready(url_of(int(state["port"])))  # type: ignore[arg-type]


def start(state_dir: Path, config: Path, timeout_s: float) -> str:
    """Start (or find running) and return the base URL."""
    external = os.environ.get("KEEL_ALERTMANAGER_URL")
    if external:
        return external.rstrip("/")
    state_dir.mkdir(parents=True, exist_ok=True)
    if is_running(state_dir):
        state = read_state(state_dir)
        assert state is not None
        return url_of(int(state["port"]))  # type: ignore[arg-type]
    exe = binary()
    if not config.is_file():
        raise AlertmanagerLocalError(f"config {config} not found")
    data = state_dir / "data"
    data.mkdir(exist_ok=True)
    log = state_dir / "alertmanager.log"
    port = free_port()
    url = url_of(port)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                exe,
                f"--config.file={config}",
                f"--storage.path={data}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--web.external-url={url}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives this script; stopped by pid
        )
    _state_file(state_dir).write_text(
        json.dumps({"pid": proc.pid, "port": port, "config": str(config), "log": str(log)})
    )
    deadline = time.monotonic() + timeout_s
    while not _ready(url):
        if proc.poll() is not None:
            _state_file(state_dir).unlink(missing_ok=True)
            raise AlertmanagerLocalError(f"alertmanager exited with {proc.returncode}; log: {log}")
        if time.monotonic() > deadline:
            stop(state_dir)
            raise AlertmanagerLocalError(
                f"alertmanager not ready after {timeout_s:.0f} s; log: {log}"
            )
        time.sleep(0.2)
    return url


def stop(state_dir: Path, timeout_s: float = 15.0) -> bool:
    """Stop the instance started under ``state_dir``; True if one ran."""
    state = read_state(state_dir)
    if state is None:
        return False
    pid = int(state["pid"])  # type: ignore[arg-type]
    running = _alive(pid)
    if running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    _state_file(state_dir).unlink(missing_ok=True)
    return running


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="alertmanager-local",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["start", "stop", "status", "url"])
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(os.environ.get("KEEL_ALERTMANAGER_DIR", DEFAULT_DIR)),
        help="state folder: pid, port, data, log (default var/alertmanager)",
    )
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="alertmanager.yml")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for ready")
    args = parser.parse_args(argv)
    state_dir = args.dir.resolve()
    try:
        if args.command == "start":
            print(start(state_dir, args.config.resolve(), args.timeout), flush=True)
        elif args.command == "stop":
            print("stopped" if stop(state_dir) else "not running")
        else:
            if not is_running(state_dir):
                print("not running")
                return 1
            state = read_state(state_dir)
            assert state is not None
            url = url_of(int(state["port"]))  # type: ignore[arg-type]
            print(url if args.command == "url" else f"running {url} pid={state['pid']}")
    except AlertmanagerLocalError as exc:
        print(f"alertmanager-local: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
