"""Read labelled texts from CSV / TSV / JSON Lines files and pandas DataFrames.

Every problem is a ``DataError`` naming the file and the 1-based line, so a bad
row in a 10,000-line file is found at once.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.data._texts import LabelledTexts
from keel.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

_CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
_JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}


def load_labelled(
    path: str | Path,
    text_col: str = "text",
    label_col: str = "label",
    *,
    multi_label: bool = False,
    label_sep: str = "|",
    allowed_labels: Iterable[str] | None = None,
) -> LabelledTexts:
    """Load labelled texts from a CSV, TSV or JSON Lines file (chosen by suffix).

    Args:
        path: the file (``.csv``, ``.tsv``, ``.jsonl``/``.ndjson``/``.json`` as JSON Lines).
        text_col: the column (or JSON key) holding the text.
        label_col: the column (or JSON key) holding the label.
        multi_label: read a list of labels per row: a JSON list, or a string split on
            ``label_sep``.
        label_sep: separator of several labels in one CSV cell.
        allowed_labels: if given, any other label is an error.

    Returns:
        The texts and labels, with ``source`` set to the path.

    Raises:
        DataError: the file is missing or unreadable, a column is missing, a text is
            empty, a label is empty or unknown, or a JSON line is malformed. The
            message names the file and the line.
    """
    file = Path(path)
    if not file.is_file():
        raise DataError("file not found", file)
    suffix = file.suffix.lower()
    if suffix in _CSV_SUFFIXES:
        rows: Iterator[tuple[int, dict[str, Any]]] = _csv_rows(file, _CSV_SUFFIXES[suffix])
    elif suffix in _JSONL_SUFFIXES:
        rows = _jsonl_rows(file)
    else:
        raise DataError(f"unsupported file type {suffix!r}: use .csv, .tsv or .jsonl", file)
    allowed = set(allowed_labels) if allowed_labels is not None else None
    texts: list[str] = []
    labels: list[Any] = []
    for line, row in rows:
        text, label = _parse_row(
            row, text_col, label_col, multi_label, label_sep, allowed, str(file), line
        )
        texts.append(text)
        labels.append(label)
    if not texts:
        raise DataError("no data rows", file)
    return LabelledTexts(texts, labels, str(file))


def from_dataframe(
    df: pd.DataFrame,
    text_col: str,
    label_col: str,
    *,
    multi_label: bool = False,
    label_sep: str = "|",
    allowed_labels: Iterable[str] | None = None,
) -> LabelledTexts:
    """Build ``LabelledTexts`` from a pandas DataFrame.

    Errors name ``<dataframe>`` and the row position (1-based, header excluded).

    Raises:
        DataError: a column is missing, a text is empty, a label is empty or unknown.
    """
    where = "<dataframe>"
    for col in (text_col, label_col):
        if col not in df.columns:
            raise DataError(f"missing column {col!r}; columns are {list(df.columns)}", where)
    allowed = set(allowed_labels) if allowed_labels is not None else None
    texts: list[str] = []
    labels: list[Any] = []
    for position, (text_value, label_value) in enumerate(
        zip(df[text_col].tolist(), df[label_col].tolist(), strict=True), start=1
    ):
        row = {text_col: text_value, label_col: label_value}
        text, label = _parse_row(
            row, text_col, label_col, multi_label, label_sep, allowed, where, position
        )
        texts.append(text)
        labels.append(label)
    return LabelledTexts(texts, labels, where)


def _csv_rows(file: Path, delimiter: str) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        handle = file.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise DataError(f"cannot read file: {exc}", file) from exc
    with handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError("empty file: no header row", file, 1) from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataError(f"cannot parse header: {exc}", file, 1) from exc
        header = [h.strip() for h in header]
        start = reader.line_num + 1
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                raise DataError(f"malformed CSV: {exc}", file, start) from exc
            line = start
            start = reader.line_num + 1
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) > len(header):
                raise DataError(
                    f"{len(values)} fields but the header has {len(header)}", file, line
                )
            yield line, dict(zip(header, values, strict=False))


def _jsonl_rows(file: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        handle = file.open(encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(f"cannot read file: {exc}", file) from exc
    with handle:
        line = 0
        while True:
            try:
                raw = handle.readline()
            except UnicodeDecodeError as exc:
                raise DataError(f"not UTF-8: {exc}", file, line + 1) from exc
            if not raw:
                return
            line += 1
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DataError(f"bad JSON: {exc.msg} at column {exc.colno}", file, line) from exc
            if not isinstance(obj, dict):
                raise DataError(f"expected a JSON object, got {type(obj).__name__}", file, line)
            yield line, obj


def _parse_row(
    row: dict[str, Any],
    text_col: str,
    label_col: str,
    multi_label: bool,
    label_sep: str,
    allowed: set[str] | None,
    where: str,
    line: int,
) -> tuple[str, str | list[str]]:
    for col in (text_col, label_col):
        if col not in row:
            raise DataError(f"missing column {col!r}; found {sorted(row)}", where, line)
    text_value = row[text_col]
    if text_value is None or _is_nan(text_value) or not str(text_value).strip():
        raise DataError(f"empty text in column {text_col!r}", where, line)
    text = str(text_value)
    raw_label = row[label_col]
    if raw_label is None or _is_nan(raw_label):
        raise DataError(f"empty label in column {label_col!r}", where, line)
    if multi_label:
        parts = (
            [str(p) for p in raw_label]
            if isinstance(raw_label, list)
            else str(raw_label).split(label_sep)
        )
        label_list = [p.strip() for p in parts if p.strip()]
        if not label_list and not isinstance(raw_label, list):
            raise DataError(f"empty label in column {label_col!r}", where, line)
        for lab in label_list:
            _check_allowed(lab, allowed, label_col, where, line)
        return text, label_list
    if isinstance(raw_label, list | dict):
        raise DataError(
            f"label in column {label_col!r} is a {type(raw_label).__name__}; "
            "pass multi_label=True for lists",
            where,
            line,
        )
    label = str(raw_label).strip()
    if not label:
        raise DataError(f"empty label in column {label_col!r}", where, line)
    _check_allowed(label, allowed, label_col, where, line)
    return text, label


def _check_allowed(
    label: str, allowed: set[str] | None, label_col: str, where: str, line: int
) -> None:
    if allowed is not None and label not in allowed:
        raise DataError(f"unknown label {label!r} in column {label_col!r}", where, line)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value
