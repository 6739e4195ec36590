"""Data loading errors, splits, negative sampling, metrics, popularity windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recommender.datasets import Interaction, load_catalogue, load_demo, load_interactions
from recommender.errors import DataFormatError
from recommender.evaluation import sampled_rank_metrics
from recommender.splits import next_item_pairs, sampled_cases, temporal_split
from recommender.stats import ItemStats


def test_demo_data_loads() -> None:
    data = load_demo()
    assert len(data.items) >= 300
    assert len(data.users) >= 30
    ids = {i.id for i in data.items}
    assert all(r.item_id in ids for r in data.interactions)


def test_bad_number_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text("user_id,item_id,rating,timestamp\n1,2,5,100\n1,3,five,101\n")
    with pytest.raises(DataFormatError) as err:
        load_interactions(path)
    assert err.value.line == 3
    assert "ratings.csv:3" in str(err.value) and "'five'" in str(err.value)


def test_missing_column_and_duplicate_item(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("item_id,name\n1,x\n")
    with pytest.raises(DataFormatError, match="missing column"):
        load_catalogue(path)
    path.write_text("item_id,title\n1,x\n1,y\n")
    with pytest.raises(DataFormatError, match=r"items.csv:3: duplicate item_id"):
        load_catalogue(path)


def log(user: str, items: list[str], start: int = 0) -> list[Interaction]:
    return [Interaction(user, it, 5.0, float(start + k)) for k, it in enumerate(items)]


def test_temporal_split_holds_back_latest() -> None:
    rows = log("u", [f"i{k}" for k in range(20)])
    head, tail = temporal_split(rows, 0.1)
    assert [r.item_id for r in tail] == ["i18", "i19"]
    assert len(head) == 18


def test_sampled_cases_never_use_seen_items_and_repeat() -> None:
    hist = log("u", ["a", "b", "c"])
    target = log("u", ["d"], start=10)
    universe = [chr(ord("a") + k) for k in range(26)]
    cases = sampled_cases(hist, target, universe, negatives=5, seed=1)
    assert len(cases) == 1
    case = cases[0]
    assert case.candidates[0] == "d" and case.labels.tolist() == [1, 0, 0, 0, 0, 0]
    assert not set(case.candidates[1:]) & {"a", "b", "c", "d"}
    assert case.as_of == 2.0
    again = sampled_cases(hist, target, universe, negatives=5, seed=1)
    assert again[0].candidates == case.candidates


def test_next_item_pairs_follow_the_history() -> None:
    from recommender.datasets import Item

    items = {k: Item(k, f"title {k}") for k in "abc"}
    pairs = next_item_pairs(log("u", ["a", "b", "c"]), items, window=1)
    assert sorted(pairs) == [("title a", "title b"), ("title b", "title c")]


def test_sampled_rank_metrics() -> None:
    labels = np.array([1.0, 0, 0, 0])
    best = sampled_rank_metrics(np.array([9.0, 1, 2, 3]), labels, k=2)
    assert best == {"hr_at_2": 1.0, "ndcg_at_2": 1.0, "auc": 1.0}
    worst = sampled_rank_metrics(np.array([0.0, 1, 2, 3]), labels, k=2)
    assert worst["hr_at_2"] == 0.0 and worst["auc"] == 0.0
    ties = sampled_rank_metrics(np.zeros(4), labels, k=2)
    assert ties["auc"] == 0.5 and ties["hr_at_2"] == 1.0  # expected rank 1.5 < 2
    assert ties["ndcg_at_2"] < 1.0


def test_window_counts_and_popularity() -> None:
    day = 86_400.0
    stats = ItemStats.from_interactions([0, 0, 1], [0.0, 10 * day, 10 * day], 3, window_days=5)
    assert stats.window_counts(np.array([0, 1, 2, -1]), 10 * day).tolist() == [1, 1, 0, 0]
    pop = stats.popularity(np.array([0, 1, 2, -1]))
    assert pop[0] == 1.0 and 0 < pop[1] < 1 and pop[2] == 0 and pop[3] == 0
    stats.record(2, 10 * day)
    assert stats.counts[2] == 1


def test_cli_reports_bad_data_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from recommender.cli import main

    (tmp_path / "items.csv").write_text("item_id,title,release_year,genres\n1,A,1995,Drama\n")
    (tmp_path / "train_ratings.csv").write_text("user_id,item_id,rating,timestamp\n1,1,x,5\n")
    assert main(["train", "--data-dir", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "train_ratings.csv:2" in err and "'rating'" in err
