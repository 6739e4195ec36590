"""Silences: create, list, expire (Alertmanager's label matchers: =, !=, =~, !~)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, Field, model_validator

from finance_monitor.api.deps import AdminDep, StoreDep
from finance_monitor.silencing import OPERATORS, Matcher

router = APIRouter(prefix="/api/silences", tags=["silences"])


class MatcherIn(BaseModel):
    """One matcher, in Alertmanager's shape (``isRegex``, ``isEqual``), as ``op``
    (``=``, ``!=``, ``=~``, ``!~``), or in the older shape (``regex``).

    ``name`` is one of alertname, rule, series, kind (topic | ticker), severity,
    series_kind, rule_kind.
    """

    name: str = Field(max_length=40)
    value: str = Field(max_length=200)
    isRegex: bool | None = None  # Alertmanager's field name
    isEqual: bool = True  # Alertmanager's field name
    op: str | None = Field(None, max_length=2)
    regex: bool = False

    @model_validator(mode="after")
    def _check_op(self) -> MatcherIn:
        if self.op is not None and self.op not in OPERATORS:
            raise ValueError(f"op: use one of {list(OPERATORS)}")
        return self

    def to_matcher(self) -> Matcher:
        """The domain matcher (validates the label name and the regex)."""
        if self.op is not None:
            return Matcher.parse(self.name, self.op, self.value)
        regex = self.isRegex if self.isRegex is not None else self.regex
        return Matcher(self.name, self.value, regex, self.isEqual)


class SilenceIn(BaseModel):
    """A new silence, from ``starts_at`` (default now) for ``duration_s`` or until
    ``ends_at`` (Unix seconds)."""

    matchers: list[MatcherIn] = Field(min_length=1, max_length=10)
    duration_s: float = Field(3600, gt=0, le=30 * 86400)
    starts_at: float | None = Field(None, ge=0, le=1e11)
    ends_at: float | None = Field(None, ge=0, le=1e11)
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
    ends = body.ends_at if body.ends_at is not None else starts + body.duration_s
    matchers = [m.to_matcher() for m in body.matchers]
    return store.add_silence(matchers, starts, ends, who, body.comment).as_dict()


@router.delete("/{silence_id}", status_code=status.HTTP_204_NO_CONTENT)
def expire_silence(silence_id: str, store: StoreDep, who: AdminDep) -> None:
    """End a silence now (API key)."""
    store.expire_silence(silence_id)
