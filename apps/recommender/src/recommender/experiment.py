"""One offline experiment: train on the earlier interactions, evaluate every method on
the later ones, in the same run (used by ``recommender train`` and the bench suite)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recommender.artifacts import save_signals
from recommender.datasets import Interaction, Item
from recommender.evaluation import METHODS, evaluate_methods
from recommender.training import TrainConfig, TrainedRecommender, train_recommender

BASELINES = ("popularity", "itemknn", "semantic")


@dataclass
class ExperimentResult:
    """Metrics of every method plus the headline numbers."""

    metrics: dict[str, float]
    trained: TrainedRecommender
    seconds: float

    def headline(self) -> dict[str, float]:
        """``blend.*``, ``best_baseline.ndcg_at_10`` and ``lift`` (relative)."""
        m = self.metrics
        best = max(BASELINES, key=lambda b: m[f"{b}.ndcg_at_10"])
        base = m[f"{best}.ndcg_at_10"]
        return {
            "blend.ndcg_at_10": m["blend.ndcg_at_10"],
            "blend.hr_at_10": m["blend.hr_at_10"],
            "blend.auc": m["blend.auc"],
            "best_baseline.ndcg_at_10": base,
            "lift": (m["blend.ndcg_at_10"] / base - 1.0) if base > 0 else 0.0,
        }

    def best_baseline(self) -> str:
        """Name of the baseline with the highest nDCG@10."""
        return max(BASELINES, key=lambda b: self.metrics[f"{b}.ndcg_at_10"])


def run_experiment(
    items: list[Item],
    train_log: list[Interaction],
    test_log: list[Interaction],
    work_dir: Path,
    config: TrainConfig,
    negatives: int = 99,
    save_to: Path | None = None,
    compress: Callable[[Path | str], tuple[Path | str, str]] | None = None,
) -> ExperimentResult:
    """Train on ``train_log``, then score popularity, item-kNN, semantic-only and the blend
    on the same "1 positive vs ``negatives`` unseen" cases built from ``test_log``.

    Args:
        items: the catalogue.
        train_log: interactions to learn from (histories come from here too).
        test_log: later interactions; each user's first positive is the target.
        work_dir: scratch folder for the encoder artifact.
        config: training options (seed also fixes the negative sampling).
        negatives: sampled unseen items per positive.
        save_to: when given, the learned signals are written there (the encoder is in
            ``work_dir/encoder``).
        compress: the fine-tuned encoder's serving form (``train_recommender``'s
            ``compress``), e.g. the static table ``prepare`` would serve.
    """
    started = time.perf_counter()
    trained = train_recommender(items, train_log, work_dir, config, compress=compress)
    metrics = evaluate_methods(
        trained.snapshot,
        trained.signals,
        train_log,
        test_log,
        negatives=negatives,
        seed=config.seed,
        show_progress=config.show_progress,
    )
    if save_to is not None:
        save_signals(trained.signals, save_to)
    return ExperimentResult(metrics, trained, time.perf_counter() - started)


def metrics_table(metrics: dict[str, Any]) -> str:
    """Plain-text table: method x (HR@10, nDCG@10, AUC)."""
    lines = [f"{'method':12s} {'HR@10':>8s} {'nDCG@10':>8s} {'AUC':>8s}"]
    for method in METHODS:
        lines.append(
            f"{method:12s} {metrics[f'{method}.hr_at_10']:8.4f} "
            f"{metrics[f'{method}.ndcg_at_10']:8.4f} {metrics[f'{method}.auc']:8.4f}"
        )
    return "\n".join(lines)
