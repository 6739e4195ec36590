"""Request limits: body size (before parsing) and per-client rate limiting."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from fastapi import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodySizeLimitMiddleware:
    """Refuses bodies over ``max_bytes`` with 413, before anything parses them.

    A ``Content-Length`` over the limit is refused at once; a chunked body is counted as
    it arrives and refused when it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await refuse_too_large(self.max_bytes, scope, receive, send)
            return
        await self.app(scope, limited_receive(receive, self.max_bytes), send)


def limited_receive(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises 413 once the request's body passes ``limit`` bytes."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                # FastAPI re-raises HTTPException from body parsing unchanged.
                raise HTTPException(413, detail=f"request body over {limit} bytes")
        return message

    return counted


async def refuse_too_large(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer 413 (and close the connection) for a body declared over ``limit`` bytes."""
    response = JSONResponse(
        status_code=413,
        content={"detail": f"request body over {limit} bytes"},
        headers={"Connection": "close"},
    )
    await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class RateLimiter:
    """Allows ``per_minute`` requests per client on average with bursts of ``burst``.

    Args:
        per_minute: refill rate of each client's bucket.
        burst: bucket size (requests a client may send at once).
        max_clients: buckets kept; the least recently seen client is forgotten first.
        clock: time source (tests pass a fake one).
    """

    def __init__(
        self,
        per_minute: int,
        burst: int,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute < 1 or burst < 1:
            raise ValueError(f"per_minute={per_minute!r}, burst={burst!r}: both must be >= 1")
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def acquire(self, client: str) -> float:
        """Take one token for ``client``; returns 0 if allowed, else seconds to wait."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[client] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return wait


class ClientIdentifier:
    """Which client a request counts against.

    By default the TCP peer's address. With ``header`` set (for example
    ``X-Forwarded-For``), and only when the peer is one of ``trusted_proxies``, the
    left-most valid address in that header: the client the proxy saw.
    """

    def __init__(self, header: str | None = None, trusted_proxies: Iterable[str] = ()) -> None:
        self.header = header.lower() if header else None
        self.trusted = frozenset(trusted_proxies)

    def __call__(self, request: Request) -> str:
        peer = request.client.host if request.client else "unknown"
        if self.header is None or peer not in self.trusted:
            return peer
        raw = request.headers.get(self.header)
        if not raw:
            return peer
        for part in raw.split(","):
            candidate = part.strip()
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                continue
        return peer
