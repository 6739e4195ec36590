"""Run an app as a real HTTP server (uvicorn in a subprocess): one helper for tests, bench and demo."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: Seconds uvicorn keeps an idle keep-alive connection open (nginx's default is 75).
KEEP_ALIVE_S = 75


class ServerStartError(RuntimeError):
    """The server exited or never became healthy; the message holds its log tail."""


class ServerInterrupted(ServerStartError):
    """The caller's stop event was set while waiting for the server."""


def uvicorn_command(
    app_import: str,
    *,
    port: int,
    host: str = "127.0.0.1",
    workers: int = 1,
    extra_args: Sequence[str] = (),
    graceful_shutdown_s: int = 10,
) -> list[str]:
    """The command line that serves ``app_import`` (a ``module:factory``) with uvicorn."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app_import,
        "--factory",
        "--host",
        host,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--timeout-graceful-shutdown",
        str(graceful_shutdown_s),
        # Longer than pooled clients keep idle connections (httpx: 5 s, proxies: 60 s):
        # with uvicorn's 5 s default, a request sent on an idle connection just as the
        # server closes it fails with a read error (seen under load on a slow machine).
        "--timeout-keep-alive",
        str(KEEP_ALIVE_S),
        *(["--workers", str(workers)] if workers > 1 else []),
        *extra_args,
    ]


def wait_ready(
    proc: subprocess.Popen[bytes],
    base_url: str,
    timeout_s: float,
    log_tail: Callable[[], str],
    stop: threading.Event | None = None,
) -> None:
    """Poll ``base_url/readyz`` until it answers 200.

    Raises:
        ServerStartError: the process exited, or was not ready in time (with its log tail).
        ServerInterrupted: ``stop`` was set meanwhile.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if stop is not None and stop.is_set():
            raise ServerInterrupted(f"interrupted while waiting for {base_url}")
        if proc.poll() is not None:
            raise ServerStartError(f"server exited with {proc.returncode}:\n{log_tail()}")
        try:
            answer = httpx.get(f"{base_url}/readyz", timeout=2.0)
        except httpx.HTTPError:
            answer = None
        if answer is not None and answer.status_code == 200:
            return
        if answer is not None and _says_failed(answer):  # a failed start does not recover
            raise ServerStartError(f"server start failed ({answer.text}):\n{log_tail()}")
        time.sleep(0.3)
    raise ServerStartError(f"server not ready at {base_url} after {timeout_s:.0f}s:\n{log_tail()}")


@contextmanager
def start_app_server(
    app_import: str,
    env: dict[str, str] | None = None,
    timeout_s: float = 90.0,
    port: int | None = None,
    workers: int = 1,
    extra_args: Sequence[str] = (),
) -> Iterator[str]:
    """Start ``uvicorn <app_import> --factory`` on 127.0.0.1 and yield its base URL.

    Waits until ``GET /readyz`` answers 200; on exit sends SIGTERM (SIGKILL after 10 s)
    to the server's process group, so no process outlives the caller.

    Args:
        app_import: ``module:factory`` of the app.
        env: extra environment variables (over ``os.environ``).
        timeout_s: how long to wait for readiness.
        port: the port (default: a free one).
        workers: uvicorn worker processes.
        extra_args: more uvicorn command-line arguments.
    """
    port = port or free_port()
    log = Path(tempfile.mkstemp(prefix="server-", suffix=".log")[1])
    cmd = uvicorn_command(app_import, port=port, workers=workers, extra_args=extra_args)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            # WEB_CONCURRENCY: the workers know how many share the cores (keel_service.threads).
            env={**os.environ, "WEB_CONCURRENCY": str(workers), **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base_url, timeout_s, lambda: _tail(log))
        yield base_url
    finally:
        stop_process_group(proc)


def _says_failed(answer: httpx.Response) -> bool:
    try:
        body = answer.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("status") == "failed"


def _tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:]


def stop_process_group(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM the process group of ``proc``, then SIGKILL whatever is left."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
