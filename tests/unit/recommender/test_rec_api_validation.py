"""Request validation: hostile bodies are a 422 naming the field, never a 500.

The schemas and the 422 handler are exercised through a small FastAPI app of their own
(the real server is covered by tests/integration/recommender).
"""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from keel_service import install_validation_handler, printable
from recommender.api.errors import install_error_handlers
from recommender.api.schemas import CatalogueUpsert, EventsRequest, RerankRequest


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    install_validation_handler(app)  # what keel_service.configure_app installs
    install_error_handlers(app)

    @app.post("/events")
    def events(body: EventsRequest) -> dict[str, int]:
        return {"n": len(body.events)}

    @app.put("/items")
    def upsert(body: CatalogueUpsert) -> dict[str, int]:
        return {"n": len(body.items)}

    @app.post("/rerank")
    def rerank(body: RerankRequest) -> dict[str, int]:
        return {"n": len(body.candidates)}

    return TestClient(app)


def event(**extra: object) -> str:
    return json.dumps({"user_id": "u", "item_id": "c001", "type": "click", **extra})


def events_body(raw_event: str) -> str:
    return '{"events": [' + raw_event + "]}"


#: (path, raw JSON body, a field the 422 must name). Raw text, because NaN, 1e400 and
#: lone surrogates are what a fuzzer sends and what ``json.dumps`` would refuse or mangle.
HOSTILE = [
    ("/events", events_body(event().replace('"u"', '"u\\ud800"')), "user_id"),
    ("/events", events_body(event().replace('"c001"', '"c\\u0000"')), "item_id"),
    ("/events", events_body(event().replace('"click"', '"click", "value": NaN')), "value"),
    (
        "/events",
        events_body(event().replace('"click"', '"click", "timestamp": 1e400')),
        "timestamp",
    ),
    ("/events", events_body(event(timestamp=1e300)), "timestamp"),
    ("/events", events_body(event(position=10**30)), "position"),
    ("/events", events_body(event(bucket="b" * 101)), "bucket"),
    ("/events", events_body(event(value=-1e300)), "value"),
    ("/items", '{"items": [{"id": "a", "title": "T\\udfff"}]}', "title"),
    ("/items", '{"items": [{"id": "a", "title": "T", "features": {"p": Infinity}}]}', "p"),
    ("/items", '{"items": [{"id": "a", "title": "T", "features": {"p\\ud83d": 1}}]}', "features"),
    ("/items", '{"items": [{"id": "a", "title": "T", "created_at": 1e308}]}', "created_at"),
    (
        "/items",
        '{"items": [{"id": "a", "title": "T", "categories": ["%s"]}]}' % ("x" * 101),
        "categories",
    ),
    ("/rerank", '{"candidates": ["c\\ud800"]}', "candidates"),
    ("/rerank", '{"candidates": ["c1"], "as_of": -Infinity}', "as_of"),
    ("/rerank", '{"candidates": ["c1"], "feature_weights": {"p": 1e308}}', "feature_weights"),
    ("/rerank", '{"candidates": [{"id": "x", "features": {"p": 1e400}}]}', "candidates"),
    ("/rerank", '{"candidates": ["c1"], "filters": {"exclude_ids": ["\\u0000"]}}', "exclude_ids"),
    ("/rerank", '{"candidates": ["%s"]}' % ("c" * 201), "candidates"),
]


@pytest.mark.parametrize(("path", "raw", "field"), HOSTILE)
def test_hostile_values_are_a_422_naming_the_field(
    client: TestClient, path: str, raw: str, field: str
) -> None:
    method = client.put if path == "/items" else client.post
    resp = method(path, content=raw.encode(), headers={"content-type": "application/json"})
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]  # the body is valid JSON, whatever the input held
    locs = [[str(p) for p in err["loc"]] for err in detail]
    assert any(any(field in part for part in loc) for loc in locs), locs


def test_duplicate_catalogue_ids_are_named(client: TestClient) -> None:
    body = {"items": [{"id": i, "title": "T"} for i in ["a", "b", "a", "c", "b"]]}
    resp = client.put("/items", json=body)
    assert resp.status_code == 422
    err = resp.json()["detail"][0]
    assert err["loc"] == ["body", "items"]
    assert "'a'" in err["msg"] and "'b'" in err["msg"] and "'c'" not in err["msg"]


def test_valid_bodies_pass(client: TestClient) -> None:
    assert client.post("/events", json={"events": [json.loads(event())]}).status_code == 200
    ok = {"items": [{"id": "é-1", "title": "Crème brûlée 🍮", "features": {"price": 1e6}}]}
    assert client.put("/items", json=ok).status_code == 200


def test_printable_makes_any_echo_encodable() -> None:
    echo = printable({"k\ud800": ["x" * 500, float("nan"), float("inf"), "\udfff"]})
    text = json.dumps(echo, allow_nan=False)
    text.encode("utf-8")  # raises if a lone surrogate survived
    assert "\\\\ud800" in text and "NaN" in text
