"""The finance throughput suite's feed process: its line protocol (fake producer)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from bench import kafka_feed


class _Future:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def get(self, timeout: float) -> None:
        if self.error is not None:
            raise self.error


class _Producer:
    def __init__(self, fail_on: str | None = None) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.fail_on = fail_on
        self.closed = False

    def send(self, topic: str, key: bytes, value: bytes) -> _Future:
        self.sent.append((topic, key, value))
        failed = self.fail_on is not None and key == self.fail_on.encode()
        return _Future(RuntimeError("not acknowledged") if failed else None)

    def flush(self, timeout: float) -> None:
        pass

    def close(self, timeout: float) -> None:
        self.closed = True


def _serve(monkeypatch: pytest.MonkeyPatch, producer: _Producer, windows: list[Any]) -> list[str]:
    import finance_monitor.kafka_io as kafka_io

    monkeypatch.setattr(kafka_io, "make_producer", lambda bootstrap: producer)
    lines = io.StringIO("".join(json.dumps(w) + "\n" for w in windows))
    out = io.StringIO()
    kafka_feed.serve("broker:9092", "raw", lines, out)
    return out.getvalue().splitlines()


def test_each_window_is_sent_keyed_by_id_and_answered_with_its_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer = _Producer()
    windows = [[{"id": "a", "text": "x"}, {"id": "b", "text": "y"}], [{"id": "c", "text": "z"}]]
    assert _serve(monkeypatch, producer, windows) == ["ready", "ok 2", "ok 1"]
    assert [(t, k) for t, k, _v in producer.sent] == [("raw", b"a"), ("raw", b"b"), ("raw", b"c")]
    assert json.loads(producer.sent[2][2]) == {"id": "c", "text": "z"}
    assert producer.closed


def test_a_window_the_broker_refuses_is_answered_with_an_error_not_ok(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer = _Producer(fail_on="b")
    windows = [[{"id": "a"}, {"id": "b"}], [{"id": "c"}]]
    assert _serve(monkeypatch, producer, windows) == ["ready", "error RuntimeError", "ok 1"]
