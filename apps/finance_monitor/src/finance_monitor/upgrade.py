"""Live upgrade of the finance monitor's English scoring model (``keel_service.upgrade``).

With ``KEEL_FM_UPGRADE=on`` (the demo's default) the monitor scores with its ``fast``
model (frozen encoder, topic + sentiment heads) at once; a niced child process then
trains the ``full`` recipe (``model_prep._build_models``: multi-task fine-tuning of both
heads over one encoder, then the int8 compression gate) on a training split, scores it
and the served model on the held-out split, and the runtime swaps it into the in-process
scorer only when its mean head accuracy is higher. ``/healthz`` shows ``model``.

Validation: ``prepare`` trains on every labelled row, so the served model has seen every
row (it scores 1.0 on the demo data's). The candidate is trained without a held-out 15%
of each head's rows (seeded, stratified) and scored on them; the served model's score is
that of its own recipe (the ``fast`` budget, fp32) trained on the same rows as the
candidate and scored on the same held-out rows: the two recipes are compared on data
neither has seen. The served model's score on the held-out rows (seen in training) is
reported beside it in ``details``.
Scorer processes started on their own (``finance-monitor scorer``) keep their model.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from finance_monitor.config import Settings
from finance_monitor.scoring import ScoringModel, head_accuracy
from keel_service.upgrade import (
    CandidateJob,
    CandidateResult,
    ModelUpgrader,
    ProgressFn,
    ServedModel,
    training_progress,
)

log = logging.getLogger(__name__)

TARGET = "finance_monitor.upgrade:build_scoring_candidate"
HOLDOUT_SHARE = 0.15


def candidate_job(settings: Settings, served_dir: str) -> CandidateJob:
    """The child's job: the settings (no keys) and the served model's folder (its path
    holds the fingerprint of the training data and options)."""
    from keel.models import fingerprint_hash

    spec = {
        "settings": settings.model_dump(mode="json", exclude={"api_key", "database_url"}),
        "served_dir": served_dir,
    }
    recipe = {"served": served_dir, "holdout": HOLDOUT_SHARE, "format": 2}
    return CandidateJob(TARGET, spec, fingerprint_hash(recipe))


def split_sets(sets: Any) -> tuple[Any, dict[str, tuple[list[str], list[str]]]]:
    """``(training sets without the held-out rows, {head: (texts, labels)} held out)``."""
    from finance_monitor.model_prep import TrainingSets
    from finance_monitor.scoring import SENTIMENT_HEAD, TOPIC_HEAD
    from keel.data import LabelledTexts, stratified_split

    held: dict[str, tuple[list[str], list[str]]] = {}
    kept: dict[str, tuple[list[str], list[str]]] = {}
    for head, texts, labels in (
        (TOPIC_HEAD, sets.topic_texts, sets.topic_labels),
        (SENTIMENT_HEAD, sets.sentiment_texts, sets.sentiment_labels),
    ):
        train, val = stratified_split(
            LabelledTexts(list(texts), list(labels)), test_size=HOLDOUT_SHARE, seed=13
        )
        kept[head] = (list(train.texts), [str(x) for x in train.labels])
        held[head] = (list(val.texts), [str(x) for x in val.labels])
    train_sets = TrainingSets(
        kept[TOPIC_HEAD][0],
        kept[TOPIC_HEAD][1],
        kept[SENTIMENT_HEAD][0],
        kept[SENTIMENT_HEAD][1],
        list(sets.sources),
    )
    return train_sets, held


def held_out_scores(model: ScoringModel, held: dict[str, tuple[list[str], list[str]]]) -> dict:
    """Accuracy of each head on its held-out rows, and their mean (``score``)."""
    out = {
        head: head_accuracy(model, texts, labels, head) for head, (texts, labels) in held.items()
    }
    out["score"] = float(np.mean(list(out.values())))
    return out


def build_scoring_candidate(spec: dict[str, Any], out_dir: Path, progress: ProgressFn) -> dict:
    """In the child: the ``full`` scoring model into ``out_dir``, scored with the served one."""
    from finance_monitor.model_prep import SERVED_DIR as SERVED
    from finance_monitor.model_prep import (
        PrepConfig,
        _build_models,
        load_scoring_model,
        load_training_sets,
    )
    from keel.training import set_progress_listener

    settings = Settings.model_validate(spec["settings"])
    progress(0.0, "loading data")
    train_sets, held = split_sets(load_training_sets(settings.data_dir))
    config = PrepConfig(
        models_dir=out_dir,
        data_dir=settings.data_dir,
        budget="full",
        max_length=settings.model_max_length,
        num_threads=settings.num_threads,
        show_progress=False,
    )
    set_progress_listener(training_progress(progress, 0.0, 0.8))

    def report(message: str) -> None:
        log.info(message)
        if message.startswith("trained in"):
            progress(0.8, "compressing")

    variant = _build_models(out_dir, train_sets, config, report)
    set_progress_listener(None)
    progress(0.85, "training the served recipe on the same rows")
    # The served model's recipe on the candidate's training rows: its held-out score is
    # the served tier's on unseen data (the served model itself has seen every row).
    reference = _build_models(
        out_dir / "reference",
        train_sets,
        PrepConfig(
            models_dir=out_dir / "reference",
            budget="fast",
            max_length=settings.model_max_length,
            num_threads=settings.num_threads,
            show_progress=False,
            compress=False,
        ),
        log.info,
    )
    progress(0.95, "scoring")
    threads = settings.num_threads
    candidate = held_out_scores(load_scoring_model(out_dir / SERVED, threads), held)
    recipe = held_out_scores(load_scoring_model(out_dir / "reference" / SERVED, threads), held)
    served = held_out_scores(load_scoring_model(Path(spec["served_dir"]), threads), held)
    shutil.rmtree(out_dir / "reference", ignore_errors=True)
    return {
        "score": candidate.pop("score"),
        "served_score": recipe.pop("score"),
        "metric": "mean head accuracy",
        "validation_size": sum(len(texts) for texts, _ in held.values()),
        "details": {
            "variant": variant,
            "candidate": candidate,
            "served_recipe": {"variant": reference, **recipe},
            "served_model_seen_rows": served,
        },
    }


def make_upgrader(
    settings: Settings,
    served_dir: Callable[[], str],
    swap: Callable[[Path, CandidateResult], None],
) -> ModelUpgrader:
    """The finance monitor's upgrader (the runtime starts it when ``upgrade`` is on)."""
    return ModelUpgrader(
        "scoring",
        settings.models_dir / "scoring-upgrade",
        ServedModel("fast", None, "mean head accuracy"),
        lambda: candidate_job(settings, served_dir()),
        swap,
        min_gain=settings.upgrade_min_gain,
        nice=settings.upgrade_nice,
        start_delay_s=settings.upgrade_delay_s,
    )
