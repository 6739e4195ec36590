"""Live upgrade of the support bot's intent model (``keel_service.upgrade`` does the work).

The app serves its ``fast`` intent model at once; with ``KEEL_CS_UPGRADE=on`` (the demo's
default) a niced child process then trains the production recipe (``full``: LP-FT, then
compression and the OOS calibration, exactly what ``prepare --budget full`` builds),
scores it and the served model on the same validation data, and the runtime swaps it in
only when it scores higher. ``/healthz`` shows ``intent_model.tier``,
``validation_score`` and ``upgrade`` (state, fraction, ETA, reason).

**Training on agent corrections (the feedback loop).** Give the runtime a provider of
extra labelled data and ask for a run::

    from customer_service.upgrade import ExtraIntentData
    from keel_service.upgrade import LabelledExamples

    def corrections() -> ExtraIntentData:          # called on the upgrade thread
        rows = ...                                  # read the corrections table
        return ExtraIntentData(
            train=LabelledExamples.of([(text, intent), ...]),       # added to training
            validation=LabelledExamples.of([(text, intent), ...]),  # added to validation
            out_of_scope=("text marked out of scope", ...),         # OOS calibration
        )

    runtime.extra_intent_data = corrections         # customer_service.runtime.AppRuntime
    runtime.request_upgrade()                       # retrain now (one run at a time)

The candidate is trained on the training split plus ``train`` and both models are scored
on the validation split plus ``validation`` ("old validation set plus corrections");
it is served only when it scores higher, else kept in
``<state_dir>/models/intent-upgrade/refused/<fingerprint>/`` with ``reason.json``.
Examples whose intent is not one of the model's intents are ignored. The extra data's
content is part of the candidate's fingerprint: new corrections make a new candidate,
the same ones reuse the recorded outcome. Passing the same rows in ``train`` and
``validation`` is allowed (the corrected utterances are then both learnt and checked),
but it flatters the candidate on exactly those rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from customer_service.config import Settings
from keel_service import Budget
from keel_service.upgrade import (
    CandidateJob,
    CandidateResult,
    LabelledExamples,
    ModelUpgrader,
    ProgressFn,
    ServedModel,
    training_progress,
)

log = logging.getLogger(__name__)

TARGET = "customer_service.upgrade:build_intent_candidate"


@dataclass(frozen=True)
class ExtraIntentData:
    """Labelled utterances beyond ``intents.csv`` (agent corrections)."""

    train: LabelledExamples = field(default_factory=LabelledExamples)
    validation: LabelledExamples = field(default_factory=LabelledExamples)
    out_of_scope: tuple[str, ...] = ()

    def version(self) -> str:
        oos = LabelledExamples(self.out_of_scope, ("",) * len(self.out_of_scope))
        return "-".join((self.train.version(), self.validation.version(), oos.version()))


ExtraDataProvider = Callable[[], ExtraIntentData]


def upgrade_root(settings: Settings) -> Path:
    return settings.models_dir / "intent-upgrade"


def candidate_job(
    settings: Settings, served_model_dir: str, extra: ExtraIntentData | None = None
) -> CandidateJob:
    """The job the child runs: settings (no keys), the served model, the extra data."""
    from customer_service.prepare import intent_fingerprint

    extra = extra or ExtraIntentData()
    spec = {
        "settings": settings.model_dump(
            mode="json", exclude={"api_key", "agent_key", "database_url"}
        ),
        "served_model_dir": served_model_dir,
        "extra_train": extra.train.rows(),
        "extra_validation": extra.validation.rows(),
        "out_of_scope": list(extra.out_of_scope),
    }
    recipe = {
        "inputs": intent_fingerprint(settings),
        "served": served_model_dir,
        "extra": extra.version(),
        "epochs": settings.upgrade_epochs,
        "learning_rate": settings.upgrade_learning_rate,
        "format": 1,
    }
    from keel.models import fingerprint_hash

    return CandidateJob(TARGET, spec, fingerprint_hash(recipe))


def build_intent_candidate(spec: dict[str, Any], out_dir: Path, progress: ProgressFn) -> dict:
    """In the child: the ``full`` intent model into ``out_dir``, scored with the served one."""
    from customer_service import engine
    from customer_service.prepare import (
        INTENT_RECORD,
        CandidateRecipe,
        _build_intent_model,
        intent_fingerprint,
    )
    from keel.training import set_progress_listener

    settings = Settings.model_validate(spec["settings"])
    extra_train = LabelledExamples.of(spec.get("extra_train", []))
    extra_val = LabelledExamples.of(spec.get("extra_validation", []))
    recipe = CandidateRecipe(
        budget=Budget.FULL,
        epochs=settings.upgrade_epochs,
        learning_rate=settings.upgrade_learning_rate,
        extra_train=list(zip(extra_train.texts, extra_train.labels, strict=True)),
        extra_validation=list(zip(extra_val.texts, extra_val.labels, strict=True)),
        out_of_scope=[str(t) for t in spec.get("out_of_scope", [])],
    )
    progress(0.0, "loading data")
    set_progress_listener(training_progress(progress, 0.0, 0.7))

    def report(message: str) -> None:
        log.info(message)
        if "compressing" in message:
            progress(0.7, "compressing")

    fingerprint = f"upgrade-{intent_fingerprint(settings)}"
    artifacts = _build_intent_model(settings, fingerprint, out_dir, report, recipe)
    set_progress_listener(None)
    progress(0.95, "scoring the served model")
    # The same validation rows the candidate was scored on.
    data = engine.load_intent_data(
        settings.content_path("intents.csv"),
        settings.intent_text_column,
        settings.intent_label_column,
        settings.max_train_rows,
    )
    train, val = recipe.extend(*engine.split_validation(data))
    served = engine.load_model(spec["served_model_dir"], num_threads=settings.num_threads)
    labels = list(served.labels)
    predicted = [labels[i] for i in served.classify(list(val.texts)).argmax(axis=1)]
    served_score = float(np.mean([p == t for p, t in zip(predicted, val.labels, strict=True)]))
    record = json.loads((out_dir / INTENT_RECORD).read_text("utf-8"))
    return {
        "score": float(artifacts.validation_accuracy or 0.0),
        "served_score": served_score,
        "metric": "accuracy",
        "validation_size": len(val),
        "details": {
            "variant": record.get("variant"),
            "threshold": record.get("threshold"),
            "train_size": len(train),
            "extra_train": len(extra_train),
            "extra_validation": len(extra_val),
        },
    }


def make_upgrader(
    settings: Settings,
    served: ServedModel,
    served_model_dir: Callable[[], str],
    extra_data: Callable[[], ExtraDataProvider | None],
    swap: Callable[[Path, CandidateResult], None],
) -> ModelUpgrader:
    """The support bot's upgrader (started by the runtime when ``upgrade`` is on)."""
    root = upgrade_root(settings)

    def make_job() -> CandidateJob | None:
        provider = extra_data()
        extra = provider() if provider is not None else None
        return candidate_job(settings, served_model_dir(), extra)

    return ModelUpgrader(
        "intent",
        root,
        served,
        make_job,
        swap,
        min_gain=settings.upgrade_min_gain,
        nice=settings.upgrade_nice,
        start_delay_s=settings.upgrade_delay_s,
    )
