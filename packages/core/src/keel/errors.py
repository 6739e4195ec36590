"""Keel's exception hierarchy: one root, ``KeelError``, and a subclass per failure kind.

Third-party errors are wrapped in one of these so callers (and the apps' ``api/``
layers, which turn them into HTTP responses) handle a single family.
"""

from __future__ import annotations

from pathlib import Path


class KeelError(Exception):
    """Root of every error raised by Keel."""


class ConfigError(KeelError, ValueError):
    """A config object got a bad value. The message names the field and the value."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}={value!r}: {reason}")


class DataError(KeelError, ValueError):
    """Bad input data. Names the file and, where known, the 1-based line."""

    def __init__(
        self, reason: str, path: str | Path | None = None, line: int | None = None
    ) -> None:
        self.reason = reason
        self.path = str(path) if path is not None else None
        self.line = line
        where = ""
        if self.path is not None:
            where = self.path + (f":{line}" if line is not None else "") + ": "
        super().__init__(where + reason)


class ModelNotFoundError(KeelError, LookupError):
    """A packaged base model or a saved artifact is missing."""


class ArtifactError(KeelError):
    """A model folder exists but cannot be read as a Keel artifact."""


class IndexNotBuiltError(KeelError):
    """A retrieval index was searched before anything was added or loaded."""


class QueueFullError(KeelError):
    """A bounded request queue (micro-batcher) is full; the caller should back off."""


class DeadlineExceededError(KeelError, TimeoutError):
    """A request waited longer than its deadline."""
