"""Alert rules CRUD (writes need the API key); trend workers reload on change."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from finance_monitor.api.deps import AdminDep, StoreDep
from finance_monitor.errors import RuleConfigError
from finance_monitor.rules import RuleSpec

router = APIRouter(prefix="/api/rules", tags=["rules"])


@router.get("")
def list_rules(store: StoreDep) -> dict[str, Any]:
    """Every configured rule."""
    return {"rules": [r.as_dict() for r in store.list_rules()]}


@router.get("/{rule_id}")
def get_rule(rule_id: str, store: StoreDep) -> dict[str, Any]:
    """One rule."""
    return store.get_rule(rule_id).as_dict()


@router.post("", status_code=status.HTTP_201_CREATED)
def create_rule(
    body: dict[str, Any], store: StoreDep, who: AdminDep, response: Response
) -> dict[str, Any]:
    """Create a rule (or replace one with the same id: 200). Bad fields -> 422 naming them."""
    rule = RuleSpec.from_dict(body)
    if not store.upsert_rule(rule):
        response.status_code = status.HTTP_200_OK
    return rule.as_dict()


@router.put("/{rule_id}")
def replace_rule(
    rule_id: str, body: dict[str, Any], store: StoreDep, who: AdminDep
) -> dict[str, Any]:
    """Replace a rule; the body's id, if given, must match the path."""
    store.get_rule(rule_id)
    if body.get("id", rule_id) != rule_id:
        raise RuleConfigError("id", body.get("id"), f"must match the path ({rule_id!r})")
    rule = RuleSpec.from_dict({**body, "id": rule_id})
    store.upsert_rule(rule)
    return rule.as_dict()


@router.delete("/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_rule(rule_id: str, store: StoreDep, who: AdminDep) -> None:
    """Delete a rule."""
    store.delete_rule(rule_id)
