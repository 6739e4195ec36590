"""Text prefixes some encoders were trained with (e5: ``query: `` / ``passage: ``).

The prefixes live in the encoder folder itself (``config_sentence_transformers.json``,
key ``prompts``), so they travel with every copy of it: trained artifacts, ONNX
exports, compressed variants. Keel's training, inference and retrieval code applies
them; callers pass plain texts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from keel.errors import ArtifactError, ConfigError

ST_CONFIG_FILE = "config_sentence_transformers.json"


class TextRole(StrEnum):
    """What a text is to the encoder. Classification and symmetric similarity use
    ``QUERY``; documents put into a retrieval index use ``PASSAGE``."""

    QUERY = "query"
    PASSAGE = "passage"


@dataclass(frozen=True)
class TextPrefixes:
    """The prefix put before each text of a role (empty strings: no prefix)."""

    query: str = ""
    passage: str = ""

    def __post_init__(self) -> None:
        for name in ("query", "passage"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(name, getattr(self, name), "a prefix must be a string")

    @property
    def enabled(self) -> bool:
        """True when at least one role has a prefix."""
        return bool(self.query or self.passage)

    def prefix(self, role: TextRole | str = TextRole.QUERY) -> str:
        """The prefix of ``role``.

        Raises:
            ConfigError: an unknown role.
        """
        try:
            chosen = TextRole(role)
        except ValueError:
            raise ConfigError("role", role, f"use one of {[r.value for r in TextRole]}") from None
        return self.query if chosen is TextRole.QUERY else self.passage

    def apply(self, texts: Sequence[str], role: TextRole | str = TextRole.QUERY) -> list[str]:
        """``texts`` with the prefix of ``role`` in front of each."""
        prefix = self.prefix(role)
        return [prefix + text for text in texts] if prefix else list(texts)

    def apply_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """``(query, passage)`` pairs with each side's prefix."""
        if not self.enabled:
            return [(a, b) for a, b in pairs]
        return [(self.query + a, self.passage + b) for a, b in pairs]

    def to_dict(self) -> dict[str, str]:
        """``{"query": ..., "passage": ...}`` (the sentence-transformers ``prompts`` shape)."""
        return {"query": self.query, "passage": self.passage}


NO_PREFIXES = TextPrefixes()


def read_prefixes(folder: str | Path) -> TextPrefixes:
    """The prefixes recorded in an encoder folder, or in a Keel artifact's ``encoder/``.

    A folder without ``config_sentence_transformers.json`` prompts has none (MiniLM).

    Raises:
        ArtifactError: the file exists but is not valid JSON.
    """
    base = Path(folder)
    for candidate in (base / ST_CONFIG_FILE, base / "encoder" / ST_CONFIG_FILE):
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise ArtifactError(f"{candidate}: not valid JSON ({exc})") from exc
            prompts = (data.get("prompts") if isinstance(data, dict) else None) or {}
            return TextPrefixes(
                query=str(prompts.get("query", "")), passage=str(prompts.get("passage", ""))
            )
    return NO_PREFIXES


def write_prefixes(folder: str | Path, prefixes: TextPrefixes) -> None:
    """Record ``prefixes`` in ``folder/config_sentence_transformers.json`` (other keys kept).

    Used where a folder is written without sentence-transformers (a cross-encoder saved
    by transformers), so the prefixes still travel with it. No-op without prefixes.
    """
    if not prefixes.enabled:
        return
    path = Path(folder) / ST_CONFIG_FILE
    data: dict[str, object] = {}
    if path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            data = loaded if isinstance(loaded, dict) else {}
        except (OSError, json.JSONDecodeError):
            data = {}
    data["prompts"] = prefixes.to_dict()
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
