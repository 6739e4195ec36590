"""keel_service.fast_routes: well-formed JSON takes the fast path; everything else gets
exactly the answer of the endpoint's own FastAPI route."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from keel_service.errors import install_validation_handler
from keel_service.fast_routes import find_route, install_fast_json_route


class Body(BaseModel):
    name: str = Field(min_length=1, max_length=20)
    count: int = 1


class Refused(Exception):
    pass


def build(fast: bool) -> tuple[FastAPI, list[str]]:
    """An app with POST /echo (and a GET route before it); ``fast`` adds the fast path.
    The list records which path answered each request."""
    calls: list[str] = []
    router = APIRouter()

    @router.get("/other")
    def other() -> dict[str, str]:
        return {"other": "yes"}

    @router.post("/echo")
    def echo(body: Body) -> dict[str, Any]:
        calls.append("fastapi")
        if body.name == "refuse":
            raise Refused("no")
        return {"name": body.name, "count": body.count}

    async def echo_fast(body: Body, request: Request) -> JSONResponse:
        calls.append("fast")
        assert request.url.path == "/echo"
        if body.name == "refuse":
            raise Refused("no")
        return JSONResponse({"name": body.name, "count": body.count})

    app = FastAPI()

    async def refused(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"refused: {exc}"}, status_code=409)

    app.add_exception_handler(Refused, refused)
    install_validation_handler(app)  # the apps' 422 format (NaN inputs made printable)
    app.include_router(router)
    if fast:
        install_fast_json_route(app, find_route(router.routes, "/echo"), Body, echo_fast)
    return app, calls


REQUESTS: list[tuple[str, dict[str, Any]]] = [
    (
        "valid",
        {"content": b'{"name": "a", "count": 3}', "headers": {"content-type": "application/json"}},
    ),
    (
        "charset",
        {
            "content": b'{"name": "a"}',
            "headers": {"content-type": "Application/JSON; charset=utf-8"},
        },
    ),
    (
        "refused by the handler",
        {"content": b'{"name": "refuse"}', "headers": {"content-type": "application/json"}},
    ),
    ("invalid JSON", {"content": b'{"name": ', "headers": {"content-type": "application/json"}}),
    ("empty body", {"content": b"", "headers": {"content-type": "application/json"}}),
    ("a list", {"content": b"[1, 2]", "headers": {"content-type": "application/json"}}),
    ("wrong type", {"content": b'{"name": 5}', "headers": {"content-type": "application/json"}}),
    (
        "too long",
        {
            "content": json.dumps({"name": "x" * 30}).encode(),
            "headers": {"content-type": "application/json"},
        },
    ),
    (
        "NaN",
        {
            "content": b'{"name": "a", "count": NaN}',
            "headers": {"content-type": "application/json"},
        },
    ),
    ("no content type", {"content": b'{"name": "a"}'}),
    ("text/plain", {"content": b'{"name": "a"}', "headers": {"content-type": "text/plain"}}),
    ("+json", {"content": b'{"name": "a"}', "headers": {"content-type": "application/vnd.x+json"}}),
    (
        "latin-1",
        {"content": b'{"name": "caf\xe9"}', "headers": {"content-type": "application/json"}},
    ),
]


@pytest.mark.parametrize("name,request_kwargs", REQUESTS, ids=[n for n, _ in REQUESTS])
def test_every_request_gets_the_fastapi_routes_answer(
    name: str, request_kwargs: dict[str, Any]
) -> None:
    plain_app, _ = build(fast=False)
    fast_app, calls = build(fast=True)
    with TestClient(plain_app) as plain, TestClient(fast_app) as fast:
        expected = plain.post("/echo", **request_kwargs)
        got = fast.post("/echo", **request_kwargs)
    assert (got.status_code, got.json()) == (expected.status_code, expected.json()), name
    assert got.headers["content-type"] == expected.headers["content-type"]
    assert len(calls) <= 1


def test_well_formed_json_takes_the_fast_path_and_the_rest_falls_back() -> None:
    app, calls = build(fast=True)
    with TestClient(app) as client:
        assert client.post("/echo", json={"name": "a"}).status_code == 200
        assert calls == ["fast"]
        assert client.post("/echo", content=b'{"name": "a"}').status_code == 422  # no type
        assert client.post("/echo", json={"name": ""}).status_code == 422
        assert calls == ["fast"]  # FastAPI's route refused both before its endpoint ran
        assert client.post(
            "/echo", content=b'{"name": "a"}', headers={"content-type": "application/x+json"}
        ).json() == {"name": "a", "count": 1}
        assert calls == ["fast", "fastapi"]


def test_other_methods_and_routes_and_the_openapi_entry_are_unchanged() -> None:
    app, _ = build(fast=True)
    with TestClient(app) as client:
        assert client.get("/echo").status_code == 405
        assert client.get("/other").json() == {"other": "yes"}
        paths = client.get("/openapi.json").json()["paths"]
    assert "requestBody" in paths["/echo"]["post"]
    assert len([p for p in paths if p == "/echo"]) == 1


def test_install_refuses_routes_the_fast_path_would_change() -> None:
    router = APIRouter()

    def check() -> None:
        return None

    @router.post("/items/{item_id}")
    def with_path(item_id: int, body: Body) -> None:
        return None

    @router.post("/guarded", dependencies=[Depends(check)])
    def guarded(body: Body) -> None:
        return None

    @router.put("/put")
    def put(body: Body) -> None:
        return None

    async def handler(body: Body, request: Request) -> JSONResponse:
        return JSONResponse({})

    app = FastAPI()
    app.include_router(router)
    for path in ("/items/{item_id}", "/guarded", "/put"):
        with pytest.raises(ValueError):
            install_fast_json_route(app, find_route(router.routes, path), Body, handler)
    with pytest.raises(LookupError):
        find_route(router.routes, "/missing")
