"""A hot JSON ``POST`` endpoint's well-formed requests, without FastAPI's per-request work.

For an endpoint whose whole job costs a few milliseconds of CPU, FastAPI's request
handling is a measurable share of it: the router tries every earlier route, then the
route's handler builds its context, reads the body, ``json.loads`` it, solves the
dependencies, validates the Python objects and opens two exit stacks. :class:`FastJSONRoute`
answers the common case directly: a body whose ``Content-Type`` is ``application/json``
and that the endpoint's pydantic model validates straight from the bytes
(``model_validate_json``). Every other request (no or another content type, invalid JSON,
a body the model refuses, ...) is replayed, body included, to the app's router with the
fast route out of the way, so the endpoint's own FastAPI route answers it: its errors
are FastAPI's, byte for byte.

:func:`install_fast_json_route` puts it first in the app's routes. The FastAPI route
stays registered: it documents the endpoint in OpenAPI and answers what the fast path
hands it. Exceptions raised by the handler reach the app's exception handlers as from
any route (Starlette's ``ExceptionMiddleware`` sits above the router), and the app's
middleware (request ids, body limit, metrics, logs) runs as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from fastapi import FastAPI, HTTPException
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

M = TypeVar("M", bound=BaseModel)

#: ``handler(payload, request)``: the endpoint's work for a validated body.
Handler = Callable[[M, Request], Awaitable[Response]]

#: Scope key set on a request handed back to the router: fast routes then do not match.
_HANDED_BACK = "keel.fast_route.handed_back"


class FastJSONRoute(Generic[M]):
    """The ASGI app of a fast route (see the module's docstring).

    Args:
        model: the endpoint's body model.
        handler: called with the validated body and the request; returns the response.
        router: the app's router, which gets every request the fast path does not answer
            (and then routes it to the endpoint's FastAPI route).
    """

    def __init__(self, model: type[M], handler: Handler[M], router: ASGIApp) -> None:
        self.model = model
        self.handler = handler
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            body = await request.body()
        except HTTPException:  # the body limit's 413
            raise
        except Exception as exc:  # a client gone mid-body: what FastAPI answers then
            raise HTTPException(400, detail="There was an error parsing the body") from exc
        payload = self._parse(scope, body)
        if payload is None:
            scope[_HANDED_BACK] = True
            await self.router(scope, _replay(body, receive), send)
            return
        response = await self.handler(payload, request)
        await response(scope, receive, send)

    def _parse(self, scope: Scope, body: bytes) -> M | None:
        """The validated body, or None when FastAPI's route should answer."""
        if not body or not _is_plain_json(scope):
            return None
        try:
            return self.model.model_validate_json(body)
        except ValidationError:
            return None


class _FastRoute(Route):
    """A route that steps aside for a request its fast path handed back."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get(_HANDED_BACK):
            return Match.NONE, {}
        return super().matches(scope)


def _is_plain_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json"
    return False


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` that gives ``body`` once (as one message), then the client's own."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def install_fast_json_route(
    app: FastAPI, route: APIRoute, model: type[M], handler: Handler[M]
) -> Route:
    """Serve ``route``'s well-formed JSON requests with ``handler`` (see the module's
    docstring); returns the new route, first in ``app.router.routes``.

    ``route`` is the endpoint's FastAPI route, included in ``app`` with no prefix and no
    dependencies of its own or of its router's (the fast path would skip them); ``handler``
    does what the endpoint does with a valid body.
    """
    if not route.methods or route.methods - {"POST"}:
        raise ValueError(f"{route.path}: a fast JSON route is for POST only, not {route.methods}")
    if route.param_convertors:
        raise ValueError(f"{route.path}: a fast JSON route has no path parameters")
    if route.dependencies:
        raise ValueError(f"{route.path}: the fast path would skip the route's dependencies")
    fast = _FastRoute(
        route.path,
        FastJSONRoute(model, handler, app.router),
        methods=["POST"],
        name=f"{route.name}_fast",
        include_in_schema=False,
    )
    app.router.routes.insert(0, fast)
    return fast


def find_route(routes: list[Any], path: str) -> APIRoute:
    """The ``APIRoute`` for ``path`` among ``routes`` (an ``APIRouter``'s)."""
    for candidate in routes:
        if isinstance(candidate, APIRoute) and candidate.path == path:
            return candidate
    raise LookupError(f"no API route {path!r}")
