"""The dashboard's headline feed: latest scored messages with their language, and counts."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query

from finance_monitor.api.deps import RuntimeDep, SettingsDep
from finance_monitor.feed import FEED_SIZE, ticker_names
from finance_monitor.tickers import load_companies

router = APIRouter(tags=["dashboard"])


@lru_cache(maxsize=4)
def _names(companies_file: Path | None) -> dict[str, str]:
    return ticker_names(load_companies(companies_file))


@router.get("/api/headlines")
def headlines(
    runtime: RuntimeDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=FEED_SIZE)] = 20,
) -> dict[str, Any]:
    """The latest messages this process's scorer scored (newest first), each with its
    language (``zh`` / ``en``), topic, sentiment and tickers (symbol + company name), and
    how many messages of each language it has scored since it started.

    ``available`` is false when no scorer runs in this process (``RUN_WORKERS=false``).
    """
    counts, items = runtime.feed.snapshot(limit)
    names = _names(settings.companies_file)
    return {
        "available": runtime.scorer is not None,
        "counts": {"en": counts.get("en", 0), "zh": counts.get("zh", 0)},
        "chinese_heads": runtime.model is not None and runtime.model.chinese is not None,
        "headlines": [
            {**item, "tickers": [{"symbol": t, "name": names.get(t)} for t in item["tickers"]]}
            for item in items
        ],
    }
