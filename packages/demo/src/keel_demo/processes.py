"""Child processes of the demo: each in its own process group, stopped as a group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx


class DemoError(Exception):
    """A demo step failed; the message says which and where its log is."""


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path | None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        if self.log is None or not self.log.is_file():
            return ""
        return self.log.read_text(errors="replace")[-chars:]


def spawn(name: str, cmd: Sequence[str], env: dict[str, str], log: Path | None) -> Child:
    """Start ``cmd`` in a new session; output goes to ``log`` (or the terminal when None)."""
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                list(cmd),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
    else:
        proc = subprocess.Popen(
            list(cmd), env=env, stdin=subprocess.DEVNULL, start_new_session=True
        )
    return Child(name=name, proc=proc, log=log)


def stop(child: Child, grace_s: float = 10.0) -> None:
    """SIGTERM the child's process group, SIGKILL it after ``grace_s``."""
    if child.proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.proc.pid, signal.SIGTERM)
    try:
        child.proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.proc.pid, signal.SIGKILL)
        child.proc.wait(timeout=5)


class DemoInterrupted(DemoError):
    """Ctrl-C (or SIGTERM) arrived while the demo was starting."""


def wait_healthy(child: Child, url: str, timeout_s: float, stop_event: threading.Event) -> None:
    """Poll ``url`` until it answers 200; raise with the child's log if it dies or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if stop_event.is_set():
            raise DemoInterrupted(f"interrupted while waiting for {child.name}")
        if not child.alive():
            raise DemoError(
                f"{child.name} exited with {child.proc.returncode}:\n{child.log_tail()}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        time.sleep(0.5)
    raise DemoError(
        f"{child.name} not healthy at {url} after {timeout_s:.0f}s:\n{child.log_tail()}"
    )


def run_foreground(
    name: str, cmd: Sequence[str], env: dict[str, str], stop_event: threading.Event
) -> int:
    """Run ``cmd`` with its output on the terminal; stop it if ``stop_event`` is set."""
    child = spawn(name, cmd, env, log=None)
    while child.proc.poll() is None:
        if stop_event.wait(0.5):
            stop(child)
            raise DemoInterrupted(f"interrupted during {name}")
    return child.proc.returncode
