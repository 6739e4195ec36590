"""Choices the bench suites make from measured rows (issue 17)."""

from __future__ import annotations

import pytest

from bench.suites.core_serving import choose_student
from bench.suites.finance import _stage_profile


def _row(accuracy: float, drop: float, speedup: float) -> dict[str, float]:
    return {"accuracy": accuracy, "accuracy_drop_points": drop, "speedup": speedup}


def test_the_reported_student_is_the_fastest_within_the_bound_with_at_most_three_layers() -> None:
    rows = {
        "fp32": _row(0.917, 0.0, 1.0),
        "student-L1+onnx-int8+refit": _row(0.890, 2.7, 14.0),  # too inaccurate
        "student-L2+onnx-int8+refit": _row(0.910, 0.7, 8.5),
        "student-L3+onnx-int8+refit": _row(0.920, -0.3, 5.9),
        "student-L4+onnx-int8+refit": _row(0.921, -0.4, 4.0),  # more than 3 layers
        "student-L2+onnx-int8": _row(0.911, 0.6, 9.9),  # not a re-fitted candidate
    }
    name, figures = choose_student(rows, (1, 2, 3, 4))
    assert name == "student-L2+onnx-int8+refit"
    assert set(figures) == {f"student-L{k}+onnx-int8+refit" for k in (1, 2, 3)}


def test_without_a_student_in_bounds_the_most_accurate_is_reported() -> None:
    rows = {
        "student-L1+onnx-int8+refit": _row(0.85, 6.7, 14.0),
        "student-L2+onnx-int8+refit": _row(0.89, 2.7, 8.0),
    }
    assert choose_student(rows, (1, 2))[0] == "student-L2+onnx-int8+refit"
    with pytest.raises(ValueError):
        choose_student(rows, (4,))


def test_stage_profile_gives_seconds_and_shares_between_snapshots() -> None:
    profile = _stage_profile({"poll": 1.0, "score": 2.0}, {"poll": 2.0, "score": 5.0})
    assert profile == {
        "poll": {"seconds": 1.0, "share": 0.25},
        "score": {"seconds": 3.0, "share": 0.75},
    }
