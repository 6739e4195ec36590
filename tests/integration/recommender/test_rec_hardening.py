"""Hostile input, faults and races against real recommender servers (uvicorn subprocesses
on a private copy of the prepared state)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from keel_service.servers import start_app_server
from tests.integration.recommender.rec_support import API_KEY, APP, copy_state, server_env

pytestmark = pytest.mark.integration

KEY = {"X-API-Key": API_KEY}
YEAR = 365 * 86_400.0
SKEW_S = 600.0  # KEEL_REC_MAX_FUTURE_SKEW_S default


def post_events(client: httpx.Client, events: list[dict]) -> httpx.Response:
    return client.post("/events", json={"events": events}, headers=KEY)


def click(user: str, item: str, ts: float | None = None) -> dict:
    event: dict = {"user_id": user, "item_id": item, "type": "click"}
    if ts is not None:
        event["timestamp"] = ts
    return event


def metric(client: httpx.Client, name: str, labels: str = "") -> float:
    """A sample of ``/metrics`` (0 when it was never set)."""
    text = client.get("/metrics").text
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    found = re.search(pattern, text, flags=re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def stored_items(client: httpx.Client, user: str) -> list[str]:
    resp = client.get("/events", params={"user_id": user, "limit": 1000})
    assert resp.status_code == 200, resp.text
    return [e["item_id"] for e in resp.json()["events"]]


def test_out_of_bound_timestamps_are_refused_per_event_and_the_reference_holds(
    client: httpx.Client,
) -> None:
    now = time.time()
    resp = post_events(
        client,
        [
            click("skew-user", "c010", now),
            click("skew-user", "c011", now + 5 * YEAR),
            click("skew-user", "c012", now - 20 * YEAR),
        ],
    )
    assert resp.status_code == 207, resp.text
    body = resp.json()
    assert body["stored"] == 1
    assert [(r["index"], r["field"], r["reason"]) for r in body["rejected"]] == [
        (1, "timestamp", "future_timestamp"),
        (2, "timestamp", "past_timestamp"),
    ]
    assert stored_items(client, "skew-user") == ["c010"]
    assert metric(client, "recommender_reference_time_seconds") <= time.time() + SKEW_S
    # a batch with nothing storable is a 422 naming each event's field
    only_bad = post_events(client, [click("skew-user", "c013", time.time() + 100 * YEAR)])
    assert only_bad.status_code == 422, only_bad.text
    assert only_bad.json()["detail"][0]["loc"] == ["body", "events", 0, "timestamp"]
    assert stored_items(client, "skew-user") == ["c010"]
    assert metric(client, "recommender_reference_time_seconds") <= time.time() + SKEW_S


def test_unknown_items_are_refused_per_event_without_a_cooccurrence_rebuild(
    client: httpx.Client,
) -> None:
    rebuilds = metric(client, "recommender_cooccurrence_rebuilds_total")
    unknown = metric(client, "recommender_events_rejected_total", '{reason="unknown_item"}')
    batch = [click("ghost-user", f"no-such-item-{k}") for k in range(300)]
    batch.append(click("ghost-user", "c020"))
    resp = post_events(client, batch)
    assert resp.status_code == 207, resp.text
    body = resp.json()
    assert body["stored"] == 1
    assert len(body["rejected"]) == 300
    assert {(r["field"], r["reason"]) for r in body["rejected"]} == {("item_id", "unknown_item")}
    assert [r["index"] for r in body["rejected"]] == list(range(300))
    assert stored_items(client, "ghost-user") == ["c020"]
    assert metric(client, "recommender_cooccurrence_rebuilds_total") == rebuilds == 0
    after = metric(client, "recommender_events_rejected_total", '{reason="unknown_item"}')
    assert after == unknown + 300


def test_duplicate_catalogue_ids_are_a_422_naming_them(client: httpx.Client) -> None:
    items = [
        {"id": "dup-a", "title": "Pottery: Beginner", "text": "Throw a bowl."},
        {"id": "dup-b", "title": "Pottery: Glazes", "text": "Mix a celadon glaze."},
        {"id": "dup-a", "title": "Pottery: Again", "text": "The same id twice."},
    ]
    resp = client.put("/catalogue/items", json={"items": items}, headers=KEY)
    assert resp.status_code == 422, resp.text
    err = resp.json()["detail"][0]
    assert err["loc"] == ["body", "items"]
    assert "'dup-a'" in err["msg"] and "'dup-b'" not in err["msg"]
    assert client.get("/catalogue/items/dup-a").status_code == 404  # nothing half-applied


HOSTILE = [
    ("POST", "/events", '{"events": [{"user_id": "u\\ud800", "item_id": "c001", "type": "click"}]}', "user_id"),
    ("POST", "/events", '{"events": [{"user_id": "u", "item_id": "c\\u0000", "type": "click"}]}', "item_id"),
    ("POST", "/events", '{"events": [{"user_id": "u", "item_id": "c001", "type": "click", "value": 1e400}]}', "value"),
    ("POST", "/events", '{"events": [{"user_id": "u", "item_id": "c001", "type": "click", "timestamp": NaN}]}', "timestamp"),
    ("POST", "/events", '{"events": [{"user_id": "u", "item_id": "c001", "type": "click", "position": 1e300}]}', "position"),
    ("PUT", "/catalogue/items", '{"items": [{"id": "h-1", "title": "T\\udfff"}]}', "title"),
    ("PUT", "/catalogue/items", '{"items": [{"id": "h-1", "title": "T", "features": {"price": -Infinity}}]}', "price"),
    ("PUT", "/catalogue/items", '{"items": [{"id": "h-1", "title": "T", "created_at": 1e308}]}', "created_at"),
    ("POST", "/rerank", '{"candidates": ["c001"], "as_of": 1e400}', "as_of"),
    ("POST", "/rerank", '{"candidates": [{"id": "x\\ud83d", "text": "t"}]}', "candidates"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "raw", "field"), HOSTILE)
def test_hostile_values_are_a_422_naming_the_field(
    client: httpx.Client, method: str, path: str, raw: str, field: str
) -> None:
    resp = client.request(
        method, path, content=raw.encode(), headers={**KEY, "content-type": "application/json"}
    )
    assert resp.status_code == 422, resp.text
    locs = [[str(p) for p in err["loc"]] for err in resp.json()["detail"]]
    assert any(any(field in part for part in loc) for loc in locs), locs


def run_threads(targets: list[Callable[[], None]]) -> list[BaseException]:
    """Run each target on its own thread, all released at once; return their failures."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(targets))

    def wrap(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                start.wait(timeout=120)
                fn()
            except BaseException as exc:  # collected: a thread must not hide a failure
                errors.append(exc)

        return run

    threads = [threading.Thread(target=wrap(fn)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a writer thread did not finish in 600 s"
    return errors


def event_writer(url: str, user: str, requests: int, per_request: int) -> Callable[[], None]:
    def write() -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            for r in range(requests):
                batch = [
                    click(user, f"c{(r * per_request + k) % 300 + 1:03d}")
                    for k in range(per_request)
                ]
                resp = post_events(http, batch)
                assert resp.status_code == 201, resp.text
                assert resp.json() == {"stored": per_request}

    return write


def catalogue_writer(url: str, prefix: str, n: int) -> Callable[[], None]:
    def write() -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            for k in range(n):
                item = {"id": f"{prefix}-{k}", "title": f"Pottery {k}", "text": f"Kiln lesson {k}."}
                resp = http.put("/catalogue/items", json={"items": [item]}, headers=KEY)
                assert resp.status_code == 200, resp.text

    return write


def reader(url: str, n: int) -> Callable[[], None]:
    def read() -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            for _ in range(n):
                resp = http.post("/recommend", json={"history": ["c001", "c004"], "top_k": 5})
                assert resp.status_code == 200, resp.text

    return read


def test_concurrent_writers_lose_no_event(rec_url: str, client: httpx.Client) -> None:
    writers, requests, per_request = 8, 15, 5
    targets = [event_writer(rec_url, f"conc-{w}", requests, per_request) for w in range(writers)]
    targets += [catalogue_writer(rec_url, "conc-item", 5), reader(rec_url, 20)]
    errors = run_threads(targets)
    assert not errors, errors
    for w in range(writers):
        assert len(stored_items(client, f"conc-{w}")) == requests * per_request
    for k in range(5):
        assert client.get(f"/catalogue/items/conc-item-{k}").status_code == 200


def test_two_processes_on_one_database_lose_no_event(
    rec_prepared: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    state = copy_state(rec_prepared, tmp_path_factory.mktemp("rec-two") / "state")
    env = server_env(state)
    with (
        start_app_server(APP, env=env, timeout_s=300) as first,
        start_app_server(APP, env=env, timeout_s=300) as second,
    ):
        writers, requests, per_request = 4, 10, 5
        targets = [
            event_writer(url, f"proc-{n}-{w}", requests, per_request)
            for n, url in enumerate((first, second))
            for w in range(writers)
        ]
        targets.append(catalogue_writer(first, "two-proc", 3))
        errors = run_threads(targets)
        assert not errors, errors
        with (
            httpx.Client(base_url=first, timeout=60) as a,
            httpx.Client(base_url=second, timeout=60) as b,
        ):
            for n in range(2):
                for w in range(writers):
                    user = f"proc-{n}-{w}"
                    assert len(stored_items(a, user)) == requests * per_request
                    assert len(stored_items(b, user)) == requests * per_request
            # an item added through the first process is known to the second at once
            resp = post_events(b, [click("proc-cross", "two-proc-2")])
            assert resp.status_code == 201, resp.text
            assert stored_items(a, "proc-cross") == ["two-proc-2"]
