"""Request and response models of the HTTP API (validation lives here)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ItemId = Field(min_length=1, max_length=200)


class ItemIn(BaseModel):
    """A history item or candidate; send ``text`` for items not in the catalogue."""

    model_config = ConfigDict(extra="forbid")

    id: str = ItemId
    text: str | None = Field(default=None, min_length=1, max_length=5000)
    title: str | None = Field(default=None, max_length=500)
    categories: list[str] | None = Field(default=None, max_length=50)
    features: dict[str, float] = Field(default_factory=dict, max_length=50)
    timestamp: float | None = Field(default=None, description="history only: Unix seconds")

    @field_validator("features")
    @classmethod
    def _finite(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in value.items() if not math.isfinite(v)]
        if bad:
            raise ValueError(f"features {bad} must be finite numbers")
        return value


#: An entry is a catalogue id or a full item.
ItemEntry = str | ItemIn


class Filters(BaseModel):
    """Business rules applied before ranking."""

    model_config = ConfigDict(extra="forbid")

    include_categories: list[str] = Field(default_factory=list, max_length=100)
    exclude_categories: list[str] = Field(default_factory=list, max_length=100)
    exclude_ids: list[str] = Field(default_factory=list, max_length=10_000)


class RerankRequest(BaseModel):
    """Body of ``POST /rerank``."""

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(default=None, min_length=1, max_length=200)
    history: list[ItemEntry] = Field(default_factory=list, description="oldest first")
    candidates: list[ItemEntry] = Field(min_length=1)
    top_k: int | None = Field(default=None, ge=1, le=10_000)
    mmr_lambda: float | None = Field(default=None, ge=0.0, le=1.0)
    exclude_seen: bool = True
    filters: Filters = Field(default_factory=Filters)
    feature_weights: dict[str, float] = Field(default_factory=dict, max_length=50)
    explain: bool = True
    as_of: float | None = None


class RecommendRequest(BaseModel):
    """Body of ``POST /recommend``."""

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(default=None, min_length=1, max_length=200)
    history: list[ItemEntry] = Field(default_factory=list)
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


class EventIn(BaseModel):
    """An interaction event sent by the product backend."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = ItemId
    item_id: str = ItemId
    type: Literal["impression", "click", "purchase", "rating", "dismiss"]
    timestamp: float | None = Field(default=None, ge=0)
    bucket: str | None = Field(default=None, max_length=100)
    request_id: str | None = Field(default=None, max_length=100)
    position: int | None = Field(default=None, ge=0)
    value: float | None = None


class EventsRequest(BaseModel):
    """Body of ``POST /events``."""

    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1, max_length=10_000)


class CatalogueItemIn(BaseModel):
    """A catalogue item for the admin API."""

    model_config = ConfigDict(extra="forbid")

    id: str = ItemId
    title: str = Field(min_length=1, max_length=500)
    text: str = Field(default="", max_length=20_000)
    categories: list[str] = Field(default_factory=list, max_length=50)
    features: dict[str, float] = Field(default_factory=dict, max_length=50)
    created_at: float | None = None


class CatalogueUpsert(BaseModel):
    """Body of ``PUT /catalogue/items``."""

    model_config = ConfigDict(extra="forbid")

    items: list[CatalogueItemIn] = Field(min_length=1, max_length=5000)
