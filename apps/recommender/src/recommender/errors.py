"""Exceptions of the recommender app; ``RecommenderError`` is the root.

They are turned into HTTP responses only in ``recommender.api``.
"""

from __future__ import annotations


class RecommenderError(Exception):
    """Root of every error raised by the recommender app."""


class UnknownItemError(RecommenderError):
    """A request names catalogue item ids that do not exist.

    Attributes:
        field: the request field that held the ids (e.g. ``"candidates"``).
        item_ids: the ids that were not found.
    """

    kind = "unknown_item"

    def __init__(self, field: str, item_ids: list[str]) -> None:
        self.field = field
        self.item_ids = item_ids
        shown = ", ".join(repr(i) for i in item_ids[:10])
        more = f" (+{len(item_ids) - 10} more)" if len(item_ids) > 10 else ""
        super().__init__(f"{field}: unknown item id(s) {shown}{more}; send 'text' or upsert them")


class DataFormatError(RecommenderError):
    """An input data file (catalogue, interactions) is malformed.

    Attributes:
        path: the file.
        line: 1-based line number in the file (header is line 1), or None.
        reason: what is wrong.
    """

    def __init__(self, reason: str, path: str, line: int | None = None) -> None:
        self.reason = reason
        self.path = path
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")


class ModelNotReadyError(RecommenderError):
    """The models/artifacts are missing or still being prepared."""


class ArtifactMismatchError(RecommenderError):
    """Stored artifacts do not fit together (e.g. embedding dimension differs)."""


class DuplicateItemError(RecommenderError):
    """A request lists the same item id more than once where ids must be unique.

    Attributes:
        field: the request field that held the ids (e.g. ``"items"``).
        item_ids: the ids that occur more than once.
    """

    kind = "duplicate_id"

    def __init__(self, field: str, item_ids: list[str]) -> None:
        self.field = field
        self.item_ids = item_ids
        shown = ", ".join(repr(i) for i in item_ids[:10])
        more = f" (+{len(item_ids) - 10} more)" if len(item_ids) > 10 else ""
        super().__init__(f"{field}: duplicate id(s) {shown}{more}; send each id once")
