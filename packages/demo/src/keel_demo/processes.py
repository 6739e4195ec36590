"""Child processes of the demo: each in its own process group, stopped as a group."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from keel_service.servers import (
    ServerInterrupted,
    ServerStartError,
    stop_process_group,
    wait_ready,
)


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
    stop_process_group(child.proc, grace_s)


class DemoInterrupted(DemoError):
    """Ctrl-C (or SIGTERM) arrived while the demo was starting."""


def wait_healthy(child: Child, url: str, timeout_s: float, stop_event: threading.Event) -> None:
    """Wait until the app at ``url`` is ready; raise with the child's log if it dies or
    times out (keel_service's wait, shared with the tests and the benchmarks)."""
    try:
        wait_ready(child.proc, url, timeout_s, child.log_tail, stop_event)
    except ServerInterrupted as exc:
        raise DemoInterrupted(f"interrupted while waiting for {child.name}") from exc
    except ServerStartError as exc:
        raise DemoError(f"{child.name}: {exc}") from exc


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
