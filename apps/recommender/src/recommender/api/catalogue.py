"""Catalogue admin (API key) and read-only item lookups."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Path, Query

from recommender.api.deps import AdminKey, ServiceDep
from recommender.api.schemas import CatalogueUpsert
from recommender.datasets import Item

router = APIRouter(prefix="/catalogue", tags=["catalogue"])


def _item_json(item: Item) -> dict[str, object]:
    return {
        "id": item.id,
        "title": item.title,
        "text": item.text,
        "categories": item.categories,
        "features": item.features,
        "created_at": item.created_at,
    }


@router.put("/items", dependencies=[AdminKey], summary="Insert or update items (admin)")
def upsert_items(body: CatalogueUpsert, service: ServiceDep) -> dict[str, int]:
    """Embeds new or changed texts once, persists them and updates the FAISS index.

    Each id may appear once per request (422 naming the duplicates otherwise).
    """
    items = [
        Item(i.id, i.title, i.text, list(i.categories), dict(i.features), i.created_at)
        for i in body.items
    ]
    inserted, updated = service.upsert_items(items)
    return {"inserted": inserted, "updated": updated, "size": len(service.catalogue.snapshot)}


@router.delete("/items/{item_id}", dependencies=[AdminKey], summary="Delete an item (admin)")
def delete_item(
    service: ServiceDep, item_id: str = Path(min_length=1, max_length=200)
) -> dict[str, object]:
    """Remove an item from the database, memory and the index."""
    if service.delete_items([item_id]) == 0:
        raise HTTPException(404, detail=f"item_id {item_id!r} not in the catalogue")
    return {"deleted": item_id, "size": len(service.catalogue.snapshot)}


@router.get("/items/{item_id}", summary="One catalogue item")
def get_item(
    service: ServiceDep, item_id: str = Path(min_length=1, max_length=200)
) -> dict[str, object]:
    """An item by id."""
    snap = service.catalogue.snapshot
    row = snap.rows.get(item_id)
    if row is None:
        raise HTTPException(404, detail=f"item_id {item_id!r} not in the catalogue")
    return _item_json(snap.items[row])


@router.get("/items", summary="List catalogue items")
def list_items(
    service: ServiceDep,
    offset: int = Query(0, ge=0),
    limit: int = Query(50, ge=1, le=1000),
) -> dict[str, object]:
    """A page of the catalogue in insertion order."""
    snap = service.catalogue.snapshot
    return {
        "total": len(snap),
        "items": [_item_json(it) for it in snap.items[offset : offset + limit]],
    }
