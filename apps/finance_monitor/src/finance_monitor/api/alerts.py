"""Alerts: list, fetch, acknowledge."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query

from finance_monitor.api.deps import AdminDep, StoreDep

router = APIRouter(prefix="/api/alerts", tags=["alerts"])


@router.get("")
def list_alerts(
    store: StoreDep,
    limit: int = Query(100, ge=1, le=1000),
    status: Literal["firing", "acknowledged"] | None = None,
    series: str | None = Query(None, max_length=200),
) -> dict[str, Any]:
    """Recent alerts, newest first."""
    return {"alerts": store.list_alerts(limit=limit, status=status, series=series)}


@router.get("/{key}")
def get_alert(key: str, store: StoreDep) -> dict[str, Any]:
    """One alert by its stable key."""
    return store.get_alert(key)


@router.post("/{key}/ack")
def acknowledge(key: str, store: StoreDep, who: AdminDep) -> dict[str, Any]:
    """Acknowledge an alert (API key)."""
    return store.acknowledge_alert(key, by=who)
