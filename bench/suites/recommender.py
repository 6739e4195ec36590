"""Benchmarks of the recommender app (issue 7).

Suites:

- ``movielens``: MovieLens-100K. Trains the recommender (bi-encoder fine-tuned on
  history -> next item pairs, co-occurrence, popularity, the additive blend) on the
  training ratings and scores popularity, item-kNN CF, semantic-only and the blend on the
  same cases: each user's first later positive (rating >= 4) against 99 sampled unseen
  items, seed 13. ``--split valid`` holds back the last 10% of each user's training
  ratings (the way the test split was made); ``--split test`` trains on all of
  ``train_ratings.csv`` and evaluates on ``test_ratings.csv`` beside it.
- ``rerank-latency``: a real server (uvicorn subprocess) on the demo catalogue;
  sequential ``POST /rerank`` calls with a 50-item history and 100 candidates, once as
  catalogue ids (cached embeddings) and once as 100 never-seen texts. Client-side p50/p95.
- ``rerank-load``: 32 concurrent keep-alive clients sending the cached-candidate request
  for a fixed time; requests/s and errors (non-200 or broken connections).

Environment: ``KEEL_REC_BENCH_STATE`` (prepared state dir, default
``var/recommender-bench``), ``KEEL_REC_BENCH_WORKERS`` (uvicorn workers of
``rerank-load``, default one per core),
``KEEL_REC_BENCH_PAIRS`` (fine-tuning pairs for ``movielens``, default 2000).
``--quick`` shrinks every budget for a smoke run; its numbers are not results.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import REPO_ROOT, BenchError, SuiteContext, SuiteResult, Target, suite

ISSUE = "issue 7 target"
STATE_DIR = Path(os.environ.get("KEEL_REC_BENCH_STATE", REPO_ROOT / "var" / "recommender-bench"))


# ----------------------------------------------------------------------------- movielens
@suite(
    "movielens",
    area="recommender",
    description="MovieLens-100K 1-vs-99: popularity, item-kNN, semantic-only and blend",
    targets=[Target("lift", ">=", 0.10, anchor=f"{ISSUE}: blend nDCG@10 >= 1.1x best baseline")],
)
def movielens(ctx: SuiteContext) -> SuiteResult:
    from recommender.datasets import load_interactions, load_movielens
    from recommender.experiment import metrics_table, run_experiment
    from recommender.splits import temporal_split
    from recommender.training import TrainConfig

    root = ctx.train_file("movielens100k", "train_ratings.csv").parent
    data = load_movielens(root)
    if ctx.is_test:
        test_file = ctx.data_file(
            "movielens100k", valid="train_ratings.csv", test="test_ratings.csv"
        )
        train_log, test_log = data.interactions, load_interactions(test_file)
    else:
        train_log, test_log = temporal_split(data.interactions, 0.1)
    pairs = 128 if ctx.quick else int(os.environ.get("KEEL_REC_BENCH_PAIRS", "2000"))
    config = TrainConfig(max_pairs=pairs, max_length=32, show_progress=True)
    ctx.log(f"training on {len(train_log)} ratings, {pairs} fine-tuning pairs; split={ctx.split}")
    with tempfile.TemporaryDirectory(prefix="rec-bench-") as work:
        result = run_experiment(data.items, train_log, test_log, Path(work), config)
    ctx.log("\n" + metrics_table(result.metrics))
    head = result.headline()
    metrics = {**head, **{k: v for k, v in result.metrics.items() if k != "cases"}}
    return SuiteResult(
        metrics=metrics,
        details={
            "best_baseline": result.best_baseline(),
            "cases": result.metrics["cases"],
            "protocol": "first later positive per user vs 99 unseen items, seed 13",
            "training": result.trained.report,
            "blend_importance": dict(
                zip(
                    result.trained.signals.blend.input_names,
                    result.trained.signals.blend.importance,
                    strict=True,
                )
            ),
            "seconds": round(result.seconds, 1),
        },
    )


# ------------------------------------------------------------------------- server helpers
def _prepared_state(ctx: SuiteContext) -> Path:
    """Prepare the demo state once (cached by fingerprint; the first run trains)."""
    os.environ["KEEL_REC_STATE_DIR"] = str(STATE_DIR)
    from recommender.config import get_settings
    from recommender.prepare import prepare

    get_settings.cache_clear()
    manifest = prepare(get_settings(), show_progress=True)
    ctx.log(
        f"state {STATE_DIR}: serving model {manifest['serving_model']} ({manifest['report'].get('compression')})"
    )
    return STATE_DIR


@contextmanager
def _server(state: Path, workers: int) -> Iterator[tuple[str, int]]:
    from keel_service.servers import ServerStartError, start_app_server

    env = {"KEEL_REC_STATE_DIR": str(state), "KEEL_REC_API_KEY": secrets.token_urlsafe(24)}
    try:
        with start_app_server(
            "recommender.main:create_app",
            env=env,
            timeout_s=600,
            workers=workers,
            extra_args=["--no-access-log"],
        ) as url:
            host, port = url.removeprefix("http://").rsplit(":", 1)
            yield host, int(port)
    except ServerStartError as exc:
        raise BenchError(f"recommender server did not start: {exc}") from exc


def _bodies(state: Path, n: int, uncached: bool, seed: int = 13) -> list[bytes]:
    from recommender.datasets import load_demo

    items = [it.id for it in load_demo().items]
    rng = random.Random(seed)
    out = []
    for k in range(n):
        history = rng.sample(items, 50)
        if uncached:
            cands: list[Any] = [
                {
                    "id": f"new-{k}-{j}",
                    "text": f"Course {k}-{j}: learn {rng.choice(_TOPICS)} "
                    f"with {rng.choice(_ANGLES)} (session {rng.randrange(10**6)}).",
                }
                for j in range(100)
            ]
        else:
            cands = rng.sample(items, 100)
        out.append(
            json.dumps(
                {"user_id": f"bench-{k % 97}", "history": history, "candidates": cands}
            ).encode()
        )
    return out


_TOPICS = [
    "bread baking",
    "python testing",
    "jazz piano",
    "tax returns",
    "night photography",
    "kettlebells",
    "spanish verbs",
    "chair restoration",
    "vegetable beds",
    "black holes",
]
_ANGLES = ["weekly projects", "short videos", "a mentor", "live sessions", "worksheets"]


class _KeepAliveClient:
    """A minimal HTTP/1.1 keep-alive client (asyncio streams): far lighter than a full
    client library, so the load generator does not starve the server of CPU."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _sequential(host: str, port: int, bodies: list[bytes]) -> tuple[list[float], int]:
    client = _KeepAliveClient(host, port)
    times, errors = [], 0
    for body in bodies:
        start = time.perf_counter()
        status = await client.post("/rerank", body)
        times.append((time.perf_counter() - start) * 1000)
        errors += status != 200
    await client.close()
    return times, errors


# ---------------------------------------------------------------------------- latency
@suite(
    "rerank-latency",
    area="recommender",
    description="POST /rerank p95, 50-item history x 100 candidates (cached ids / new texts)",
    targets=[
        Target("p95_ms_cached", "<=", 15.0, anchor=f"{ISSUE}: 100 cached candidates, 2 cores"),
        Target(
            "p95_ms_uncached", "<=", 60.0, anchor=f"{ISSUE}, issue 17: 100 uncached texts, 2 cores"
        ),
    ],
)
def rerank_latency(ctx: SuiteContext) -> SuiteResult:
    state = _prepared_state(ctx)
    n_cached, n_uncached = (40, 10) if ctx.quick else (400, 100)
    cached = _bodies(state, n_cached + 20, uncached=False)
    uncached = _bodies(state, n_uncached + 5, uncached=True, seed=14)
    with _server(state, workers=1) as (host, port):
        asyncio.run(_sequential(host, port, cached[:20] + uncached[:5]))
        t_cached, e1 = asyncio.run(_sequential(host, port, cached[20:]))
        t_uncached, e2 = asyncio.run(_sequential(host, port, uncached[5:]))
    metrics = {
        "p95_ms_cached": float(np.percentile(t_cached, 95)),
        "p50_ms_cached": float(np.percentile(t_cached, 50)),
        "p95_ms_uncached": float(np.percentile(t_uncached, 95)),
        "p50_ms_uncached": float(np.percentile(t_uncached, 50)),
        "errors": float(e1 + e2),
    }
    return SuiteResult(
        metrics=metrics,
        details={
            "requests": {"cached": len(t_cached), "uncached": len(t_uncached)},
            "client": "sequential keep-alive HTTP/1.1, same machine",
            "load_average": os.getloadavg(),
        },
    )


# ------------------------------------------------------------------------------- load
async def _load(
    host: str, port: int, bodies: list[bytes], clients: int, seconds: float
) -> dict[str, Any]:
    done = errors = 0
    kinds: dict[str, int] = {}
    stop = time.perf_counter() + seconds

    async def worker(k: int) -> None:
        nonlocal done, errors
        client = _KeepAliveClient(host, port)
        i = k
        while time.perf_counter() < stop:
            try:
                status = await client.post("/rerank", bodies[i % len(bodies)])
                if status != 200:
                    errors += 1
                    kinds[f"http {status}"] = kinds.get(f"http {status}", 0) + 1
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
                errors += 1
                kinds[type(exc).__name__] = kinds.get(type(exc).__name__, 0) + 1
                await client.close()
                client = _KeepAliveClient(host, port)
            done += 1
            i += clients
        await client.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(clients)))
    elapsed = time.perf_counter() - started
    return {
        "rps": done / elapsed,
        "errors": float(errors),
        "requests": float(done),
        "seconds": elapsed,
        "error_kinds": kinds,
    }


@suite(
    "rerank-load",
    area="recommender",
    description="POST /rerank throughput under 32 concurrent clients (50 history x 100 cached candidates)",
    targets=[
        Target("rps", ">=", 300.0, anchor=f"{ISSUE}: 32 concurrent clients"),
        Target("errors", "==", 0.0, anchor=f"{ISSUE}: no errors under load"),
    ],
)
def rerank_load(ctx: SuiteContext) -> SuiteResult:
    state = _prepared_state(ctx)
    # One uvicorn worker per core, as `recommender serve --workers N` is meant to be
    # deployed; KEEL_REC_BENCH_WORKERS overrides it (the JSON records the count).
    workers = int(os.environ.get("KEEL_REC_BENCH_WORKERS", str(os.cpu_count() or 1)))
    bodies = _bodies(state, 200, uncached=False)
    seconds = 5.0 if ctx.quick else 20.0
    with _server(state, workers=workers) as (host, port):
        asyncio.run(_load(host, port, bodies[:50], 4, 2.0))  # warm-up (every worker)
        result = asyncio.run(_load(host, port, bodies, 32, seconds))
    return SuiteResult(
        metrics={"rps": result["rps"], "errors": result["errors"]},
        details={
            "requests": result["requests"],
            "seconds": round(result["seconds"], 1),
            "clients": 32,
            "uvicorn_workers": workers,
            "error_kinds": result["error_kinds"],
            "load_average": os.getloadavg(),
        },
    )
