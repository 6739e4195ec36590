"""Layout of the state directory and (de)serialisation of the learned signals.

```
<state_dir>/prepared/current              names the published version (keel.models.prepare_artifact)
<state_dir>/prepared/<hash>/manifest.json fingerprint of inputs + config, paths, training report
<state_dir>/prepared/<hash>/models/encoder/  fine-tuned bi-encoder (Keel "encoder" artifact)
<state_dir>/prepared/<hash>/models/serving/  the variant keel.compress chose (ONNX int8 when
                                          it passes the cosine gate)
<state_dir>/prepared/<hash>/models/serving-fp32/  the same encoder's fp32 ONNX export (beside
                                          an int8 one: the service times both at start-up)
<state_dir>/prepared/<hash>/signals/      blend.json, similarity.npz, stats.npz, items.json
<state_dir>/index/                        FAISS index of item embeddings (keel.retrieval.VectorIndex)
<state_dir>/recommender.db                SQLite (default database): items + embeddings, events, rankings
```

A version is built beside the published one and published atomically, so a crash
mid-build leaves the previous one serving. The first layout kept ``manifest.json``,
``models/`` and ``signals/`` directly in the state directory; they are removed once a
version is published (the models are retrained once).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recommender.blend import BlendModel
from recommender.cooccurrence import ItemSimilarity
from recommender.errors import ModelNotReadyError
from recommender.scorer import Signals
from recommender.stats import ItemStats

MANIFEST = "manifest.json"
PREPARED = "prepared"
LEGACY = ("manifest.json", "manifest.tmp", "models", "signals")


@dataclass(frozen=True)
class StateLayout:
    """Paths inside a state directory."""

    root: Path

    @property
    def prepared(self) -> Path:
        """Folder of the prepared versions (owned by ``keel.models.prepare_artifact``)."""
        return self.root / PREPARED

    @property
    def version(self) -> Path | None:
        """The published version's folder, or None before the first ``prepare``."""
        from keel.models import published_artifact

        return published_artifact(self.prepared)

    @property
    def manifest(self) -> Path:
        """The published version's manifest (a path that does not exist before one)."""
        return (self.version or self.prepared / "none") / MANIFEST

    @property
    def signals(self) -> Path:
        """The published version's signals folder."""
        return (self.version or self.prepared / "none") / "signals"

    @property
    def index(self) -> Path:
        return self.root / "index"

    def remove_legacy(self) -> None:
        """Delete the first layout's files (superseded by ``prepared/``)."""
        import shutil

        for name in LEGACY:
            path = self.root / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def save_signals(signals: Signals, folder: Path) -> None:
    """Write the learned signals to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    signals.blend.save(folder / "blend.json")
    signals.similarity.save(folder / "similarity.npz")
    np.savez(
        folder / "stats.npz",
        counts=signals.stats.counts,
        keys=signals.stats.keys,
        reference_time=np.array([signals.stats.reference_time]),
        window_days=np.array([signals.stats.window_days]),
    )
    ids = sorted(signals.item_index, key=signals.item_index.__getitem__)
    (folder / "items.json").write_text(
        json.dumps(
            {
                "item_ids": ids,
                "history_half_life": signals.history_half_life,
                "freshness_half_life_days": signals.freshness_half_life_days,
            }
        )
    )


def load_signals(folder: Path) -> Signals:
    """Read signals written by :func:`save_signals`.

    Raises:
        ModelNotReadyError: a file is missing (run ``recommender prepare``).
    """
    needed = ["blend.json", "similarity.npz", "stats.npz", "items.json"]
    missing = [n for n in needed if not (folder / n).is_file()]
    if missing:
        raise ModelNotReadyError(f"{folder}: missing {missing}; run `recommender prepare`")
    meta: dict[str, Any] = json.loads((folder / "items.json").read_text())
    with np.load(folder / "stats.npz") as data:
        stats = ItemStats(
            counts=data["counts"],
            keys=data["keys"],
            reference_time=float(data["reference_time"][0]),
            window_days=float(data["window_days"][0]),
        )
    return Signals(
        item_index={item_id: row for row, item_id in enumerate(meta["item_ids"])},
        stats=stats,
        similarity=ItemSimilarity.load(folder / "similarity.npz"),
        blend=BlendModel.load(folder / "blend.json"),
        history_half_life=float(meta["history_half_life"]),
        freshness_half_life_days=float(meta["freshness_half_life_days"]),
    )


def read_manifest(layout: StateLayout) -> dict[str, Any] | None:
    """The manifest, or None when the state directory was never prepared."""
    if not layout.manifest.is_file():
        return None
    try:
        return json.loads(layout.manifest.read_text())
    except json.JSONDecodeError:
        return None


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write ``folder/manifest.json`` (inside a version being built; publishing the
    version is what makes it visible)."""
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")


def model_ref(model: Path | str, root: Path) -> str:
    """How the manifest records a model: relative to the state dir when inside it (so a
    state dir can be copied or moved), else as given (a packaged name like "minilm")."""
    if isinstance(model, Path):
        try:
            return str(model.resolve().relative_to(root.resolve()))
        except ValueError:
            return str(model)
    return model


def resolve_model(ref: str, root: Path) -> Path | str:
    """Inverse of :func:`model_ref`: a folder inside the state dir, or a packaged name."""
    inside = root / ref
    if inside.exists():
        return inside
    if Path(ref).is_absolute() and Path(ref).exists():
        return Path(ref)
    return ref
