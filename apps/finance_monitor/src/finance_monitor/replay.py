"""Replay producer: turns bundled demo headlines or a CSV/JSONL file into raw messages.

Event times (``published_at``) advance by ``time_scale / rate`` seconds per message,
so with the default time scale a 60 s window fills in 6 s of wall time. A negative
surge can be injected for one topic: demo streams switch that topic's sentiment mix
to mostly negative for ``surge_duration_s`` of event time; file streams get extra
negative demo headlines of that topic interleaved.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finance_monitor.errors import FinanceMonitorError
from finance_monitor.model_prep import load_demo_headlines


class ReplayInputError(FinanceMonitorError, ValueError):
    """A replay file row is unusable; names the file and the line."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        self.path, self.line, self.reason = path, line, reason
        super().__init__(f"{path}:{line}: {reason}")


@dataclass(frozen=True)
class ReplayItem:
    """A raw message to send, with the ground truth the benchmarks need."""

    message: dict[str, Any]
    topic: str | None
    sentiment: str | None
    in_surge: bool


@dataclass(frozen=True)
class SurgePlan:
    """Which topic surges, when (event seconds after the stream start) and how strongly."""

    topic: str
    start_s: float
    duration_s: float
    negative_share: float = 0.85

    def active(self, offset_s: float) -> bool:
        """Whether ``offset_s`` (event time since the stream start) is inside the surge."""
        return self.start_s <= offset_s < self.start_s + self.duration_s


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def demo_topics() -> list[str]:
    """Topics of the bundled headlines."""
    return sorted({h["topic"] for h in load_demo_headlines()})


def check_surge_topic(topic: str) -> None:
    """Raise ``FinanceMonitorError`` naming the choices when ``topic`` is not a demo topic."""
    topics = demo_topics()
    if topic not in topics:
        raise FinanceMonitorError(f"--surge-topic {topic!r}: choose one of {topics}")


def demo_stream(
    *,
    start: float,
    spacing_s: float,
    count: int | None = None,
    surge: SurgePlan | None = None,
    base_negative: float = 0.15,
    base_positive: float = 0.35,
    topics: list[str] | None = None,
    seed: int = 13,
    run_id: str = "demo",
    chinese_share: float = 0.0,
) -> Iterator[ReplayItem]:
    """Endless (or ``count``-long) stream of demo headlines with a controlled sentiment mix.

    Each message picks a topic uniformly (from ``topics`` or every demo topic), then a
    sentiment (``base_negative`` / ``base_positive`` / rest neutral; inside the surge the
    surge topic's negative share is ``surge.negative_share``), then a headline of that
    topic and sentiment: with probability ``chinese_share`` a Chinese one
    (``demo_data/headlines_zh.jsonl``, ``lang: zh``), else an English one.
    """
    if surge is not None:
        check_surge_topic(surge.topic)
    if not 0.0 <= chinese_share <= 1.0:
        raise FinanceMonitorError(f"chinese_share={chinese_share!r}: must be in [0, 1]")
    rng = random.Random(seed)
    pools: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for h in load_demo_headlines():
        pools.setdefault((h["topic"], h["sentiment"]), []).append(h)
    zh_pools: dict[tuple[str, str], list[dict[str, Any]]] = {}
    if chinese_share > 0:
        from finance_monitor.chinese import load_demo_headlines_zh

        for h in load_demo_headlines_zh():
            zh_pools.setdefault((h["topic"], h["sentiment"]), []).append(h)
    chosen = sorted(topics) if topics else sorted({t for t, _ in pools})
    i = 0
    while count is None or i < count:
        offset = i * spacing_s
        topic = chosen[rng.randrange(len(chosen))]
        in_surge = surge is not None and topic == surge.topic and surge.active(offset)
        negative = surge.negative_share if (in_surge and surge is not None) else base_negative
        positive = (1 - negative) * base_positive / (1 - base_negative)
        u = rng.random()
        sentiment = (
            "negative" if u < negative else "positive" if u < negative + positive else "neutral"
        )
        pool = pools.get((topic, sentiment)) or [
            h for (t, _), hs in pools.items() if t == topic for h in hs
        ]
        lang = "en"
        # Only a mixed stream draws this number: English-only streams stay as they were.
        if chinese_share > 0 and rng.random() < chinese_share and (topic, sentiment) in zh_pools:
            pool, lang = zh_pools[(topic, sentiment)], "zh"
        headline = pool[rng.randrange(len(pool))]
        message = {
            "id": f"{run_id}-{i}",
            "published_at": _iso(start + offset),
            "source": "demo-replay",
            "text": headline["text"],
            "tickers": headline["tickers"],
            "lang": lang,
        }
        yield ReplayItem(message, topic, sentiment, in_surge)
        i += 1


def read_replay_file(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV (header row) or JSONL file; each needs a non-empty ``text``.

    Optional fields: ``id``, ``title``, ``source``, ``tickers`` (list, or ``|``-separated
    in CSV), ``lang``, ``published_at`` (ignored: replay assigns event times).

    Raises:
        ReplayInputError: unreadable file or row, naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise ReplayInputError(path, 0, "file not found")
    rows: list[tuple[int, dict[str, Any]]] = []
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReplayInputError(path, number, f"invalid JSON: {exc.msg}") from exc
            if not isinstance(row, dict):
                raise ReplayInputError(path, number, "expected a JSON object")
            rows.append((number, row))
    elif path.suffix.lower() in (".csv", ".tsv"):
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(
                handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ","
            )
            if not reader.fieldnames or "text" not in reader.fieldnames:
                raise ReplayInputError(path, 1, f"header has no 'text' column: {reader.fieldnames}")
            for number, row in enumerate(reader, start=2):
                tickers = row.get("tickers") or ""
                rows.append((number, {**row, "tickers": [t for t in tickers.split("|") if t]}))
    else:
        raise ReplayInputError(path, 0, "unsupported file type: use .csv, .tsv or .jsonl")
    out = []
    for number, row in rows:
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ReplayInputError(path, number, "'text' is missing or empty")
        tickers = row.get("tickers") or []
        if not isinstance(tickers, list) or not all(isinstance(t, str) for t in tickers):
            raise ReplayInputError(path, number, "'tickers' must be a list of strings")
        out.append({"line": number, **row, "tickers": tickers})
    if not out:
        raise ReplayInputError(path, 0, "no rows")
    return out


def file_stream(
    rows: list[dict[str, Any]],
    *,
    start: float,
    spacing_s: float,
    count: int | None = None,
    surge: SurgePlan | None = None,
    seed: int = 13,
    run_id: str = "file",
    loop: bool = False,
) -> Iterator[ReplayItem]:
    """Messages from file rows (in order, optionally looping); surge headlines interleaved."""
    rng = random.Random(seed)
    negatives = []
    if surge is not None:
        check_surge_topic(surge.topic)
        negatives = [
            h
            for h in load_demo_headlines()
            if h["topic"] == surge.topic and h["sentiment"] == "negative"
        ]
    i = 0
    n = 0
    while count is None or i < count:
        offset = i * spacing_s
        if surge is not None and surge.active(offset) and rng.random() < 0.5:
            h = negatives[rng.randrange(len(negatives))]
            message = {"id": f"{run_id}-surge-{i}", "text": h["text"], "tickers": h["tickers"]}
            truth: tuple[str | None, str | None, bool] = (surge.topic, "negative", True)
        else:
            if n >= len(rows):
                if not loop:
                    return
                n = 0
            row = rows[n]
            n += 1
            message = {
                "id": str(row.get("id") or f"{run_id}-{row['line']}-{i}"),
                "text": row["text"],
                "tickers": row["tickers"],
            }
            for key in ("title", "lang"):
                if row.get(key):
                    message[key] = row[key]
            truth = (row.get("topic"), row.get("sentiment"), False)
        message["published_at"] = _iso(start + offset)
        message["source"] = "replay-file"
        yield ReplayItem(message, *truth)
        i += 1


def send_stream(
    producer: Any,
    topic: str,
    items: Iterable[ReplayItem],
    rate: float,
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """Produce items to ``topic`` at ``rate`` messages/s (wall clock); returns the count.

    Keys are message ids; each record's Kafka timestamp is its send time (used by the
    latency benchmark).
    """
    if rate <= 0:
        raise FinanceMonitorError(f"rate={rate!r}: must be positive")
    started = time.perf_counter()
    sent = 0
    for item in items:
        due = started + sent / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        producer.send(
            topic, key=str(item.message["id"]).encode(), value=json.dumps(item.message).encode()
        )
        sent += 1
        if on_sent is not None:
            on_sent(sent)
    producer.flush(timeout=60)
    return sent


def parse_rate(text: str) -> float:
    """``"200"``, ``"200/s"`` -> 200.0 (messages per second)."""
    value = text.strip().lower().removesuffix("/s")
    try:
        rate = float(value)
    except ValueError:
        raise FinanceMonitorError(
            f"--rate {text!r}: expected a number of messages per second, e.g. 200/s"
        ) from None
    if rate <= 0:
        raise FinanceMonitorError(f"--rate {text!r}: must be positive")
    return rate
