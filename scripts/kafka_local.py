#!/usr/bin/env python3
"""Run a real single-node Apache Kafka broker (KRaft, broker+controller) without Docker.

Usage: scripts/kafka-local start|stop|status [--dir DIR] [--version V] [--keep]

The first ``start`` fetches Kafka's jars from Maven Central with Maven into a cache
folder (``$KEEL_KAFKA_CACHE`` or ``~/.cache/keel/kafka``); later starts reuse them.
The broker binds to 127.0.0.1 on free ports, its data and PID live under ``--dir``
(default ``var/kafka`` in the repository), and ``start`` prints the bootstrap address
once the broker answers; ``start --keep`` restarts a stopped broker of ``--dir`` on
its data and ports (a broker restart). If ``KAFKA_BOOTSTRAP_SERVERS`` is set, ``start`` starts
nothing and prints that address: everything then uses the external cluster.
Standard library only, so it runs before the project's virtualenv exists.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.25.3"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO_ROOT / "var" / "kafka"
READY_LINE = "Kafka Server started"

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.keel</groupId><artifactId>kafka-local</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId>
      <version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

LOG4J2 = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <File name="file" fileName="${sys:kafka.logs.dir}/server.log">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="file"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="org.apache.kafka.controller" level="INFO"/>
  </Loggers>
</Configuration>
"""


class KafkaLocalError(Exception):
    """A step failed; the message says which and what to do."""


def cache_dir(version: str) -> Path:
    base = os.environ.get("KEEL_KAFKA_CACHE") or str(Path.home() / ".cache" / "keel" / "kafka")
    return Path(base) / version


def fetch_jars(version: str) -> Path:
    """Download Kafka's jars with Maven once; return the folder holding them."""
    libs = cache_dir(version) / "libs"
    marker = libs / ".complete"
    if marker.is_file():
        return libs
    if shutil.which("mvn") is None:
        raise KafkaLocalError("Maven (mvn) is not on PATH: install Maven and Java 17+")
    if shutil.which("java") is None:
        raise KafkaLocalError("java is not on PATH: install Java 17+")
    libs.mkdir(parents=True, exist_ok=True)
    print(
        f"kafka-local: fetching Apache Kafka {version} jars from Maven Central (once)...",
        file=sys.stderr,
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "pom.xml").write_text(POM.format(kafka=version, log4j=LOG4J_VERSION))
        cmd = [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(Path(tmp) / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise KafkaLocalError(
                f"Maven failed to fetch Kafka {version}:\n{proc.stdout}{proc.stderr}"
            )
    marker.write_text(version + "\n")
    return libs


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); read its state to be sure.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    except OSError:
        return True


def read_state(state_dir: Path) -> tuple[int, str] | None:
    pid_file, addr_file = state_dir / "kafka.pid", state_dir / "bootstrap"
    if not pid_file.is_file() or not addr_file.is_file():
        return None
    pid = int(pid_file.read_text().strip())
    if not pid_alive(pid):
        return None
    return pid, addr_file.read_text().strip()


def write_properties(state_dir: Path, port: int, cport: int) -> Path:
    data = state_dir / "data"
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{cport}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
        "message.max.bytes": "2097152",
        "log.retention.hours": "24",
    }
    path = state_dir / "server.properties"
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return path


def _listener_port(props: Path) -> int:
    for line in props.read_text().splitlines():
        if line.startswith("listeners="):
            return int(line.split("PLAINTEXT://127.0.0.1:")[1].split(",")[0])
    raise KafkaLocalError(f"no PLAINTEXT listener in {props}")


def start(state_dir: Path, version: str, timeout_s: float, keep: bool = False) -> str:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        print(f"kafka-local: KAFKA_BOOTSTRAP_SERVERS is set; using {external}", file=sys.stderr)
        return external
    running = read_state(state_dir)
    if running:
        return running[1]
    libs = fetch_jars(version)
    props = state_dir / "server.properties"
    # --keep: restart a stopped broker on its data and ports (a broker restart, not a new one)
    restart = keep and props.is_file() and (state_dir / "data").is_dir()
    if not restart:
        if state_dir.exists():
            shutil.rmtree(state_dir)
        state_dir.mkdir(parents=True)
        port, cport = free_port(), free_port()
        while cport == port:
            cport = free_port()
        props = write_properties(state_dir, port, cport)
        (state_dir / "log4j2.xml").write_text(LOG4J2)
        (state_dir / "logs").mkdir()
    port = _listener_port(props)
    logs = state_dir / "logs"
    if restart:
        (logs / "server.log").unlink(missing_ok=True)  # wait for this run's ready line
    classpath = f"{libs}/*"
    java_opts = [
        "-Xms256m",
        "-Xmx512m",
        "-XX:+UseG1GC",
        "-XX:TieredStopAtLevel=1",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={state_dir / 'log4j2.xml'}",
        f"-Dkafka.logs.dir={logs}",
    ]
    cluster_id = (
        ""
        if restart
        else (
            subprocess.run(
                ["java", "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            or uuid.uuid4().hex[:22]
        )
    )
    fmt = (
        None
        if restart
        else subprocess.run(
            [
                "java",
                *java_opts,
                "-cp",
                classpath,
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                cluster_id,
                "--standalone",
                "-c",
                str(props),
            ],
            capture_output=True,
            text=True,
        )
    )
    if fmt is not None and fmt.returncode != 0:
        raise KafkaLocalError(f"formatting the log directory failed:\n{fmt.stdout}{fmt.stderr}")
    out = open(logs / "stdout.log", "ab")  # noqa: SIM115 - the child keeps the handle
    proc = subprocess.Popen(
        ["java", *java_opts, "-cp", classpath, "kafka.Kafka", str(props)],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=state_dir,
    )
    (state_dir / "kafka.pid").write_text(f"{proc.pid}\n")
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    server_log = logs / "server.log"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (logs / "stdout.log").read_text(errors="replace")[-3000:]
            raise KafkaLocalError(f"the broker exited with code {proc.returncode}:\n{tail}")
        log_text = server_log.read_text(errors="replace") if server_log.is_file() else ""
        if READY_LINE in log_text and _port_open(port):
            (state_dir / "bootstrap").write_text(address + "\n")
            return address
        time.sleep(0.25)
    stop(state_dir)
    raise KafkaLocalError(f"the broker was not ready within {timeout_s:.0f}s; see {logs}")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop(state_dir: Path, grace_s: float = 15.0) -> bool:
    """Stop the broker by its PID (TERM, then KILL after ``grace_s``); True if one ran."""
    pid_file = state_dir / "kafka.pid"
    if not pid_file.is_file():
        return False
    pid = int(pid_file.read_text().strip())
    was_running = pid_alive(pid)
    if was_running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while pid_alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.2)
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            time.sleep(0.2)
        _reap(pid)
    pid_file.unlink(missing_ok=True)
    (state_dir / "bootstrap").unlink(missing_ok=True)
    return was_running


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kafka-local",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["start", "stop", "status", "fetch"])
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(os.environ.get("KEEL_KAFKA_DIR", DEFAULT_DIR)),
        help="state folder: data, logs, PID (default var/kafka)",
    )
    parser.add_argument("--version", default=os.environ.get("KEEL_KAFKA_VERSION", KAFKA_VERSION))
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for readiness"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="start: restart the stopped broker of --dir on its data and ports",
    )
    args = parser.parse_args(argv)
    state_dir = args.dir.resolve()
    try:
        if args.command == "fetch":
            print(fetch_jars(args.version))
        elif args.command == "start":
            print(start(state_dir, args.version, args.timeout, keep=args.keep), flush=True)
        elif args.command == "stop":
            print("stopped" if stop(state_dir) else "not running")
        else:
            state = read_state(state_dir)
            if state is None:
                print("not running")
                return 1
            print(f"running pid={state[0]} bootstrap={state[1]}")
    except KafkaLocalError as exc:
        print(f"kafka-local: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
