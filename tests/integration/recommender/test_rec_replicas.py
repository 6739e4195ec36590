"""Scale-out: two real recommender replicas on one PostgreSQL, and one server with two
worker processes on the embedded SQLite file (``recommender serve --workers 2``).

Catalogue changes reach the other processes through the database's catalogue version,
which every process polls; waits are generous (up to 120 s) and assert outcomes only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from keel_service.servers import free_port, start_app_server, stop_process_group
from tests.integration.recommender.rec_support import (
    API_KEY,
    APP,
    TEST_ENV,
    copy_state,
    server_env,
)

pytestmark = pytest.mark.integration

KEY = {"X-API-Key": API_KEY}
DEADLINE_S = 120.0
NEW_ITEM = {
    "id": "rep-wheel",
    "title": "Wheel Throwing for Beginners",
    "text": "Centre clay on the potter's wheel, open it and pull up even walls.",
    "categories": ["craft"],
}


def eventually(check: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    pytest.fail(f"not within {deadline_s:.0f} s: {what}")


def popularity_of(client: httpx.Client, item_id: str) -> float:
    """The popularity feature ``/rerank`` reports for a catalogue item."""
    resp = client.post("/rerank", json={"history": ["c001"], "candidates": [item_id, "c002"]})
    assert resp.status_code == 200, resp.text
    ranked = {i["id"]: i for i in resp.json()["items"]}
    return float(ranked[item_id]["features"]["popularity"])


@pytest.mark.postgres
def test_two_replicas_on_one_postgres_share_catalogue_and_events(
    rec_prepared: Path, tmp_path_factory: pytest.TempPathFactory, postgres_url: str
) -> None:
    envs = []
    for name in ("a", "b"):  # each replica has its own state dir (models, index)
        state = copy_state(rec_prepared, tmp_path_factory.mktemp(f"rec-replica-{name}") / "state")
        envs.append(
            {
                **server_env(state),
                "KEEL_REC_DATABASE_URL": postgres_url,
                "KEEL_REC_CATALOGUE_POLL_INTERVAL_S": "1",
            }
        )
    with (
        start_app_server(APP, env=envs[0], timeout_s=300) as url_a,
        start_app_server(APP, env=envs[1], timeout_s=300) as url_b,
        httpx.Client(base_url=url_a, timeout=60) as a,
        httpx.Client(base_url=url_b, timeout=60) as b,
    ):
        # the fresh database was seeded once with the data set's catalogue
        size = a.get("/readyz").json()["items"]
        assert size >= 300 and b.get("/readyz").json()["items"] == size

        resp = a.put("/catalogue/items", json={"items": [NEW_ITEM]}, headers=KEY)
        assert resp.status_code == 200, resp.text
        eventually(
            lambda: b.get(f"/catalogue/items/{NEW_ITEM['id']}").status_code == 200,
            "replica B serves the item added through replica A",
        )
        assert b.get(f"/catalogue/items/{NEW_ITEM['id']}").json()["title"] == NEW_ITEM["title"]
        ranked = b.post(
            "/rerank",
            json={"history": ["c001"], "candidates": ["c061", NEW_ITEM["id"], "c181"]},
        )
        assert ranked.status_code == 200, ranked.text
        assert NEW_ITEM["id"] in [i["id"] for i in ranked.json()["items"]]
        # retrieved from B's index: a history that reads like the item finds it
        probe = {"id": "rep-probe", "text": NEW_ITEM["text"], "title": NEW_ITEM["title"]}
        recommended = b.post("/recommend", json={"history": [probe], "top_k": 10})
        assert recommended.status_code == 200, recommended.text
        assert NEW_ITEM["id"] in [i["id"] for i in recommended.json()["items"]]

        # events posted to A are stored for B at once and count in B's popularity
        assert popularity_of(b, NEW_ITEM["id"]) == 0.0
        clicks = [
            {"user_id": f"rep-user-{k}", "item_id": NEW_ITEM["id"], "type": "click"}
            for k in range(3)
        ]
        resp = a.post("/events", json={"events": clicks}, headers=KEY)
        assert resp.status_code == 201, resp.text
        events_b = b.get("/events", params={"user_id": "rep-user-1"}).json()["events"]
        assert [e["item_id"] for e in events_b] == [NEW_ITEM["id"]]
        eventually(
            lambda: popularity_of(b, NEW_ITEM["id"]) > 0.0,
            "clicks posted to replica A count in replica B's popularity",
        )

        # a deletion through B reaches A
        resp = b.delete(f"/catalogue/items/{NEW_ITEM['id']}", headers=KEY)
        assert resp.status_code == 200, resp.text
        eventually(
            lambda: a.get(f"/catalogue/items/{NEW_ITEM['id']}").status_code == 404,
            "replica A drops the item deleted through replica B",
        )
        assert a.get("/readyz").json()["items"] == b.get("/readyz").json()["items"] == size


@contextmanager
def cli_server(state: Path, workers: int, **extra_env: str) -> Iterator[str]:
    """``recommender serve --workers N`` as a subprocess; yields its base URL once ready."""
    port = free_port()
    env = {
        **os.environ,
        **TEST_ENV,
        "KEEL_REC_API_KEY": API_KEY,
        "KEEL_REC_CATALOGUE_POLL_INTERVAL_S": "1",
        **extra_env,
    }
    log = state.parent / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "recommender.cli", "serve"),
                *("--port", str(port), "--workers", str(workers), "--state-dir", str(state)),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            # One worker ready is not enough: each probe is a new connection, which the
            # kernel hands to either worker, so a streak of them means every worker
            # has loaded its models (one still loading answers 503).
            assert proc.poll() is None, log.read_text(errors="replace")[-4000:]
            try:
                return all(
                    httpx.get(f"{url}/readyz", timeout=5).status_code == 200
                    for _ in range(1 if workers == 1 else 10 * workers)
                )
            except httpx.HTTPError:
                return False

        eventually(ready, "`recommender serve --workers 2` is ready", deadline_s=300)
        yield url
    finally:
        stop_process_group(proc)


def test_serve_with_two_workers_answers_and_workers_share_the_catalogue(
    rec_prepared: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    state = copy_state(rec_prepared, tmp_path_factory.mktemp("rec-workers") / "state")
    metrics_dir = tmp_path_factory.mktemp("prometheus-multiproc")
    with (
        cli_server(state, workers=2, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)) as url,
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        for _ in range(10):  # connections land on either worker
            with httpx.Client(base_url=url, timeout=60) as fresh:
                resp = fresh.post(
                    "/rerank", json={"history": ["c001"], "candidates": ["c002", "c061"]}
                )
            assert resp.status_code == 200, resp.text
        # Either worker's /metrics adds up both workers' samples (multiprocess mode).
        text = http.get("/metrics").text
        counted = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("http_requests_total{")
            and 'route="/rerank"' in line
            and 'status="200"' in line
        ]
        assert sum(counted) >= 10, text[-3000:]
        item = {**NEW_ITEM, "id": "workers-wheel"}
        resp = http.put("/catalogue/items", json={"items": [item]}, headers=KEY)
        assert resp.status_code == 200, resp.text

        def every_worker_has_it() -> bool:
            # fresh connections, so both workers answer; 20 in a row must all know it
            for _ in range(20):
                with httpx.Client(base_url=url, timeout=60) as fresh:
                    if fresh.get(f"/catalogue/items/{item['id']}").status_code != 200:
                        return False
            return True

        eventually(every_worker_has_it, "both workers serve the item added through one")
