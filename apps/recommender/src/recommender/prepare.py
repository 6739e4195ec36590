"""``prepare``: train (or reuse) everything the service needs into the state directory.

Idempotent: ``keel.models.prepare_artifact`` prepares one version per fingerprint of the
input data and the training configuration under ``<state_dir>/prepared/`` and publishes
it atomically; a second run with the same inputs returns at once, and two processes
starting together build once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import random
import shutil
import time
from pathlib import Path
from typing import Any

from recommender.artifacts import (
    StateLayout,
    model_ref,
    read_manifest,
    save_signals,
    write_manifest,
)
from recommender.catalogue import encoder_tag
from recommender.config import Settings
from recommender.datasets import Dataset, load_dataset
from recommender.static_encoder import STATIC_RECIPE, EncoderChoice, choose_encoder_form
from recommender.storage import CatalogueStore, Database
from recommender.training import TrainConfig, train_recommender

log = logging.getLogger(__name__)

#: Bump when the meaning of stored artifacts changes, to force a rebuild.
PIPELINE_VERSION = "rec-5"
#: The compression gate: mean cosine of the int8 embeddings to the fp32 ones.
MIN_COSINE = 0.95
GATE_TEXTS = 128
#: A static table's folder has this file (``keel.inference._static.TIER_FILE``).
STATIC_TIER_FILE = "static_tier.json"
#: Optimizer steps distilling a student's embeddings back to the fine-tuned encoder's.
STUDENT_RECOVERY_STEPS = 300


def dataset_fingerprint(dataset: Dataset) -> str:
    """sha256 over every item and interaction (order-independent per user)."""
    h = hashlib.sha256()
    for it in sorted(dataset.items, key=lambda i: i.id):
        h.update(json.dumps(dataclasses.asdict(it), sort_keys=True).encode())
    for r in dataset.interactions:
        h.update(f"{r.user_id}\t{r.item_id}\t{r.rating}\t{r.timestamp}\n".encode())
    return h.hexdigest()


def config_fingerprint(config: TrainConfig) -> str:
    """sha256 of the training configuration and the pipeline version."""
    data = {k: str(v) for k, v in dataclasses.asdict(config).items() if k != "show_progress"}
    data["pipeline"] = PIPELINE_VERSION
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def train_config_from(settings: Settings, show_progress: bool = True) -> TrainConfig:
    """The training configuration implied by the service settings."""
    return TrainConfig(
        budget=settings.budget,
        max_pairs=settings.max_pairs,
        seed=settings.seed,
        num_threads=settings.num_threads,
        show_progress=show_progress,
        max_length=48,
        base_model=settings.base_model,
    )


def gate_texts(documents: list[str], size: int = GATE_TEXTS) -> list[str]:
    """A seeded sample of item documents the compression gate compares embeddings on."""
    keep = sorted(random.Random(13).sample(range(len(documents)), min(size, len(documents))))
    return [documents[i] for i in keep]


def compress_encoder(
    encoder_dir: Path | str, out_dir: Path, sample_texts: list[str]
) -> tuple[Path | str, str]:
    """Serve the encoder through ``keel.compress``: ONNX int8 when its embeddings of
    ``sample_texts`` keep a mean cosine of at least ``MIN_COSINE`` to the fp32 ones,
    else the fp32 encoder (the gate decides; a failed export is an error).

    Returns:
        The serving model folder (or name) and a one-line note on what happened.
    """
    if not isinstance(encoder_dir, Path):
        return encoder_dir, "base encoder: not compressed"
    from keel.compression import compress_for_serving

    served = compress_for_serving(
        encoder_dir,
        out_dir,
        sample_texts,
        min_cosine=MIN_COSINE,
        keep_measured=True,  # the prepared version has always kept them
        log=log.info,
    )
    chosen = served.chosen
    cosine = float(served.metrics.get("val_cosine_to_fp32", 1.0))
    if chosen == "fp32":
        return out_dir, f"onnx int8 below cosine {MIN_COSINE} to fp32; serving fp32"
    return out_dir, f"{chosen}, mean cosine to fp32 {cosine:.3f}"


def serving_kernels_of(
    encoder_dir: Path | str, serving: Path | str, models: Path
) -> dict[str, Path | str]:
    """The interchangeable exports of the served encoder the service may time at start-up.

    When the served model is the gated ONNX int8 export, the fp32 ONNX export of the same
    fine-tuned encoder is written to ``models/serving-fp32`` beside it: without int8
    dot-product instructions (VNNI) fp32 can be as fast or faster, and which one is
    faster is measured on the serving CPU, not decided here. Otherwise the served model
    is the only kernel.
    """
    if not isinstance(encoder_dir, Path) or not isinstance(serving, Path):
        return {"served": serving}
    if (serving / STATIC_TIER_FILE).is_file():
        return {"served": serving}  # a static table: nothing to time against
    from keel.models import read_meta

    chosen = read_meta(serving).config.get("compress", {}).get("chosen")
    if chosen != "onnx-int8":
        return {"served": serving}
    from keel.compression import export_onnx

    fp32 = export_onnx(encoder_dir, models / "serving-fp32")
    return {"onnx-int8": serving, "onnx-fp32": fp32}


def distil_student(
    encoder_dir: Path | str, out_dir: Path, layers: int, documents: list[str]
) -> tuple[Path | str, str]:
    """A ``layers``-layer student of the fine-tuned encoder: the teacher's layers spread
    over its depth (``keel.compression.drop_layers``), then ``STUDENT_RECOVERY_STEPS``
    steps distilling its embeddings of the catalogue documents back to the teacher's.

    Returns:
        The student folder (the encoder itself when it is not a fine-tuned folder) and a
        one-line note.
    """
    if not isinstance(encoder_dir, Path):
        return encoder_dir, "base encoder: no student"
    from keel.compression import drop_layers

    drop_layers(
        encoder_dir,
        out_dir,
        keep=f"spread:{layers}",
        recovery_texts=documents,
        recovery_steps=STUDENT_RECOVERY_STEPS,
        show_progress=False,
    )
    return out_dir, f"{layers}-layer student, {STUDENT_RECOVERY_STEPS} distillation steps"


def serving_form(
    encoder: Path | str, models: Path, settings: Settings, documents: list[str]
) -> tuple[Path | str, str]:
    """The fine-tuned encoder as served: the student (``student_layers``), then the int8
    gate (``compress``), in ``models/student`` and ``models/serving``; and a note."""
    notes = []
    if settings.student_layers is not None:
        encoder, note = distil_student(
            encoder, models / "student", settings.student_layers, documents
        )
        notes.append(note)
    if settings.compress and settings.student_layers is not None:
        encoder, note = compress_student(encoder, models / "serving", gate_texts(documents))
        notes.append(note)
    elif settings.compress:
        encoder, note = compress_encoder(encoder, models / "serving", gate_texts(documents))
        notes.append(note)
    return encoder, "; ".join(notes) or "not compressed"


def compress_student(
    student: Path | str, out_dir: Path, sample_texts: list[str]
) -> tuple[Path | str, str]:
    """The student's ONNX int8 export when its embeddings of ``sample_texts`` keep a mean
    cosine of at least ``MIN_COSINE`` to the student's own (torch fp32), else the student
    (``keel.compress``'s report starts from an fp32 parent, not from a derived one)."""
    if not isinstance(student, Path):
        return student, "base encoder: not compressed"
    import numpy as np

    from keel.compression import export_onnx
    from keel.inference import load_predictor

    export_onnx(student, out_dir, quantize="dynamic")
    reference = np.asarray(load_predictor(student).embed(sample_texts))
    quantized = np.asarray(load_predictor(out_dir).embed(sample_texts))
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(quantized, axis=1)
    cosine = float(np.mean((reference * quantized).sum(axis=1) / np.maximum(norms, 1e-12)))
    meta_path = out_dir / "keel.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta.setdefault("config", {})["compress"] = {"chosen": "onnx-int8", "min_cosine": MIN_COSINE}
    meta.setdefault("metrics", {})["val_cosine_to_fp32"] = cosine
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    if cosine < MIN_COSINE:
        shutil.rmtree(out_dir)
        return student, f"student int8 below cosine {MIN_COSINE} to fp32; serving fp32"
    return out_dir, f"onnx-int8 student, mean cosine to fp32 {cosine:.3f}"


def student_or(encoder: Path | str, models: Path) -> Path | str:
    """The student ``serving_form`` distilled into ``models``, else ``encoder``."""
    return models / "student" if (models / "student").is_dir() else encoder


def prepare(settings: Settings, force: bool = False, show_progress: bool = True) -> dict[str, Any]:
    """Make the state directory ready: models, catalogue embeddings, signals, index.

    Args:
        settings: service settings (state_dir, data_dir, budget, seed).
        force: rebuild even when the fingerprint matches.
        show_progress: progress bars and log lines.

    Returns:
        The manifest (``"reused": True`` when nothing had to be done).
    """
    from keel.models import fingerprint_hash, prepare_artifact

    layout = StateLayout(settings.state_dir)
    dataset = load_dataset(settings.data_dir)
    config = train_config_from(settings, show_progress)
    fingerprint = (
        f"{dataset_fingerprint(dataset)}:{config_fingerprint(config)}:compress={settings.compress}"
    )
    if settings.student_layers is not None:
        fingerprint += f":student={settings.student_layers}x{STUDENT_RECOVERY_STEPS}"
    if settings.static_encoder != "off":
        fingerprint += f":static={settings.static_encoder}-{STATIC_RECIPE}"
    built: list[bool] = []

    def build(folder: Path) -> None:
        # Paths in the manifest name the version's final folder, not this temporary one.
        final = layout.prepared / fingerprint_hash(fingerprint)
        _build_version(settings, dataset, config, fingerprint, folder, final, layout.root)
        built.append(True)

    prepare_artifact(layout.prepared, fingerprint, build, force=force)
    layout.remove_legacy()
    manifest = read_manifest(layout)
    if manifest is None:  # pragma: no cover - prepare_artifact just published it
        raise RuntimeError(f"{layout.prepared}: the prepared version has no manifest")
    if built and layout.index.exists():
        shutil.rmtree(layout.index)  # rebuilt by the service from the stored vectors
    return {**manifest, "reused": not built}


def _build_version(
    settings: Settings,
    dataset: Dataset,
    config: TrainConfig,
    fingerprint: str,
    folder: Path,
    final: Path,
    root: Path,
) -> None:
    """Train into ``folder``, seed the catalogue store, and write the manifest."""
    started = time.perf_counter()
    models = folder / "models"
    documents = [it.document for it in dataset.items]
    choices: list[EncoderChoice] = []

    def served_form(encoder: Path | str) -> tuple[Path | str, str]:
        # The transformer's serving form, then the static table when it is chosen: the
        # catalogue is embedded and the blend fitted with whichever is served.
        transformer, note = serving_form(encoder, models, settings, documents)
        served, choice = choose_encoder_form(
            encoder,
            transformer,
            models / "static",
            settings.static_encoder,
            dataset.items,
            dataset.interactions,
            config,
            settings.num_threads,
        )
        choices.append(choice)
        if choice.served == "static":
            return served, f"static table ({choice.reason}); transformer: {note}"
        return served, note

    trained = train_recommender(
        dataset.items,
        dataset.interactions,
        models,
        config,
        predictor_threads=settings.num_threads,
        compress=served_form,
    )
    save_signals(trained.signals, folder / "signals")
    kernels = serving_kernels_of(
        student_or(trained.encoder_dir, models), trained.serving_model, models
    )
    db = Database(settings.resolved_database_url)
    try:
        serving = trained.serving_model
        # The tag is the folder's name and its metadata file's mtime: a rename keeps both.
        tag = encoder_tag(Path(serving)) if isinstance(serving, Path) else str(serving)
        store = CatalogueStore(db)
        store.upsert(list(trained.snapshot.items), trained.snapshot.vectors, tag)
        store.mark_seeded()
    finally:
        db.close()

    def ref(model: Path | str) -> str:
        if isinstance(model, Path):
            return model_ref(final / model.relative_to(folder), root)
        return model

    manifest = {
        "fingerprint": fingerprint,
        "pipeline": PIPELINE_VERSION,
        "source": dataset.source,
        "users": dataset.users,
        "serving_model": ref(trained.serving_model),
        "kernels": {name: ref(model) for name, model in kernels.items()},
        "encoder_model": ref(trained.encoder_dir),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "config": {k: str(v) for k, v in dataclasses.asdict(config).items()},
        "report": trained.report,
        "blend": trained.signals.blend.metrics,
        # Which encoder serves (static table or transformer), why, and both validation lifts.
        "encoder_choice": choices[0].as_dict() if choices else None,
    }
    write_manifest(folder, manifest)
