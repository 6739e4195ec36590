"""Training pipeline: fine-tune the bi-encoder on (history -> next item) pairs, embed the
catalogue, learn co-occurrence and popularity from the logs, fit the blend."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from keel_service import Budget
from recommender.blend import BlendModel
from recommender.catalogue import CatalogueSnapshot
from recommender.cooccurrence import ItemSimilarity
from recommender.datasets import Interaction, Item
from recommender.features import BASE_FEATURES
from recommender.scorer import Signals, case_features
from recommender.splits import next_item_pairs, sampled_cases, temporal_split
from recommender.stats import ItemStats

if TYPE_CHECKING:
    from keel.inference import Predictor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Options of :func:`train_recommender`.

    Attributes:
        budget: ``fast`` or ``full``; sets ``max_pairs``/``epochs`` when they are None.
        max_pairs: cap on bi-encoder training pairs (None = from the budget).
        epochs: passes over the pairs (None = from the budget).
        fine_tune: False keeps the base encoder (no training).
        batch_size / learning_rate / max_length: bi-encoder training options.
        blend_negatives: sampled negatives per positive when fitting the blend.
        blend_targets_per_user: positives per user used to fit the blend.
        holdout_fraction: share of each user's newest interactions that fit the blend.
        base_model: packaged encoder name or folder.
        seed: all sampling and training seeds.
        num_threads: torch threads while training (None = library default).
        show_progress: progress bars.
    """

    budget: Budget = Budget.FAST
    max_pairs: int | None = None
    epochs: int | None = None
    fine_tune: bool = True
    batch_size: int = 32
    learning_rate: float = 3e-5
    max_length: int = 64
    blend_negatives: int = 20
    blend_targets_per_user: int = 3
    holdout_fraction: float = 0.1
    base_model: str = "minilm"
    seed: int = 13
    num_threads: int | None = None
    show_progress: bool = True
    device: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "budget", Budget(self.budget))
        if self.max_pairs is not None and self.max_pairs < 2:
            raise ValueError(f"max_pairs={self.max_pairs}: must be >= 2 or None")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs={self.epochs}: must be >= 1 or None")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction={self.holdout_fraction}: must be in (0, 1)")
        if self.blend_negatives < 1:
            raise ValueError(f"blend_negatives={self.blend_negatives}: must be >= 1")

    @property
    def effective_max_pairs(self) -> int | None:
        """Pair cap after applying the budget."""
        if self.max_pairs is not None:
            return self.max_pairs
        return 800 if self.budget is Budget.FAST else None

    @property
    def effective_epochs(self) -> int:
        """Epochs after applying the budget."""
        if self.epochs is not None:
            return self.epochs
        return 1 if self.budget is Budget.FAST else 2


@dataclass
class TrainedRecommender:
    """The outputs of a training run."""

    encoder_dir: Path | str
    serving_model: Path | str
    snapshot: CatalogueSnapshot
    signals: Signals
    report: dict[str, float | int | str] = field(default_factory=dict)


def fine_tune_encoder(
    items: dict[str, Item], log_rows: list[Interaction], out_dir: Path, config: TrainConfig
) -> tuple[Path | str, int]:
    """Fine-tune the bi-encoder with ``keel.training.train_bi_encoder``.

    Returns:
        The encoder artifact folder (or the base model name when there is nothing to train
        or ``fine_tune`` is off) and the number of pairs used.
    """
    pairs = next_item_pairs(log_rows, items, max_pairs=config.effective_max_pairs, seed=config.seed)
    if not config.fine_tune or len(pairs) < config.batch_size:
        return config.base_model, 0
    from keel.training import PairConfig, train_bi_encoder

    pair_config = PairConfig(
        base_model=config.base_model,
        epochs=config.effective_epochs,
        learning_rate=config.learning_rate,
        batch_size=config.batch_size,
        max_length=config.max_length,
        seed=config.seed,
        num_threads=config.num_threads,
        show_progress=config.show_progress,
        device=config.device,
        # Item-to-item similarity: with an e5 encoder both sides get the ``query: `` prefix,
        # the one the catalogue and histories are embedded with.
        symmetric=True,
    )
    log.info("fine-tuning the bi-encoder on %d (history -> next item) pairs", len(pairs))
    return Path(train_bi_encoder(pairs, pair_config, out_dir=out_dir)), len(pairs)


def embed_catalogue(
    predictor: Predictor, items: list[Item], show_progress: bool = True
) -> np.ndarray:
    """``[n, d]`` embeddings of item documents, in batches with a progress bar."""
    from tqdm.auto import tqdm

    batch = 256
    chunks = []
    for start in tqdm(
        range(0, len(items), batch), desc="embedding catalogue", disable=not show_progress
    ):
        chunks.append(predictor.embed([it.document for it in items[start : start + batch]]))
    if not chunks:
        return np.zeros((0, predictor.dim), dtype=np.float32)
    return np.vstack(chunks).astype(np.float32)


def learn_signals(
    snapshot: CatalogueSnapshot, log_rows: list[Interaction], blend: BlendModel | None = None
) -> Signals:
    """Popularity/trending counts and item-item similarity from the positives of a log."""
    positives = [r for r in log_rows if r.positive and r.item_id in snapshot.rows]
    users: dict[str, int] = {}
    user_idx = [users.setdefault(r.user_id, len(users)) for r in positives]
    item_rows = [snapshot.rows[r.item_id] for r in positives]
    reference = max((r.timestamp for r in log_rows), default=0.0)
    stats = ItemStats.from_interactions(
        item_rows, [r.timestamp for r in positives], len(snapshot), reference_time=reference
    )
    similarity = ItemSimilarity.from_interactions(user_idx, item_rows, len(snapshot))
    return Signals(
        dict(snapshot.rows), stats, similarity, blend or BlendModel.prior(list(BASE_FEATURES))
    )


def fit_blend(
    snapshot: CatalogueSnapshot, log_rows: list[Interaction], config: TrainConfig
) -> BlendModel:
    """Fit the blend: features from the older part of each user's log, labels from the
    newest part (positives vs sampled unseen items)."""
    older, newer = temporal_split(log_rows, config.holdout_fraction)
    signals = learn_signals(snapshot, older)
    cases = sampled_cases(
        older,
        newer,
        list(snapshot.rows),
        negatives=config.blend_negatives,
        positives_per_user=config.blend_targets_per_user,
        seed=config.seed,
    )
    if not cases:
        log.warning("no blend training cases (too few interactions): using prior weights")
        return BlendModel.prior(list(BASE_FEATURES))
    features, labels = [], []
    names: list[str] = list(BASE_FEATURES)
    for case in cases:
        fm = case_features(snapshot, signals, case.history, case.candidates, case.as_of)
        features.append(fm.values)
        labels.append(case.labels)
        names = fm.names
    blend = BlendModel.fit(np.vstack(features), np.concatenate(labels), names, seed=config.seed)
    blend.metrics = {"cases": float(len(cases)), "rows": float(sum(len(x) for x in labels))}
    return blend


def train_recommender(
    items: list[Item],
    log_rows: list[Interaction],
    work_dir: Path,
    config: TrainConfig,
    predictor_threads: int | None = None,
    compress: Callable[[Path | str], tuple[Path | str, str]] | None = None,
) -> TrainedRecommender:
    """Run the whole pipeline on a catalogue and an interaction log.

    The encoder is fine-tuned on the older part of each user's log only, so the blend is
    fitted on features the encoder has not been trained on.

    Args:
        items: the catalogue.
        log_rows: interactions (rating >= 4 are positives).
        work_dir: where the encoder artifact is written (``work_dir/encoder``).
        config: training options.
        predictor_threads: threads of the predictor used to embed the catalogue.
        compress: turns the fine-tuned encoder into the serving model (e.g. ONNX int8)
            and says what it did; the catalogue is embedded with the serving model so the
            blend is fitted on the features the service will compute.

    Returns:
        The encoder folder, catalogue snapshot and learned signals.
    """
    from keel.inference import load_predictor

    by_id = {it.id: it for it in items}
    older, _ = temporal_split(log_rows, config.holdout_fraction)
    clock = time.perf_counter()
    encoder_dir, n_pairs = fine_tune_encoder(by_id, older, work_dir / "encoder", config)
    timings = {"fine_tune_s": time.perf_counter() - clock}
    clock = time.perf_counter()
    serving, compression = compress(encoder_dir) if compress else (encoder_dir, "not compressed")
    timings["compress_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    log.info("serving model: %s (%s)", serving, compression)
    predictor = load_predictor(serving, num_threads=predictor_threads)
    vectors = embed_catalogue(predictor, items, config.show_progress)
    snapshot = CatalogueSnapshot.build(items, vectors)
    timings["embed_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    blend = fit_blend(snapshot, log_rows, config)
    signals = learn_signals(snapshot, log_rows, blend)
    timings["blend_s"] = time.perf_counter() - clock
    report: dict[str, float | int | str] = {
        "pairs": n_pairs,
        "items": len(items),
        "interactions": len(log_rows),
        "encoder": str(encoder_dir),
        "compression": compression,
        **{k: round(v, 1) for k, v in timings.items()},
    }
    return TrainedRecommender(encoder_dir, serving, snapshot, signals, report)
