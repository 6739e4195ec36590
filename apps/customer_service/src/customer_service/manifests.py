"""Publishing a prepared model: the atomic ``current.json`` manifest of a model folder and
the removal of the fingerprint folders it supersedes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

MANIFEST = "current.json"


def write_manifest(root: Path, payload: dict[str, Any]) -> None:
    """Write ``root/current.json`` atomically (readers never see a half-written file)."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    os.replace(tmp, root / MANIFEST)


def publish(root: Path, fingerprint: str, payload: dict[str, Any]) -> None:
    """Point ``root``'s manifest at the model of ``fingerprint`` and delete the other
    fingerprint folders below ``root`` (models no manifest refers to any more)."""
    write_manifest(root, payload)
    for old in root.iterdir():
        if old.is_dir() and old.name != fingerprint:
            shutil.rmtree(old, ignore_errors=True)
