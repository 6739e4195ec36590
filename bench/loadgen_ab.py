"""A/B of the load generator's own CPU per request: httpx.AsyncClient (chat-load's client
until 2026-11-30) against ``bench/loadgen.py``, on one running chat server.

``python -m bench.loadgen_ab [--seconds 8] [--rounds 4] [--clients 32]`` starts the
customer-service app as chat-load does (its prepared state, ``var/bench/
customer_service/chat-load-state``: run ``python -m bench run chat-load --budget quick``
once first), warms up both generators, then runs them in interleaved rounds (A B, B A,
...), each a closed loop of ``--clients`` clients for ``--seconds``, and prints each
round's client CPU per /chat request (``time.process_time`` of this process, which only
runs the generator; the ``POST /sessions`` after a hand-off take CPU but are not counted,
on both sides) and the median ratio. CPU time, not wall time, so a busy machine moves the
figures less than it moves requests/s, but only the ratio is meant to be compared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any

import httpx

from bench.harness import DEFAULT_DATA_DIR, SuiteContext
from bench.loadgen import ClosedLoop
from bench.suites.customer_service import (
    WORK_DIR,
    _all_workers_ready,
    _load_messages,
    chat_clients,
)

Generator = Callable[[str, list[str], int, float], Coroutine[Any, Any, tuple[int, int]]]


async def run_httpx(url: str, messages: list[str], clients: int, seconds: float) -> tuple[int, int]:
    """chat-load's former client loop on httpx (/chat requests, errors)."""
    stop = time.perf_counter() + seconds
    count = [0, 0]
    limits = httpx.Limits(
        max_connections=clients, max_keepalive_connections=clients, keepalive_expiry=2.0
    )

    async def client(index: int, http: httpx.AsyncClient) -> None:
        session = (await http.post("/sessions")).json()["session_id"]
        position = index * 997
        while time.perf_counter() < stop:
            text = messages[position % len(messages)]
            position += 1
            try:
                response = await http.post("/chat", json={"session_id": session, "message": text})
                ok = response.status_code == 200
                handed_off = ok and response.json()["state"] != "bot"
            except httpx.HTTPError:
                ok = handed_off = False
            count[0] += 1
            count[1] += not ok
            if handed_off:
                session = (await http.post("/sessions")).json()["session_id"]

    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
        await asyncio.gather(*(client(i, http) for i in range(clients)))
    return count[0], count[1]


class _CountingLoop(ClosedLoop):
    """A ``ClosedLoop`` that also counts every request it times, in a window or not."""

    requests = 0
    errors = 0

    def record(self, t0: float, t1: float, error: str | None) -> None:
        self.requests += 1
        self.errors += error is not None
        super().record(t0, t1, error)


async def run_loadgen(
    url: str, messages: list[str], clients: int, seconds: float
) -> tuple[int, int]:
    """chat-load's client loop (``chat_clients``) on ``bench/loadgen.py`` (/chat
    requests, errors)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    loop = _CountingLoop(host, int(port), warmup_s=0, window_s=seconds, windows=1)
    await loop.run(chat_clients(loop, messages, clients))
    return loop.requests, loop.errors


def main(argv: list[str] | None = None) -> None:
    from keel_service.servers import start_app_server

    parser = argparse.ArgumentParser(prog="python -m bench.loadgen_ab", description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (default 1)")
    args = parser.parse_args(argv)
    state = WORK_DIR / "chat-load-state"
    if not (state / "models").is_dir():
        parser.error(f"{state} is not prepared: run `python -m bench run chat-load --quick`")
    env = {
        "KEEL_CS_STATE_DIR": str(state),
        "KEEL_CS_API_KEY": secrets.token_urlsafe(24),
        "KEEL_CS_RATE_LIMIT_PER_MINUTE": "100000000",
        "KEEL_CS_RATE_LIMIT_BURST": "10000000",
    }
    messages = _load_messages(SuiteContext(data_dir=DEFAULT_DATA_DIR, budget="quick"))
    generators: dict[str, Generator] = {"httpx": run_httpx, "loadgen": run_loadgen}
    cpu_ms: dict[str, list[float]] = {name: [] for name in generators}
    with start_app_server(
        "customer_service.main:create_app", env=env, timeout_s=300, workers=args.workers
    ) as url:
        _all_workers_ready(url, args.workers)
        for fn in generators.values():  # warm-up
            asyncio.run(fn(url, messages, args.clients, 2.0))
        for r in range(args.rounds):
            names = list(generators) if r % 2 == 0 else list(reversed(generators))
            for name in names:
                cpu0, wall0 = time.process_time(), time.perf_counter()
                requests, errors = asyncio.run(
                    generators[name](url, messages, args.clients, args.seconds)
                )
                cpu = time.process_time() - cpu0
                wall = time.perf_counter() - wall0
                cpu_ms[name].append(cpu / max(requests, 1) * 1000)
                print(
                    f"round {r} {name:8s} client CPU {cpu_ms[name][-1]:6.3f} ms/request, "
                    f"{requests} requests, {errors} errors, {requests / wall:6.1f} requests/s",
                    flush=True,
                )
    ratios = [a / b for a, b in zip(cpu_ms["httpx"], cpu_ms["loadgen"], strict=True)]
    print(
        json.dumps(
            {
                "client_cpu_ms_per_request": {
                    name: {
                        "median": round(statistics.median(v), 3),
                        "runs": [round(x, 3) for x in v],
                    }
                    for name, v in cpu_ms.items()
                },
                "httpx_over_loadgen": {
                    "median": round(statistics.median(ratios), 2),
                    "runs": [round(x, 2) for x in ratios],
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
