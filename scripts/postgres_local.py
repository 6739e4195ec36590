#!/usr/bin/env python3
"""Run a real PostgreSQL server from Debian's ``postgresql`` package, without Docker.

Usage: scripts/postgres-local start|stop|status|url [--dir DIR]

``start`` creates a private cluster (``initdb``, trust authentication for the local
user ``keel``, UTF-8) on first use, starts it on a free port on 127.0.0.1 only, creates
the database ``keel`` and prints its SQLAlchemy URL
(``postgresql+psycopg://keel@127.0.0.1:PORT/keel``) once the server answers.
``stop`` stops it (fast shutdown); ``status`` says whether it runs.

The state (port, data folder, log) lives under ``--dir`` (default ``var/postgres``). As
root, PostgreSQL refuses to run, so the server runs as the package's ``postgres`` user
and its data folder is kept where that user can reach it (``/var/tmp/keel-postgres/``,
one folder per ``--dir``). If ``KEEL_POSTGRES_URL`` is set, ``start`` starts nothing and
prints that URL: everything then uses the external server.
Standard library only, so it runs before the project's virtualenv exists.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO_ROOT / "var" / "postgres"
ROOT_DATA_BASE = Path("/var/tmp/keel-postgres")
DB_USER = "keel"
DB_NAME = "keel"


class PostgresLocalError(RuntimeError):
    """A step failed; the message says which and where the log is."""


def bin_dir() -> Path:
    """The newest installed PostgreSQL server's ``bin`` folder."""
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "postgres").is_file()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not versions:
        raise PostgresLocalError(
            "no PostgreSQL server found under /usr/lib/postgresql; install Debian's "
            "'postgresql' package (scripts/install does: apt-get install postgresql)"
        )
    return versions[-1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_root() -> bool:
    return os.geteuid() == 0


def _run_as() -> list[str]:
    """Prefix that runs a command as the server's user (``postgres`` when we are root)."""
    if not _as_root():
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise PostgresLocalError(
            "running as root needs the 'postgres' user of Debian's postgresql package"
        ) from exc
    return ["runuser", "-u", "postgres", "--"]


def data_dir_for(state_dir: Path) -> Path:
    if not _as_root():
        return state_dir / "data"
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:16]
    return ROOT_DATA_BASE / digest


def _state_file(state_dir: Path) -> Path:
    return state_dir / "postgres.json"


def read_state(state_dir: Path) -> dict[str, object] | None:
    path = _state_file(state_dir)
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def url_of(port: int) -> str:
    return f"postgresql+psycopg://{DB_USER}@127.0.0.1:{port}/{DB_NAME}"


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _check(cmd: list[str], what: str, log: Path | None = None) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        where = f" (log: {log})" if log else ""
        raise PostgresLocalError(f"{what} failed{where}:\n{result.stdout}{result.stderr}")


def _initdb(pg: Path, data: Path) -> None:
    data.mkdir(parents=True, exist_ok=True)
    if _as_root():
        ROOT_DATA_BASE.chmod(0o755)
        shutil.chown(data, "postgres", "postgres")
    data.chmod(0o700)
    _check(
        [
            *_run_as(),
            str(pg / "initdb"),
            "-D",
            str(data),
            "-U",
            DB_USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
        ],
        "initdb",
    )


def _server_on(pg: Path, data: Path) -> bool:
    """Whether ``pg_ctl status`` finds a server running on the data folder."""
    result = subprocess.run(
        [*_run_as(), str(pg / "pg_ctl"), "status", "-D", str(data)],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0


def _stop_orphan(pg: Path, data: Path) -> None:
    """Stop a server still running on ``data`` whose state file is gone or stale.

    A killed test run or a deleted state folder can leave one behind: ``pg_ctl start``
    would then fail on its lock file. Its port is unknown here, so it is stopped and
    started afresh on a new port.
    """
    if not _server_on(pg, data):
        return
    print(f"postgres-local: stopping a server left running on {data}", file=sys.stderr)
    _check(
        [*_run_as(), str(pg / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w"],
        "pg_ctl stop (a server left running)",
    )


def is_running(state_dir: Path) -> bool:
    state = read_state(state_dir)
    if state is None:
        return False
    running = _server_on(bin_dir(), Path(str(state["data_dir"])))
    return running and _port_open(int(state["port"]))  # type: ignore[arg-type]


def start(state_dir: Path, timeout_s: float) -> str:
    """Start (initialising on first use) and return the SQLAlchemy URL."""
    external = os.environ.get("KEEL_POSTGRES_URL")
    if external:
        return external
    state_dir.mkdir(parents=True, exist_ok=True)
    if is_running(state_dir):
        state = read_state(state_dir)
        assert state is not None
        return url_of(int(state["port"]))  # type: ignore[arg-type]
    pg = bin_dir()
    data = data_dir_for(state_dir)
    if not (data / "PG_VERSION").is_file():
        _initdb(pg, data)
    else:
        _stop_orphan(pg, data)
    port = free_port()
    log = data / "server.log"  # inside the data folder: the server's user can write it
    socket_dir = data  # unix socket beside the data, not in /var/run (may not exist)
    _check(
        [
            *_run_as(),
            str(pg / "pg_ctl"),
            "start",
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-t",
            str(int(timeout_s)),
            "-o",
            f"-p {port} -c listen_addresses=127.0.0.1 -k {socket_dir} -c max_connections=200 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
        ],
        "pg_ctl start",
        log,
    )
    deadline = time.monotonic() + timeout_s
    while not _port_open(port):
        if time.monotonic() > deadline:
            raise PostgresLocalError(f"server did not listen on {port}; log: {log}")
        time.sleep(0.2)
    _state_file(state_dir).write_text(
        json.dumps({"port": port, "data_dir": str(data), "log": str(log)})
    )
    _ensure_database(pg, port, socket_dir)
    return url_of(port)


def _ensure_database(pg: Path, port: int, socket_dir: Path) -> None:
    base = [*_run_as(), str(pg / "psql"), "-h", str(socket_dir), "-p", str(port), "-U", DB_USER]
    probe = subprocess.run(
        [*base, "-d", "postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname='{DB_NAME}'"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.stdout.strip() != "1":
        _check([*base, "-d", "postgres", "-c", f"CREATE DATABASE {DB_NAME}"], "CREATE DATABASE")


def stop(state_dir: Path) -> bool:
    """Stop the server (fast shutdown); True if one ran."""
    state = read_state(state_dir)
    if state is None:
        return False
    running = is_running(state_dir)
    if running:
        subprocess.run(
            [
                *_run_as(),
                str(bin_dir() / "pg_ctl"),
                "stop",
                "-D",
                str(state["data_dir"]),
                "-m",
                "fast",
                "-w",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    _state_file(state_dir).unlink(missing_ok=True)
    return running


def destroy(state_dir: Path) -> None:
    """Stop the server and delete its data (for throw-away test clusters)."""
    data = data_dir_for(state_dir)
    stop(state_dir)
    if (data / "PG_VERSION").is_file():  # a server with no state file would outlive its data
        _stop_orphan(bin_dir(), data)
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="postgres-local",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["start", "stop", "status", "url", "destroy"])
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(os.environ.get("KEEL_POSTGRES_DIR", DEFAULT_DIR)),
        help="state folder: port, data location, log (default var/postgres)",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for start")
    args = parser.parse_args(argv)
    state_dir = args.dir.resolve()
    try:
        if args.command == "start":
            print(start(state_dir, args.timeout), flush=True)
        elif args.command == "stop":
            print("stopped" if stop(state_dir) else "not running")
        elif args.command == "destroy":
            destroy(state_dir)
            print("destroyed")
        else:
            if not is_running(state_dir):
                print("not running")
                return 1
            state = read_state(state_dir)
            assert state is not None
            url = url_of(int(state["port"]))  # type: ignore[arg-type]
            print(url if args.command == "url" else f"running {url} data={state['data_dir']}")
    except PostgresLocalError as exc:
        print(f"postgres-local: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
