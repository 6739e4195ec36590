"""Replay inputs: file parsing errors name file and line; demo streams inject the surge."""

from __future__ import annotations

from pathlib import Path

import pytest

from finance_monitor.errors import FinanceMonitorError
from finance_monitor.messages import parse_raw_message
from finance_monitor.replay import (
    ReplayInputError,
    SurgePlan,
    demo_stream,
    file_stream,
    parse_rate,
    read_replay_file,
)


def test_csv_and_jsonl_files_are_read(tmp_path: Path) -> None:
    csv_file = tmp_path / "in.csv"
    csv_file.write_text("text,tickers\nOil slumps,NWE|BWU\nFlat day,\n")
    rows = read_replay_file(csv_file)
    assert [r["tickers"] for r in rows] == [["NWE", "BWU"], []]
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text('{"text": "a"}\n\n{"text": "b", "id": "x"}\n')
    items = list(file_stream(read_replay_file(jsonl), start=0.0, spacing_s=1.0))
    assert [i.message["id"] for i in items][1] == "x"
    assert items[1].message["published_at"] == "1970-01-01T00:00:01Z"
    for item in items:  # what replay sends passes the scorer's validation
        parse_raw_message(__import__("json").dumps(item.message).encode(), max_text_chars=1000)


@pytest.mark.parametrize(
    ("name", "content", "where"),
    [
        ("bad.jsonl", '{"text": "ok"}\n{broken\n', ":2: invalid JSON"),
        ("empty.jsonl", '{"text": "ok"}\n{"text": ""}\n', ":2: 'text' is missing or empty"),
        ("nocol.csv", "headline\nx\n", ":1: header has no 'text' column"),
        ("x.txt", "text\n", "unsupported file type"),
    ],
)
def test_bad_files_name_the_file_and_line(
    tmp_path: Path, name: str, content: str, where: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ReplayInputError) as info:
        read_replay_file(path)
    assert str(path) in str(info.value) and where in str(info.value)


def test_demo_stream_surge_turns_the_topic_negative_only_inside_the_surge() -> None:
    plan = SurgePlan("Earnings", start_s=100, duration_s=100)
    items = list(demo_stream(start=0, spacing_s=0.1, count=3000, surge=plan))
    inside = [i for i in items if i.in_surge]
    before = [i for i in items if i.topic == "Earnings" and not i.in_surge]
    assert inside and all(i.topic == "Earnings" for i in inside)
    share = sum(i.sentiment == "negative" for i in inside) / len(inside)
    base = sum(i.sentiment == "negative" for i in before) / len(before)
    assert share > 0.7 and base < 0.3
    assert len({i.message["id"] for i in items}) == 3000


def test_unknown_surge_topic_and_bad_rate_are_clear_errors() -> None:
    with pytest.raises(FinanceMonitorError, match="choose one of"):
        next(demo_stream(start=0, spacing_s=1, surge=SurgePlan("Weather", 0, 10)))
    assert parse_rate("200/s") == 200.0
    with pytest.raises(FinanceMonitorError, match="--rate"):
        parse_rate("fast")
