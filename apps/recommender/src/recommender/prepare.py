"""``prepare``: train (or reuse) everything the service needs into the state directory.

Idempotent: the manifest stores a fingerprint of the input data and the training
configuration; a second run with the same inputs returns at once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from recommender.artifacts import (
    StateLayout,
    model_ref,
    read_manifest,
    resolve_model,
    save_signals,
    write_manifest,
)
from recommender.catalogue import encoder_tag
from recommender.config import Settings
from recommender.datasets import Dataset, load_dataset
from recommender.storage import CatalogueStore, Database
from recommender.training import TrainConfig, train_recommender

log = logging.getLogger(__name__)

#: Bump when the meaning of stored artifacts changes, to force a rebuild.
PIPELINE_VERSION = "rec-3"


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


def compress_encoder(
    encoder_dir: Path | str, out_dir: Path, sample_texts: list[str]
) -> tuple[Path | str, str]:
    """Export the encoder to ONNX int8 with ``keel.compression`` when it keeps the embeddings.

    The int8 model is used only if its embeddings of ``sample_texts`` stay within cosine
    0.95 of the fp32 ones; otherwise, or when compression is unavailable, the fp32 encoder
    serves.

    Returns:
        The serving model folder (or name) and a one-line note on what happened.
    """
    if not isinstance(encoder_dir, Path):
        return encoder_dir, "base encoder: not compressed"
    try:
        from keel.compression import export_onnx
        from keel.inference import load_predictor
    except ImportError as exc:
        return encoder_dir, f"keel.compression unavailable ({exc}); serving fp32"
    from keel import KeelError

    try:
        if out_dir.exists():
            shutil.rmtree(out_dir)
        export_onnx(encoder_dir, out_dir, quantize="dynamic")
        fp32 = load_predictor(encoder_dir).embed(sample_texts)
        int8 = load_predictor(out_dir).embed(sample_texts)
    except (KeelError, OSError, RuntimeError, ValueError) as exc:
        return encoder_dir, f"onnx int8 export failed ({exc}); serving fp32"
    cosine = float(np.mean(np.sum(fp32 * int8, axis=1)))
    if cosine < 0.95:
        return encoder_dir, f"onnx int8 mean cosine {cosine:.3f} < 0.95; serving fp32"
    return out_dir, f"onnx int8, mean cosine to fp32 {cosine:.3f}"


def prepare(settings: Settings, force: bool = False, show_progress: bool = True) -> dict[str, Any]:
    """Make the state directory ready: models, catalogue embeddings, signals, index.

    Args:
        settings: service settings (state_dir, data_dir, budget, seed).
        force: rebuild even when the fingerprint matches.
        show_progress: progress bars and log lines.

    Returns:
        The manifest (``"reused": True`` when nothing had to be done).
    """
    layout = StateLayout(settings.state_dir)
    started = time.perf_counter()
    dataset = load_dataset(settings.data_dir)
    config = train_config_from(settings, show_progress)
    fingerprint = (
        f"{dataset_fingerprint(dataset)}:{config_fingerprint(config)}:compress={settings.compress}"
    )
    manifest = read_manifest(layout)
    reusable = (
        not force
        and manifest is not None
        and manifest.get("fingerprint") == fingerprint
        and (
            isinstance(resolve_model(manifest["serving_model"], layout.root), Path)
            or manifest["serving_model"] == settings.base_model
        )
    )
    if reusable and manifest is not None:
        return {**manifest, "reused": True}
    layout.root.mkdir(parents=True, exist_ok=True)
    if layout.manifest.exists():
        layout.manifest.unlink()  # a half-finished rebuild must not look prepared
    trained = train_recommender(
        dataset.items,
        dataset.interactions,
        layout.models,
        config,
        predictor_threads=settings.num_threads,
        compress=(
            (
                lambda enc: compress_encoder(
                    enc, layout.models / "serving", [it.document for it in dataset.items[:64]]
                )
            )
            if settings.compress
            else None
        ),
    )
    save_signals(trained.signals, layout.signals)
    db = Database(settings.resolved_database_url)
    try:
        serving = trained.serving_model
        tag = encoder_tag(Path(serving)) if isinstance(serving, Path) else str(serving)
        store = CatalogueStore(db)
        store.upsert(list(trained.snapshot.items), trained.snapshot.vectors, tag)
        store.mark_seeded()
    finally:
        db.close()
    if layout.index.exists():
        shutil.rmtree(layout.index)  # rebuilt by the service from the stored vectors
    manifest = {
        "fingerprint": fingerprint,
        "pipeline": PIPELINE_VERSION,
        "source": dataset.source,
        "users": dataset.users,
        "serving_model": model_ref(trained.serving_model, layout.root),
        "encoder_model": model_ref(trained.encoder_dir, layout.root),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "config": {k: str(v) for k, v in dataclasses.asdict(config).items()},
        "report": trained.report,
        "blend": trained.signals.blend.metrics,
    }
    write_manifest(layout, manifest)
    return {**manifest, "reused": False}
