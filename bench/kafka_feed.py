"""A Kafka load generator in its own process, for the finance throughput suite.

``finance-throughput`` times a ``ScorerWorker`` that runs in the bench process (the suite
reads its stage profile and cache counters). A producer thread in that same process
shares the scorer's interpreter lock. On the 2-core AVX2 EPYC (2026-12-02) the demo
stream measured 1,529 msgs/s that way (per message: parse 82 us, records 350 us), and
the same scorer draining 8,000 messages produced beforehand 2,253-2,564 msgs/s (parse
32-37 us, records 249-286 us). An upstream system is another process (usually another
host), so the feed runs here, as a child process; it still shares the machine's cores.

Protocol (one line each way per window): the parent writes a JSON array of raw message
objects; the child sends each to the topic (key: the message id), flushes with
``acks=all`` and answers ``ok <count>``, or ``error <reason>`` if the broker refused
them. The child says ``ready`` once its producer is connected; EOF on stdin ends it.

Run directly: ``python -m bench.kafka_feed BOOTSTRAP TOPIC``.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
from typing import IO, Any

from bench.harness import REPO_ROOT, BenchError

#: Seconds a window may take to be acknowledged (generous: CI machines are loaded).
FLUSH_TIMEOUT_S = 300.0
#: Seconds the child may take to import the Kafka client and connect.
START_TIMEOUT_S = 120.0


class FeedProcess:
    """The parent's handle on a feed child process (a context manager).

    Args:
        bootstrap: the broker's ``host:port``.
        topic: the raw topic the messages go to.
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._proc: subprocess.Popen[str] | None = None
        self._pending = 0

    def __enter__(self) -> FeedProcess:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.kafka_feed", self.bootstrap, self.topic],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            reply = self._reply(START_TIMEOUT_S)
            if reply != "ready":
                raise BenchError(f"the feed process did not start: {reply!r}")
        except BaseException:  # no __exit__ follows a failed __enter__: end the child here
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, messages: list[dict[str, Any]]) -> None:
        """Hand the child one window of messages; returns at once (see ``finish``)."""
        proc = self._running()
        if self._pending:
            raise BenchError("the feed process is still sending the previous window")
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(messages) + "\n")
        proc.stdin.flush()
        self._pending = len(messages)

    def finish(self, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        """Wait until the child has sent and flushed the window ``start`` gave it."""
        expected, self._pending = self._pending, 0
        reply = self._reply(timeout_s)
        if reply != f"ok {expected}":
            raise BenchError(f"the feed process answered {reply!r}, not 'ok {expected}'")

    def close(self) -> None:
        """End the child (EOF on its stdin; killed if it does not exit)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()

    def _running(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            raise BenchError("the feed process is not running")
        return self._proc

    def _reply(self, timeout_s: float) -> str:
        proc = self._running()
        assert proc.stdout is not None
        ready, _w, _x = select.select([proc.stdout], [], [], timeout_s)
        if not ready:
            raise BenchError(f"the feed process did not answer within {timeout_s:g} s")
        return proc.stdout.readline().strip()


def send_messages(producer: Any, topic: str, messages: list[dict[str, Any]]) -> list[Any]:
    """Send raw messages (JSON, keyed by their id) without waiting; returns the futures."""
    return [
        producer.send(topic, key=m["id"].encode(), value=json.dumps(m).encode()) for m in messages
    ]


def serve(bootstrap: str, topic: str, lines: IO[str], out: IO[str]) -> None:
    """The child's loop: one window per input line, one answer line per window."""
    from finance_monitor.kafka_io import make_producer

    producer = make_producer(bootstrap)
    try:
        print("ready", file=out, flush=True)
        for line in lines:
            messages = json.loads(line)
            futures = send_messages(producer, topic, messages)
            producer.flush(timeout=FLUSH_TIMEOUT_S)
            try:
                for future in futures:
                    future.get(timeout=FLUSH_TIMEOUT_S)
            except Exception as exc:  # the parent reports it; the window failed
                print(f"error {type(exc).__name__}", file=out, flush=True)
                continue
            print(f"ok {len(messages)}", file=out, flush=True)
    finally:
        producer.close(timeout=10)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bench.kafka_feed BOOTSTRAP TOPIC", file=sys.stderr)
        return 2
    try:
        serve(argv[0], argv[1], sys.stdin, sys.stdout)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
