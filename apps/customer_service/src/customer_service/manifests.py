"""Small JSON records next to the prepared models: written atomically, read leniently.

The models themselves are prepared and published by ``keel.models.prepare_artifact``;
what is kept here is the record inside a published version (``intent.json``,
``retriever.json``), the retriever's search mode (changed without retraining), and
reading the first layout's ``current.json`` so an encoder trained before is still served.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

#: The first layout's manifest (superseded by ``keel.models.prepare_artifact``'s ``current``).
LEGACY_MANIFEST = "current.json"


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (readers never see a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or ``None`` when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
