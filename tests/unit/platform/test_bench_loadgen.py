"""bench/loadgen.py: the load suites' HTTP/1.1 client, against real servers on 127.0.0.1.

Two kinds of real server: uvicorn (in-process, an ASGI app; it answers with
Content-Length, or chunked when the app streams, and closes idle connections after its
keep-alive timeout) and a bare asyncio server that writes exact bytes, for the answers
uvicorn never gives (``Connection: close``, trailers, a body up to EOF, broken ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvicorn

from bench.loadgen import (
    ClosedLoop,
    Connection,
    ConnectionLost,
    Endpoint,
    ProtocolError,
    encode_request,
)
from bench.suites.customer_service import chat_clients

HOST = "127.0.0.1"


# ------------------------------------------------------------------------ real servers
async def _receive_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def _send_json(send: Any, status: int, payload: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/echo`` (JSON with the request's body length), ``/stream`` (chunked),
    ``/missing`` (404), ``/bad-json`` (200, not JSON)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = await _receive_body(receive)
    path = scope["path"]
    if path == "/stream":  # no Content-Length: uvicorn sends it chunked
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"alpha-", b"beta-", b"gamma"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    status, payload = {
        "/echo": (200, b'{"length": %d, "state": "bot"}' % len(body)),
        "/missing": (404, b'{"detail": "not here"}'),
        "/bad-json": (200, b"<html>"),
    }.get(path, (500, b"?"))
    await _send_json(send, status, payload)


@contextlib.asynccontextmanager
async def uvicorn_server(keep_alive_s: int = 5, app: Any = _app) -> AsyncIterator[int]:
    config = uvicorn.Config(
        app, host=HOST, port=0, log_level="warning", timeout_keep_alive=keep_alive_s
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.should_exit = True
        await task


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[int, list[int]]]:
    """A bare asyncio server; yields its port and a list that counts its connections."""
    connections: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, HOST, 0)
    try:
        yield server.sockets[0].getsockname()[1], connections
    finally:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's body (the test client always sends Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return await reader.readexactly(length)


def answer_each(*answers: bytes) -> Handler:
    """A handler that answers the connection's n-th request with ``answers[n]``, then
    closes it (EOF) once the answers run out."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            await read_request(reader)
            writer.write(answer)
            await writer.drain()

    return handler


def post(port: int, path: str, body: bytes = b"{}") -> bytes:
    return encode_request("POST", path, f"{HOST}:{port}", body)


# ------------------------------------------------------------------------------ tests
def test_request_bytes_are_exact_and_bad_input_is_refused() -> None:
    endpoint = Endpoint("POST", "/chat", "h:1", headers=[("X-API-Key", "k")])
    assert endpoint.request(b'{"a":1}') == (
        b"POST /chat HTTP/1.1\r\nHost: h:1\r\nContent-Type: application/json\r\n"
        b"X-API-Key: k\r\nContent-Length: 7\r\n\r\n" + b'{"a":1}'
    )
    assert encode_request("GET", "/healthz", "h:1").endswith(b"Content-Length: 0\r\n\r\n")
    for method, path in [("post", "/x"), ("HEAD", "/x"), ("GET", "x"), ("GET", "/a b")]:
        with pytest.raises(ValueError):
            Endpoint(method, path, "h")
    with pytest.raises(ValueError, match="invalid header"):
        Endpoint("GET", "/", "h", headers=[("X-Evil", "a\r\nInjected: 1")])


def test_uvicorn_content_length_chunked_and_non_2xx() -> None:
    async def scenario() -> None:
        async with uvicorn_server() as port:
            conn = Connection(HOST, port)
            first = await conn.request(post(port, "/echo", b'{"x": "' + b"y" * 5000 + b'"}'))
            assert first.status == 200 and first.ok
            assert first.json() == {"length": 5009, "state": "bot"}
            assert first.headers["content-type"] == "application/json"
            streamed = await conn.request(post(port, "/stream"))
            assert streamed.headers["transfer-encoding"] == "chunked"
            assert streamed.body == b"alpha-beta-gamma"
            missing = await conn.request(post(port, "/missing"))
            assert missing.status == 404 and not missing.ok
            assert missing.json() == {"detail": "not here"}
            # Every answer above came on the one keep-alive connection.
            assert conn.connects == 1 and conn.reconnects == 0
            await conn.close()

    asyncio.run(scenario())


def test_reconnects_after_uvicorn_closes_an_idle_connection() -> None:
    async def scenario() -> None:
        async with uvicorn_server(keep_alive_s=1) as port:
            conn = Connection(HOST, port)
            assert (await conn.request(post(port, "/echo"))).status == 200
            # Wait until uvicorn's keep-alive timeout has closed the idle connection.
            async with asyncio.timeout(30):
                while not (conn._reader is not None and conn._reader.at_eof()):
                    await asyncio.sleep(0.1)
            assert (await conn.request(post(port, "/echo"))).status == 200
            assert conn.connects == 2 and conn.reconnects == 1
            await conn.close()

    asyncio.run(scenario())


def test_connection_close_header_reconnects_without_an_error() -> None:
    closing = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"

    async def scenario() -> None:
        async with raw_server(answer_each(closing)) as (port, connections):
            conn = Connection(HOST, port)
            for _ in range(3):
                response = await conn.request(post(port, "/x"))
                assert response.body == b"ok"
            assert len(connections) == 3 and conn.reconnects == 2
            await conn.close()

    asyncio.run(scenario())


def test_http_1_0_body_to_eof_and_chunked_with_extensions_and_trailers() -> None:
    chunked = (
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;name=value\r\nWiki\r\n9\r\npedia in \r\n0\r\nExpires: never\r\n\r\n"
    )
    to_eof = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"

    async def scenario() -> None:
        async with raw_server(answer_each(chunked, to_eof)) as (port, connections):
            conn = Connection(HOST, port)
            first = await conn.request(post(port, "/x"))
            assert (first.status, first.body) == (201, b"Wikipedia in ")
            second = await conn.request(post(port, "/x"))
            assert second.text() == "until the end"
            assert len(connections) == 1
            # HTTP/1.0 without keep-alive: the next request needs a new connection.
            third = await conn.request(post(port, "/x"))
            assert third.status == 201 and len(connections) == 2 and conn.reconnects == 1
            await conn.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("answer", "error", "match"),
    [
        (b"", ConnectionLost, "before answering"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", ConnectionLost, "middle"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", ConnectionLost, "middle"),
        (b"ICY 200 OK\r\n\r\n", ProtocolError, "status line"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", ProtocolError, "gzip"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", ProtocolError, "chunk"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx", ProtocolError, "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", ProtocolError, "header"),
    ],
)
def test_broken_answers_raise_clear_errors(answer: bytes, error: type, match: str) -> None:
    async def scenario() -> None:
        async with raw_server(answer_each(answer)) as (port, _):
            conn = Connection(HOST, port)
            with pytest.raises(error, match=match):
                await conn.request(post(port, "/x"))
            # The failed connection is dropped; that is an error, not a reconnect.
            assert conn._writer is None and conn.reconnects == 0
            await conn.close()

    asyncio.run(scenario())


def test_closed_loop_counts_requests_errors_and_bad_bodies() -> None:
    opened: list[int] = []

    def check(response: Any) -> str | None:
        return None if response.json()["state"] == "bot" else "not the bot"

    async def scenario() -> ClosedLoop:
        async with uvicorn_server() as port:
            loop = ClosedLoop(
                HOST, port, warmup_s=0.2, window_s=2.0, windows=2, on_window=opened.append
            )
            endpoint = Endpoint("POST", "/echo", f"{HOST}:{port}")

            async def client(path: str) -> None:
                conn = loop.connection()
                raw = endpoint.request(b"{}") if path == "/echo" else post(port, path)
                while loop.running:
                    await loop.send(conn, raw, check)

            await loop.run(
                [client("/echo"), client("/echo"), client("/missing"), client("/bad-json")]
            )
            return loop

    loop = asyncio.run(scenario())
    assert opened == [0, 1, -1]
    expected = {'http 404: {"detail": "not here"}', "bad body (JSONDecodeError): <html>"}
    for window in loop.windows:
        # Per window only invariants: on a loaded machine a window may see few requests.
        assert len(window.latencies) == window.requests
        assert set(window.error_kinds) <= expected
        assert sum(window.error_kinds.values()) == window.errors <= window.requests
    requests = sum(w.requests for w in loop.windows)
    errors = sum(w.errors for w in loop.windows)
    assert 0 < errors < requests  # two clients fail, two succeed
    kinds = set().union(*(w.error_kinds for w in loop.windows), loop.unwindowed_error_kinds)
    assert kinds == expected
    assert all(conn._writer is None for conn in loop.connections)  # closed by run()
    assert loop.reconnects == 0


def test_closed_loop_validates_its_windows() -> None:
    with pytest.raises(ValueError, match="windows >= 1"):
        ClosedLoop(HOST, 1, warmup_s=0, window_s=1, windows=0)


# ------------------------------------------------------------- chat-load's client loop
def _chat_app(log: list[tuple[int, str, Any]], sessions_status: int = 200) -> Any:
    """A stand-in for the support bot: ``POST /sessions`` hands out ``s1``, ``s2``, ...;
    ``POST /chat`` answers ``state: "handed_off"`` to "escalate", ``null`` to "broken",
    ``state: "bot"`` otherwise. ``log`` gets, per request, the client's port, the path
    and the message sent (``/chat``) or the session id handed out (``/sessions``)."""
    opened = [0]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _app(scope, receive, send)
            return
        body = await _receive_body(receive)
        status = 200
        if scope["path"] == "/sessions":
            opened[0] += 1
            status, answer = sessions_status, {"session_id": f"s{opened[0]}"}
            log.append((scope["client"][1], "/sessions", answer["session_id"]))
        else:
            request = json.loads(body)
            log.append((scope["client"][1], "/chat", request))
            answer = {"escalate": {"state": "handed_off"}, "broken": {"state": None}}.get(
                request["message"], {"state": "bot"}
            )
        await _send_json(send, status, json.dumps(answer).encode())

    return app


def test_chat_clients_cycle_messages_and_start_a_new_session_after_a_hand_off() -> None:
    messages = ["m0", "m1", "escalate", "m3", "broken"]
    log: list[tuple[int, str, Any]] = []

    async def scenario() -> ClosedLoop:
        async with uvicorn_server(app=_chat_app(log)) as port:
            loop = ClosedLoop(HOST, port, warmup_s=0, window_s=2.0, windows=1)
            await loop.run(chat_clients(loop, messages, 2))
            return loop

    loop = asyncio.run(scenario())
    by_client: dict[int, list[tuple[str, Any]]] = {}
    for client_port, path, what in log:
        by_client.setdefault(client_port, []).append((path, what))
    assert len(by_client) == 2  # one keep-alive connection per client
    starts = set()
    for requests in by_client.values():
        assert requests[0][0] == "/sessions"
        chats = [what for path, what in requests if path == "/chat"]
        assert chats, "a client sent no /chat request in 2 s"
        first = messages.index(chats[0]["message"])
        starts.add(first)
        # The messages in turn from the client's start (client i: i * 997), wrapping.
        assert [c["message"] for c in chats] == [
            messages[(first + k) % len(messages)] for k in range(len(chats))
        ]
        session = None
        for k, (path, what) in enumerate(requests):
            if path == "/sessions":
                session = what
                continue
            assert what["session_id"] == session  # the client's current conversation
            # A new conversation right after (and only after) a hand-off.
            after = requests[k + 1][0] if k + 1 < len(requests) else None
            assert (after == "/sessions") == (what["message"] == "escalate")
    assert starts == {0, 997 % len(messages)}
    broken = sum(1 for _, path, what in log if path == "/chat" and what["message"] == "broken")
    kinds = [loop.windows[0].error_kinds, loop.unwindowed_error_kinds]
    assert sum(k.get("no state in the answer", 0) for k in kinds) == broken
    assert loop.windows[0].errors + loop.unwindowed_errors == broken


def test_chat_clients_refuse_a_failed_session_start() -> None:
    async def scenario() -> None:
        async with uvicorn_server(app=_chat_app([], sessions_status=503)) as port:
            loop = ClosedLoop(HOST, port, warmup_s=0, window_s=1.0, windows=1)
            await loop.run(chat_clients(loop, ["m0"], 1))

    with pytest.raises(RuntimeError, match="POST /sessions answered 503"):
        asyncio.run(scenario())
