"""A lean closed-loop HTTP/1.1 load generator for the serving benchmarks.

The load suites (``chat-load``, ``rerank-load``) drive a real uvicorn server from the
same machine, so every millisecond of CPU the load generator spends is taken from the
server. A full client library costs more CPU per request than the server it measures
(httpx: about 6.8 ms per ``/chat`` request against the server's 5.5 ms on the 2-core
machine), so the suites use this one instead:

- :class:`Connection`: one persistent HTTP/1.1 keep-alive connection (asyncio streams),
  raw pre-encoded requests in, :class:`Response` out. The parser reads the status line
  and the headers, then a ``Content-Length`` body, a ``Transfer-Encoding: chunked``
  body, or (no length given) a body up to the end of the connection.
- Reconnects: when the server has closed the connection (it answered with
  ``Connection: close``, or the connection hit EOF while idle, e.g. uvicorn's
  keep-alive timeout), the next request opens a new one and counts a *reconnect*, not
  an error. A request that was sent and then lost its connection before the whole
  answer arrived raises :class:`ConnectionLost`: an error (a POST is not retried).
- :class:`ClosedLoop`: clients with no think time, a warm-up, then timed windows back to
  back; a request counts in the window it started in if it ended in it too. Every
  non-2xx status, every broken connection and every failed body check is an error,
  counted by kind.

``HEAD`` requests are not supported (their answers announce a length but send no body).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson  # in the workspace's lock (the recommender serves with it)

#: What the suites record as ``load_generator`` in their JSON.
LOAD_GENERATOR = "keel asyncio HTTP/1.1 keep-alive (bench/loadgen.py)"

_HEAD_END = b"\r\n\r\n"
_CRLF = b"\r\n"
_HEX = frozenset(b"0123456789abcdefABCDEF")


class LoadGenError(Exception):
    """A request failed in a way the server is to blame for (not a local bug)."""


class ProtocolError(LoadGenError):
    """The answer is not valid HTTP/1.1, or uses something this client does not support."""


class ConnectionLost(LoadGenError):
    """The request was sent, and the connection ended before the whole answer came."""


#: What a failed request can raise: count these as errors (by ``type(exc).__name__``).
REQUEST_ERRORS: tuple[type[BaseException], ...] = (LoadGenError, OSError, TimeoutError)


class Endpoint:
    """Pre-encoded request heads for one method and path on one server.

    ``Endpoint("POST", "/chat", "127.0.0.1:8000").request(body)`` is the complete request
    (``Host``, ``Content-Type: application/json``, ``Content-Length``, then the body), as
    bytes; only the length is formatted per request.
    """

    def __init__(
        self,
        method: str,
        path: str,
        host: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        content_type: str = "application/json",
    ) -> None:
        if not method.isascii() or not method.isalpha() or not method.isupper():
            raise ValueError(f"method={method!r}: need an upper-case HTTP method, e.g. 'POST'")
        if method == "HEAD":
            raise ValueError("HEAD is not supported (its answers carry no body)")
        if not path.startswith("/") or any(c in path for c in " \r\n"):
            raise ValueError(f"path={path!r}: need an absolute path with no spaces or newlines")
        fields = [("Host", host), ("Content-Type", content_type), *headers]
        for name, value in fields:
            if not name or any(c in name for c in ": \r\n") or any(c in value for c in "\r\n"):
                raise ValueError(f"invalid header {name!r}: {value!r}")
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields)
        self._prefix = head.encode("latin-1") + b"Content-Length: "

    def request(self, body: bytes = b"") -> bytes:
        """The whole request with ``body`` (``Content-Length`` is set, 0 when empty)."""
        return self._prefix + str(len(body)).encode() + _HEAD_END + body


def encode_request(
    method: str,
    path: str,
    host: str,
    body: bytes = b"",
    *,
    headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """One request as bytes (see :class:`Endpoint`, which also caches the head)."""
    return Endpoint(method, path, host, headers=headers).request(body)


class Response:
    """A parsed answer: ``status``, ``headers`` (names lower-case) and the ``body``."""

    __slots__ = ("_json", "body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self._json: Any = _UNSET

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body parsed as JSON (once; later calls return the same object)."""
        if self._json is _UNSET:
            self._json = orjson.loads(self.body)
        return self._json

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"Response(status={self.status}, body={self.body[:60]!r})"


_UNSET: Any = object()


class Connection:
    """One persistent HTTP/1.1 connection to ``host:port``, opened on first use.

    :meth:`request` sends one pre-encoded request and reads its whole answer; requests on
    one connection must not overlap (one closed-loop client owns one connection).
    ``reconnects`` counts the times the server had closed the connection cleanly and a
    new one was opened for the next request; after a failed request the connection is
    dropped and the next request opens a new one without counting a reconnect (the
    failure is the error).
    """

    def __init__(self, host: str, port: int, *, timeout_s: float = 30.0) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s={timeout_s}: need > 0")
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.reconnects = 0
        self.connects = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._server_closes = False  # the last answer said the connection ends

    async def request(self, raw: bytes) -> Response:
        """Send ``raw`` (a whole request, e.g. from :meth:`Endpoint.request`); the answer.

        Raises:
            ConnectionLost: the connection ended after the request was sent.
            ProtocolError: the answer is malformed or unsupported.
            OSError: connecting or sending failed.
            TimeoutError: no whole answer within ``timeout_s``.
        """
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._exchange(raw)
        except BaseException:
            self._drop()  # its state is unknown: an answer may still arrive
            raise

    async def _exchange(self, raw: bytes) -> Response:
        reader, writer = self._reader, self._writer
        if writer is not None and (
            self._server_closes or reader is None or reader.at_eof() or writer.is_closing()
        ):
            self.reconnects += 1  # closed by the server while idle, or as it announced
            self._drop()
            writer = None
        if writer is None or reader is None:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            self._reader, self._writer, self._server_closes = reader, writer, False
            self.connects += 1
        writer.write(raw)
        await writer.drain()
        try:
            response, keep_alive = await _read_response(reader)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise ConnectionLost(
                    "the server closed the connection in the middle of its answer"
                ) from None
            raise ConnectionLost("the server closed the connection before answering") from None
        except asyncio.LimitOverrunError:
            raise ProtocolError("the response head is over the stream's 64 KiB limit") from None
        if not keep_alive:
            self._server_closes = True
        return response

    def _drop(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
        self._server_closes = False

    async def close(self) -> None:
        writer = self._writer
        self._drop()
        if writer is not None:
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _read_response(reader: asyncio.StreamReader) -> tuple[Response, bool]:
    """One answer from ``reader``: the response and whether the connection stays open."""
    while True:
        head = await reader.readuntil(_HEAD_END)
        status, version_1_0, headers = _parse_head(head)
        if status >= 200:
            break
        if status == 101:
            raise ProtocolError("the server switched protocols (101); not supported")
        # 1xx interim answers (e.g. 103 Early Hints) have no body: the real one follows.
    connection = headers.get("connection", "").lower()
    tokens = {t.strip() for t in connection.split(",")} if connection else set()
    keep_alive = "keep-alive" in tokens if version_1_0 else "close" not in tokens
    encoding = headers.get("transfer-encoding")
    if encoding is not None:
        if encoding.strip().lower() != "chunked":
            raise ProtocolError(f"unsupported Transfer-Encoding {encoding!r} (only chunked)")
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        body = await reader.readexactly(_content_length(headers["content-length"]))
    elif status in (204, 304):
        body = b""
    else:  # no length: the body runs to the end of the connection
        body = await reader.read()
        keep_alive = False
    return Response(status, headers, body), keep_alive


def _parse_head(head: bytes) -> tuple[int, bool, dict[str, str]]:
    lines = head[:-4].split(_CRLF)
    status_line = lines[0]
    parts = status_line.split(b" ", 2)
    if (
        len(parts) < 2
        or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0")
        or len(parts[1]) != 3
        or not parts[1].isdigit()
    ):
        raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    status = int(parts[1])
    if status < 100:
        raise ProtocolError(f"status {status} out of range: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
            raise ProtocolError(f"malformed header line {line[:80]!r}")
        key = name.decode("latin-1").lower()
        text = value.strip().decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return status, parts[0] == b"HTTP/1.0", headers


def _content_length(value: str) -> int:
    values = {v.strip() for v in value.split(",")}
    if len(values) != 1 or not (length := values.pop()).isdigit():
        raise ProtocolError(f"invalid Content-Length {value!r}")
    return int(length)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        line = await reader.readuntil(_CRLF)
        size_text = line[:-2].split(b";", 1)[0].strip()
        if not size_text or not _HEX.issuperset(size_text):
            raise ProtocolError(f"invalid chunk size line {line[:80]!r}")
        size = int(size_text, 16)
        if size == 0:
            break
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != _CRLF:
            raise ProtocolError("a chunk is not followed by CRLF")
    while await reader.readuntil(_CRLF) != _CRLF:  # trailer fields, ignored
        pass
    return b"".join(parts)


# ------------------------------------------------------------------------ closed loop
@dataclass
class Window:
    """What one timed window saw: latencies (s) of its requests, errors by kind."""

    latencies: list[float] = field(default_factory=list)
    requests: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)


class ClosedLoop:
    """Closed-loop load (no think time): ``warmup_s``, then ``windows`` timed windows of
    ``window_s`` each, back to back. A request counts in the window it started in if it
    ended in it too (the rest count in no window; their errors in ``unwindowed_errors``).
    ``on_window(index)`` is called as each window opens (``-1``: after the last one),
    e.g. to read CPU counters.

    Clients are coroutines that loop ``while loop.running`` and send with :meth:`send`
    on connections from :meth:`connection`; :meth:`run` runs them and closes the
    connections.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        warmup_s: float,
        window_s: float,
        windows: int,
        on_window: Callable[[int], Any] | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        if windows < 1 or window_s <= 0 or warmup_s < 0:
            raise ValueError(
                f"windows={windows}, window_s={window_s}, warmup_s={warmup_s}: need "
                "windows >= 1, window_s > 0 and warmup_s >= 0"
            )
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.warmup_s, self.window_s = warmup_s, window_s
        self.windows = [Window() for _ in range(windows)]
        self.on_window = on_window
        self.unwindowed_errors = 0
        self.unwindowed_error_kinds: dict[str, int] = {}
        self.connections: list[Connection] = []
        self._start = 0.0
        self._stop_at = 0.0

    @property
    def running(self) -> bool:
        """Whether clients should send another request (false once the last window ends)."""
        return time.perf_counter() < self._stop_at

    @property
    def reconnects(self) -> int:
        return sum(c.reconnects for c in self.connections)

    def connection(self) -> Connection:
        """A new keep-alive connection to the server, closed when :meth:`run` ends."""
        conn = Connection(self.host, self.port, timeout_s=self.timeout_s)
        self.connections.append(conn)
        return conn

    def record(self, t0: float, t1: float, error: str | None) -> None:
        """Count a request that ran from ``t0`` to ``t1`` (``perf_counter``)."""
        k = int((t0 - self._start) // self.window_s)
        if 0 <= k < len(self.windows) and t1 <= self._start + (k + 1) * self.window_s:
            window = self.windows[k]
            window.requests += 1
            window.latencies.append(t1 - t0)
            if error is not None:
                window.errors += 1
                window.error_kinds[error] = window.error_kinds.get(error, 0) + 1
        elif error is not None:
            self.unwindowed_errors += 1
            kinds = self.unwindowed_error_kinds
            kinds[error] = kinds.get(error, 0) + 1

    async def send(
        self,
        conn: Connection,
        raw: bytes,
        check: Callable[[Response], str | None] | None = None,
    ) -> Response | None:
        """Send ``raw`` on ``conn``, time it and count it; the response if it succeeded.

        A non-2xx status, a failed request (:data:`REQUEST_ERRORS`) or a ``check`` that
        returns an error text (or raises ``ValueError``/``KeyError``/``TypeError``, e.g. on
        a body that is not the expected JSON) is an error; then ``None`` is returned.
        """
        t0 = time.perf_counter()
        error: str | None = None
        response: Response | None = None
        try:
            response = await conn.request(raw)
        except REQUEST_ERRORS as exc:
            error = f"{type(exc).__name__}: {exc}"[:160]
        else:
            if not 200 <= response.status < 300:
                error = f"http {response.status}: {response.text()[:120]}"
            elif check is not None:
                try:
                    error = check(response)
                except (ValueError, KeyError, TypeError) as exc:
                    error = f"bad body ({type(exc).__name__}): {response.text()[:100]}"
        self.record(t0, time.perf_counter(), error)
        return response if error is None else None

    async def _ticker(self) -> None:
        for k in range(len(self.windows) + 1):
            await asyncio.sleep(max(0.0, self._start + k * self.window_s - time.perf_counter()))
            if self.on_window is not None:
                self.on_window(k if k < len(self.windows) else -1)

    async def run(self, clients: Iterable[Awaitable[None]]) -> list[Window]:
        """Start the clock, run ``clients`` (and the window ticker); the windows."""
        self._start = time.perf_counter() + self.warmup_s
        self._stop_at = self._start + len(self.windows) * self.window_s
        try:
            await asyncio.gather(self._ticker(), *clients)
        finally:
            for conn in self.connections:
                await conn.close()
        return self.windows


# ------------------------------------------------------------------- CPU counters
def server_pids(port: int) -> list[int]:
    """The uvicorn server listening on ``port`` and its worker processes (its process
    group: ``start_app_server`` starts it in a session of its own)."""
    proc = Path("/proc")
    master = None
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"uvicorn" in argv and b"--port" in argv and str(port).encode() in argv:
            master = int(entry.name)
            break
    if master is None:
        return []
    pids = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == master:  # field 5 of stat: the process group
                pids.append(int(entry.name))
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (processes gone since count 0)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks
