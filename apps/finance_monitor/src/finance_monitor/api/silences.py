"""Silences: create, list, expire (Alertmanager-style label matchers)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from finance_monitor.api.deps import AdminDep, StoreDep
from finance_monitor.silencing import Matcher

router = APIRouter(prefix="/api/silences", tags=["silences"])


class MatcherIn(BaseModel):
    """``name`` is one of rule, kind, series, series_kind, severity."""

    name: str = Field(max_length=40)
    value: str = Field(max_length=200)
    regex: bool = False


class SilenceIn(BaseModel):
    """A new silence; ``duration_s`` from ``starts_at`` (default now)."""

    matchers: list[MatcherIn] = Field(min_length=1, max_length=10)
    duration_s: float = Field(3600, gt=0, le=30 * 86400)
    starts_at: float | None = None
    comment: str = Field("", max_length=500)


@router.get("")
def list_silences(store: StoreDep, active: bool = False) -> dict[str, Any]:
    """All silences, or only active ones."""
    silences = store.list_silences(active_at=time.time() if active else None)
    return {"silences": [s.as_dict() for s in silences]}


@router.post("", status_code=status.HTTP_201_CREATED)
def create_silence(body: SilenceIn, store: StoreDep, who: AdminDep) -> dict[str, Any]:
    """Mute matching alerts for a while (API key)."""
    starts = body.starts_at if body.starts_at is not None else time.time()
    matchers = [Matcher(m.name, m.value, m.regex) for m in body.matchers]
    return store.add_silence(
        matchers, starts, starts + body.duration_s, who, body.comment
    ).as_dict()


@router.delete("/{silence_id}", status_code=status.HTTP_204_NO_CONTENT)
def expire_silence(silence_id: str, store: StoreDep, who: AdminDep) -> None:
    """End a silence now (API key)."""
    store.expire_silence(silence_id)
