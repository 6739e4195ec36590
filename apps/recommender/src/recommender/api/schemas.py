"""Request and response models of the HTTP API (validation lives here).

Every request model rejects, with a 422 naming the field: unknown fields, NaN and
infinities (also huge literals such as ``1e400`` that JSON parsing turns into infinity),
numbers outside their documented range, text with NUL characters or lone UTF-16
surrogates (SQLite and the encoder cannot store or read them), text longer than its
``max_length`` and lists longer than theirs.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from recommender.catalogue import duplicate_ids

#: NUL and lone surrogates (U+D800..U+DFFF): valid in a Python str, not in stored text.
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")

#: Timestamps are Unix seconds below 1e10 (year 2286): popularity keys pack
#: ``row * 1e10 + timestamp`` into one float.
MAX_TIMESTAMP = 1e10
#: Caller feature values and weights: large enough for any real price or count, small
#: enough that weighted sums stay finite.
MAX_FEATURE = 1e9
MAX_WEIGHT = 1e6

ItemId = Field(min_length=1, max_length=200)
IdStr = Annotated[str, Field(min_length=1, max_length=200)]
Category = Annotated[str, Field(min_length=1, max_length=100)]
FeatureName = Annotated[str, Field(min_length=1, max_length=100)]
FeatureValue = Annotated[float, Field(ge=-MAX_FEATURE, le=MAX_FEATURE)]
Weight = Annotated[float, Field(ge=-MAX_WEIGHT, le=MAX_WEIGHT)]
Timestamp = Annotated[float, Field(ge=0.0, lt=MAX_TIMESTAMP, description="Unix seconds")]


def text_problem(value: Any) -> str | None:
    """Why ``value`` (a str, or lists/dicts of them) cannot be stored as text, or None."""
    if isinstance(value, str):
        bad = _BAD_TEXT.search(value)
        if bad is None:
            return None
        char = bad.group()
        if char == "\x00":
            return "must not contain NUL characters"
        return f"must be valid Unicode text (lone surrogate U+{ord(char):04X} at {bad.start()})"
    if isinstance(value, list | tuple | set | frozenset):
        for v in value:
            if (problem := text_problem(v)) is not None:
                return problem
    elif isinstance(value, dict):
        for k, v in value.items():
            if (problem := text_problem(k) or text_problem(v)) is not None:
                return problem
    return None


class StrictModel(BaseModel):
    """Base of request models: no extra fields, finite numbers, storable text."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        problem = text_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class ItemIn(StrictModel):
    """A history item or candidate; send ``text`` for items not in the catalogue."""

    id: str = ItemId
    text: str | None = Field(default=None, min_length=1, max_length=5000)
    title: str | None = Field(default=None, max_length=500)
    categories: list[Category] | None = Field(default=None, max_length=50)
    features: dict[FeatureName, FeatureValue] = Field(default_factory=dict, max_length=50)
    timestamp: Timestamp | None = Field(default=None, description="history only: Unix seconds")


#: An entry is a catalogue id or a full item.
ItemEntry = IdStr | ItemIn


class Filters(StrictModel):
    """Business rules applied before ranking."""

    include_categories: list[Category] = Field(default_factory=list, max_length=100)
    exclude_categories: list[Category] = Field(default_factory=list, max_length=100)
    exclude_ids: list[IdStr] = Field(default_factory=list, max_length=10_000)


class RerankRequest(StrictModel):
    """Body of ``POST /rerank`` (list sizes are also capped by ``max_candidates`` /
    ``max_history``)."""

    user_id: str | None = Field(default=None, min_length=1, max_length=200)
    history: list[ItemEntry] = Field(
        default_factory=list, max_length=10_000, description="oldest first"
    )
    candidates: list[ItemEntry] = Field(min_length=1, max_length=100_000)
    top_k: int | None = Field(default=None, ge=1, le=10_000)
    mmr_lambda: float | None = Field(default=None, ge=0.0, le=1.0)
    exclude_seen: bool = True
    filters: Filters = Field(default_factory=Filters)
    feature_weights: dict[FeatureName, Weight] = Field(default_factory=dict, max_length=50)
    explain: bool = True
    as_of: Timestamp | None = None


class RecommendRequest(StrictModel):
    """Body of ``POST /recommend``."""

    user_id: str | None = Field(default=None, min_length=1, max_length=200)
    history: list[ItemEntry] = Field(default_factory=list, max_length=10_000)
    top_k: int = Field(default=10, ge=1, le=200)
    pool_size: int = Field(default=200, ge=1, le=1000)
    mmr_lambda: float | None = Field(default=None, ge=0.0, le=1.0)
    exclude_seen: bool = True
    filters: Filters = Field(default_factory=Filters)
    explain: bool = True


class HistoryReasonOut(BaseModel):
    id: str
    title: str
    similarity: float
    cooccurrence: float
    contribution: float


class RankedItemOut(BaseModel):
    id: str
    title: str
    rank: int
    score: float
    contributions: dict[str, float]
    features: dict[str, float]
    because: list[HistoryReasonOut]


class FilteredOut(BaseModel):
    id: str
    reason: str


class RankingOut(BaseModel):
    """Response of ``/rerank`` and ``/recommend``."""

    request_id: str
    user_id: str | None
    bucket: str
    mmr_lambda: float
    history_used: int
    took_ms: float
    items: list[RankedItemOut]
    filtered: list[FilteredOut]


class EventIn(StrictModel):
    """An interaction event sent by the product backend.

    The timestamp's range here is only its format; whether it is close enough to the
    server's clock is judged per event by the service (``max_future_skew_s``,
    ``max_past_skew_days``).
    """

    user_id: str = ItemId
    item_id: str = ItemId
    type: Literal["impression", "click", "purchase", "rating", "dismiss"]
    timestamp: Timestamp | None = None
    bucket: str | None = Field(default=None, max_length=100)
    request_id: str | None = Field(default=None, max_length=100)
    position: int | None = Field(default=None, ge=0, le=1_000_000)
    value: FeatureValue | None = None


class EventsRequest(StrictModel):
    """Body of ``POST /events``."""

    events: list[EventIn] = Field(min_length=1, max_length=10_000)


class EventRejectionOut(BaseModel):
    """One refused event of a batch."""

    index: int
    item_id: str
    field: str
    reason: Literal["future_timestamp", "past_timestamp", "unknown_item"]
    message: str


class EventsOut(BaseModel):
    """Response of ``POST /events``: 201 when every event was stored (``rejected`` is
    then empty), 207 when only some were."""

    stored: int
    rejected: list[EventRejectionOut] = Field(default_factory=list)


class CatalogueItemIn(StrictModel):
    """A catalogue item for the admin API."""

    id: str = ItemId
    title: str = Field(min_length=1, max_length=500)
    text: str = Field(default="", max_length=20_000)
    categories: list[Category] = Field(default_factory=list, max_length=50)
    features: dict[FeatureName, FeatureValue] = Field(default_factory=dict, max_length=50)
    created_at: Timestamp | None = None


class CatalogueUpsert(StrictModel):
    """Body of ``PUT /catalogue/items`` (each id at most once)."""

    items: list[CatalogueItemIn] = Field(min_length=1, max_length=5000)

    @field_validator("items")
    @classmethod
    def _unique_ids(cls, value: list[CatalogueItemIn]) -> list[CatalogueItemIn]:
        dupes = duplicate_ids([item.id for item in value])
        if dupes:
            shown = ", ".join(repr(i) for i in dupes[:10])
            more = f" (+{len(dupes) - 10} more)" if len(dupes) > 10 else ""
            raise ValueError(f"duplicate id(s) {shown}{more}: send each id once")
        return value
