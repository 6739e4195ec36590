"""Live upgrade of the recommender's encoder and blend (``keel_service.upgrade``).

With ``KEEL_REC_UPGRADE=on`` (the demo's default) the service ranks with the model
``prepare`` built (the ``fast`` budget: 800 fine-tuning pairs, one epoch) at once; a
niced child process then builds the production recipe, ``prepare --budget full`` (every
(history -> next item) pair, two epochs, then the same int8 compression gate and fp32
sibling), scores it and the served model on the same held-out interactions, and the
service swaps it in only when its blend nDCG@10 is higher. ``/healthz`` shows ``model``
(tier, validation score, upgrade state, fraction, ETA, reason).

**Validation.** The held-out interactions are each user's newest 10% (``temporal_split``
with the training pipeline's ``holdout_fraction``): the very rows the served encoder was
*not* fine-tuned on (``train_recommender`` fine-tunes on the older part only). So both
encoders are compared on rows neither has seen: each model's catalogue embeddings, with
co-occurrence, popularity and the blend learnt from the older interactions only, rank
each user's first held-out positive against 99 unseen items (the MovieLens protocol of
``evaluate_methods``, seed 13). The candidate's encoder is fine-tuned on the same older
rows as the served one; once accepted, its signals and blend are learnt from every
interaction, exactly as ``prepare`` does.

**Swap.** The accepted folder holds a prepared version (``manifest.json``, ``models/``,
``signals/``). :meth:`RecommenderService.swap_model` loads its encoder (kernel and
threads timed as at start-up), re-embeds the catalogue with it (items added through the
API included) and loads its signals aside, then replaces the served model in one
assignment: a request in flight finishes on the model it started with.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel_service import Budget
from keel_service.upgrade import (
    CandidateJob,
    CandidateResult,
    ModelUpgrader,
    ProgressFn,
    ServedModel,
    training_progress,
)
from recommender.config import Settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from recommender.catalogue import CatalogueSnapshot
    from recommender.datasets import Interaction

log = logging.getLogger(__name__)

TARGET = "recommender.upgrade:build_recommender_candidate"
MODEL_NAME = "reranker"
METRIC = "blend nDCG@10 (held-out interactions)"
MANIFEST = "manifest.json"


def candidate_job(settings: Settings, served_model: str) -> CandidateJob:
    """The child's job: the settings (no keys) and the served model's folder (its path
    holds the fingerprint of the data and training options it was prepared from)."""
    from keel.models import fingerprint_hash

    spec = {
        "settings": settings.model_dump(
            mode="json", exclude={"api_key", "writer_key", "database_url"}
        ),
        "served_model": served_model,
    }
    recipe = {
        "served": served_model,
        "budget": "full",
        "max_pairs": settings.upgrade_max_pairs,
        "epochs": settings.upgrade_epochs,
        "student_layers": settings.student_layers,
        "format": 1,
    }
    return CandidateJob(TARGET, spec, fingerprint_hash(recipe))


def _validation_scores(
    snapshot: CatalogueSnapshot,
    train_log: list[Interaction],
    val_log: list[Interaction],
    config: Any,
) -> dict[str, float]:
    """Every method's metrics on the held-out interactions, with signals and the blend
    learnt from ``train_log`` only."""
    from recommender.evaluation import evaluate_methods
    from recommender.training import fit_blend, learn_signals

    blend = fit_blend(snapshot, train_log, config)
    signals = learn_signals(snapshot, train_log, blend)
    return evaluate_methods(
        snapshot, signals, train_log, val_log, seed=config.seed, show_progress=False
    )


def build_recommender_candidate(spec: dict[str, Any], out_dir: Path, progress: ProgressFn) -> dict:
    """In the child: ``prepare --budget full``'s model into ``out_dir``, scored with the
    served one on the held-out interactions."""
    from keel.inference import load_predictor
    from keel.training import set_progress_listener
    from recommender.artifacts import save_signals
    from recommender.catalogue import CatalogueSnapshot
    from recommender.datasets import load_dataset
    from recommender.prepare import (
        serving_form,
        serving_kernels_of,
        student_or,
        train_config_from,
    )
    from recommender.splits import temporal_split
    from recommender.training import embed_catalogue, fine_tune_encoder, fit_blend, learn_signals

    started = time.perf_counter()
    settings = Settings.model_validate(spec["settings"])
    progress(0.0, "loading data")
    dataset = load_dataset(settings.data_dir)
    items = dataset.items
    served_config = train_config_from(settings, show_progress=False)
    config = dataclasses.replace(
        served_config,
        budget=Budget.FULL,
        max_pairs=settings.upgrade_max_pairs,
        epochs=settings.upgrade_epochs,
    )
    # The served encoder was fine-tuned on the older part of every user's log; the
    # newest part is the validation set (and the candidate trains on the same rows).
    train_log, val_log = temporal_split(dataset.interactions, config.holdout_fraction)
    models = out_dir / "models"
    set_progress_listener(training_progress(progress, 0.02, 0.7))
    try:
        encoder_dir, pairs = fine_tune_encoder(
            {it.id: it for it in items}, train_log, models / "encoder", config
        )
    finally:
        set_progress_listener(None)
    progress(0.72, "compressing")
    serving, compression = serving_form(
        encoder_dir, models, settings, [it.document for it in items]
    )
    progress(0.8, "embedding the catalogue with both models")
    threads = settings.num_threads

    def snapshot_of(model: Path | str) -> CatalogueSnapshot:
        vectors = embed_catalogue(load_predictor(model, num_threads=threads), items, False)
        return CatalogueSnapshot.build(items, vectors)

    candidate_snapshot = snapshot_of(serving)
    served_snapshot = snapshot_of(spec["served_model"])
    progress(0.88, "scoring both on the held-out interactions")
    candidate = _validation_scores(candidate_snapshot, train_log, val_log, config)
    served = _validation_scores(served_snapshot, train_log, val_log, served_config)
    progress(0.95, "learning the signals from every interaction")
    blend = fit_blend(candidate_snapshot, dataset.interactions, config)
    save_signals(
        learn_signals(candidate_snapshot, dataset.interactions, blend), out_dir / "signals"
    )
    kernels = serving_kernels_of(student_or(encoder_dir, models), serving, models)

    def ref(model: Path | str) -> str:
        return str(model.relative_to(out_dir)) if isinstance(model, Path) else model

    manifest = {
        "tier": "full",
        "serving_model": ref(serving),
        "encoder_model": ref(encoder_dir),
        "kernels": {name: ref(model) for name, model in kernels.items()},
        "config": {k: str(v) for k, v in dataclasses.asdict(config).items()},
        "report": {"pairs": pairs, "compression": compression},
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    headline = ("blend.ndcg_at_10", "blend.hr_at_10", "blend.auc", "semantic.ndcg_at_10")
    return {
        "score": candidate["blend.ndcg_at_10"],
        "served_score": served["blend.ndcg_at_10"],
        "metric": METRIC,
        "validation_size": int(candidate["cases"]),
        "seconds": round(time.perf_counter() - started, 1),
        "details": {
            "recipe": f"budget full: {pairs} pairs, {config.effective_epochs} epochs; {compression}",
            "candidate": {k: round(candidate[k], 4) for k in headline},
            "served": {k: round(served[k], 4) for k in headline},
        },
    }


def read_candidate(folder: Path) -> dict[str, Any]:
    """The manifest of a candidate the upgrade accepted (model references are relative
    to ``folder``)."""
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    if not isinstance(manifest, dict) or "serving_model" not in manifest:
        raise ValueError(f"{folder / MANIFEST}: not a recommender candidate manifest")
    return manifest


def make_upgrader(
    settings: Settings,
    served_model: Callable[[], str],
    swap: Callable[[Path, CandidateResult], None],
) -> ModelUpgrader:
    """The recommender's upgrader (the app starts it when ``upgrade`` is on)."""
    return ModelUpgrader(
        MODEL_NAME,
        settings.state_dir / "upgrade",
        ServedModel(settings.budget.value, None, METRIC),
        lambda: candidate_job(settings, served_model()),
        swap,
        min_gain=settings.upgrade_min_gain,
        nice=settings.upgrade_nice,
        start_delay_s=settings.upgrade_delay_s,
    )
