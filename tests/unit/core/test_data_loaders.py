"""Loaders: CSV / TSV / JSONL / DataFrame, and an error naming file + line for each bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from keel.data import from_dataframe, load_labelled
from keel.errors import DataError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_loads_texts_and_labels(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", 'text,label\nhello there,greet\n"bye, now",leave\n')
    data = load_labelled(path)
    assert data.texts == ["hello there", "bye, now"]
    assert data.labels == ["greet", "leave"]
    assert data.source == str(path)
    assert data.label_set() == ["greet", "leave"]
    assert not data.multi_label


def test_tsv_and_custom_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "d.tsv", "query\tintent\nhi\tgreet\n")
    data = load_labelled(path, text_col="query", label_col="intent")
    assert data.texts == ["hi"] and data.labels == ["greet"]


def test_jsonl_loads_and_skips_blank_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path / "d.jsonl", '{"text": "a b", "intent": "x"}\n\n{"text": "c", "intent": "y"}\n'
    )
    data = load_labelled(path, label_col="intent")
    assert data.texts == ["a b", "c"] and data.labels == ["x", "y"]


def test_multi_label_from_csv_and_jsonl(tmp_path: Path) -> None:
    csv_path = write(tmp_path / "m.csv", "text,label\nt1,a|b\nt2,b\n")
    data = load_labelled(csv_path, multi_label=True)
    assert data.labels == [["a", "b"], ["b"]]
    assert data.multi_label
    jsonl_path = write(tmp_path / "m.jsonl", json.dumps({"text": "t", "label": ["a", "c"]}) + "\n")
    assert load_labelled(jsonl_path, multi_label=True).labels == [["a", "c"]]


def test_missing_column_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "text,category\nhi,greet\n")
    with pytest.raises(DataError) as info:
        load_labelled(path)
    assert info.value.line == 2
    assert str(path) in str(info.value) and ":2:" in str(info.value)
    assert "missing column 'label'" in str(info.value)


def test_empty_text_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "text,label\nok,a\nfine,b\n   ,a\n")
    with pytest.raises(DataError) as info:
        load_labelled(path)
    assert (info.value.path, info.value.line) == (str(path), 4)
    assert "empty text" in str(info.value)


def test_empty_text_line_counts_multiline_quoted_cells(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", 'text,label\n"two\nlines",a\n"",b\n')
    with pytest.raises(DataError) as info:
        load_labelled(path)
    assert info.value.line == 4


def test_unknown_label_names_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "d.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": "zz"}\n'
    )
    with pytest.raises(DataError) as info:
        load_labelled(path, allowed_labels=["x", "y"])
    assert (info.value.path, info.value.line) == (str(path), 2)
    assert "unknown label 'zz'" in str(info.value)


def test_bad_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": \n')
    with pytest.raises(DataError) as info:
        load_labelled(path)
    assert (info.value.path, info.value.line) == (str(path), 2)
    assert "bad JSON" in str(info.value)


def test_json_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '["text", "label"]\n')
    with pytest.raises(DataError, match=r"d\.jsonl:1: expected a JSON object"):
        load_labelled(path)


def test_empty_label_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "text,label\nhello,\n")
    with pytest.raises(DataError, match=r"d\.csv:2: empty label"):
        load_labelled(path)


def test_missing_file_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        load_labelled(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="unsupported file type"):
        load_labelled(write(tmp_path / "d.xml", "<x/>"))


def test_header_only_file_has_no_rows(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no data rows"):
        load_labelled(write(tmp_path / "d.csv", "text,label\n"))


def test_from_dataframe_and_its_errors() -> None:
    df = pd.DataFrame({"t": ["a", "b"], "y": [1, 2]})
    data = from_dataframe(df, "t", "y")
    assert data.labels == ["1", "2"]
    with pytest.raises(DataError, match="missing column 'label'"):
        from_dataframe(df, "t", "label")
    bad = pd.DataFrame({"t": ["a", None], "y": ["x", "y"]})
    with pytest.raises(DataError) as info:
        from_dataframe(bad, "t", "y")
    assert info.value.line == 2 and "empty text" in str(info.value)
