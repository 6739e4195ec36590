"""The static-embedding encoder ``prepare`` may serve instead of the transformer.

A model2vec table is distilled from the fine-tuned encoder and trained
(``keel.compression.train_static``): regression of each catalogue document's static
embedding to the fine-tuned encoder's, then in-batch-negative training on the
(history item -> next item) pairs of the older part of the log (the pairs the encoder
was fine-tuned on), the regression kept as an anchor; 256 dimensions, SIF ``1e-4``. It
embeds 100 texts in a few milliseconds where the transformer takes hundreds.

Which encoder serves is decided on a validation split (``static_encoder`` setting):
both candidates' catalogue vectors get a blend fitted on the older part of the log and
are scored on its newest part (``temporal_split(log, holdout_fraction)``, the part the
encoder and the table never trained on) with :func:`recommender.evaluation.evaluate_methods`;
the lift is the blend's nDCG@10 over the best of popularity and item-kNN. ``auto``
serves the table when its lift is at least :data:`STATIC_MIN_LIFT` and there are at
least :data:`MIN_VALIDATION_CASES` validation cases (fewer cannot tell a 10% lift from
noise); ``on`` always serves it, ``off`` never trains it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recommender.catalogue import CatalogueSnapshot
from recommender.datasets import Interaction, Item
from recommender.evaluation import evaluate_methods
from recommender.splits import next_item_pairs, sampled_cases, temporal_split
from recommender.training import TrainConfig, embed_catalogue, fit_blend, learn_signals

log = logging.getLogger(__name__)

#: ``auto`` serves the table when its validation lift reaches this (issue 17's bar).
STATIC_MIN_LIFT = 0.10
#: ``auto`` keeps the transformer with fewer validation cases than this.
MIN_VALIDATION_CASES = 200
#: Bump when the table's recipe changes (it is part of the prepare fingerprint).
STATIC_RECIPE = "s1"


@dataclass
class EncoderChoice:
    """Which encoder ``prepare`` serves and why (written to the manifest)."""

    served: str  # "static" or "transformer"
    setting: str
    reason: str
    static_model: str | None = None
    lifts: dict[str, float | None] = field(default_factory=dict)
    validation_cases: int = 0
    static_train_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "served": self.served,
            "setting": self.setting,
            "reason": self.reason,
            "validation_lift": self.lifts,
            "validation_cases": self.validation_cases,
            "static_train_s": self.static_train_s,
        }


def validation_lift(
    items: list[Item],
    vectors: np.ndarray,
    older: list[Interaction],
    newer: list[Interaction],
    config: TrainConfig,
) -> tuple[float | None, dict[str, float]]:
    """The blend's nDCG@10 lift over the best baseline on ``newer`` (the blend fitted and
    the signals learnt on ``older``); None without cases or with a zero baseline."""
    snapshot = CatalogueSnapshot.build(items, vectors)
    blend = fit_blend(snapshot, older, config)
    signals = learn_signals(snapshot, older, blend)
    metrics = evaluate_methods(
        snapshot, signals, older, newer, seed=config.seed, show_progress=False
    )
    if not metrics.get("cases"):
        return None, metrics
    best = max(metrics["popularity.ndcg_at_10"], metrics["itemknn.ndcg_at_10"])
    if best <= 0:
        return None, metrics
    return float(metrics["blend.ndcg_at_10"] / best - 1), metrics


def choose_encoder_form(
    encoder: Path | str,
    transformer: Path | str,
    out_dir: Path,
    setting: str,
    items: list[Item],
    log_rows: list[Interaction],
    config: TrainConfig,
    predictor_threads: int | None = None,
) -> tuple[Path | str, EncoderChoice]:
    """The served model: ``transformer`` (the fine-tuned encoder's serving form) or a
    static table trained from ``encoder`` into ``out_dir`` (see the module docstring)."""
    if setting == "off":
        return transformer, EncoderChoice("transformer", setting, "static_encoder=off")
    if not isinstance(encoder, Path):
        return transformer, EncoderChoice(
            "transformer", setting, "no fine-tuned encoder to train a static table from"
        )
    older, newer = temporal_split(log_rows, config.holdout_fraction)
    ids = [it.id for it in items]
    cases = len(sampled_cases(older, newer, ids, negatives=99, seed=config.seed))
    if setting == "auto" and cases < MIN_VALIDATION_CASES:
        return transformer, EncoderChoice(
            "transformer",
            setting,
            f"{cases} validation cases < {MIN_VALIDATION_CASES}: too few to choose on",
            validation_cases=cases,
        )
    import tempfile
    import time

    from keel.compression import StaticTrainConfig, train_static
    from keel.inference import load_predictor

    documents = [it.document for it in items]
    row = {doc: i for i, doc in enumerate(documents)}
    by_id = {it.id: it for it in items}
    pairs = [
        (row[a], row[b])
        for a, b in next_item_pairs(older, by_id, max_pairs=None, seed=config.seed)
        if a in row and b in row
    ]
    clock = time.perf_counter()
    fp32 = embed_catalogue(load_predictor(encoder, num_threads=predictor_threads), items, False)
    # The raw distilled table (~47 MB for MiniLM) is only an intermediate of this build.
    with tempfile.TemporaryDirectory(prefix="static-raw-") as raw:
        static_dir = train_static(
            encoder,
            documents,
            pairs,
            out_dir,
            StaticTrainConfig(seed=config.seed),
            targets=fp32,
            cache_dir=raw,
            log=log.info,
        )
    train_s = round(time.perf_counter() - clock, 1)
    static_vectors = embed_catalogue(load_predictor(static_dir), items, False)
    if transformer == encoder:
        served_vectors = fp32
    else:
        served_vectors = embed_catalogue(
            load_predictor(transformer, num_threads=predictor_threads), items, False
        )
    static_lift, _ = validation_lift(items, static_vectors, older, newer, config)
    transformer_lift, _ = validation_lift(items, served_vectors, older, newer, config)
    lifts = {
        "static": None if static_lift is None else round(static_lift, 4),
        "transformer": None if transformer_lift is None else round(transformer_lift, 4),
    }
    choice = EncoderChoice("transformer", setting, "", str(static_dir), lifts, cases, train_s)
    if setting == "on":
        choice.served, choice.reason = "static", "static_encoder=on"
    elif static_lift is not None and static_lift >= STATIC_MIN_LIFT:
        choice.served = "static"
        choice.reason = f"static validation lift {static_lift:+.1%} >= {STATIC_MIN_LIFT:.0%}"
    else:
        shown = "n/a" if static_lift is None else f"{static_lift:+.1%}"
        choice.reason = f"static validation lift {shown} < {STATIC_MIN_LIFT:.0%}"
    log.info("served encoder: %s (%s; lifts %s)", choice.served, choice.reason, lifts)
    return (static_dir if choice.served == "static" else transformer), choice
