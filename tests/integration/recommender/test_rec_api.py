"""The recommender over real HTTP (uvicorn subprocess, real fine-tuned encoder)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.recommender.rec_support import API_KEY

pytestmark = pytest.mark.integration

PYTHON_HISTORY = ["c001", "c004", "c002"]  # Python basics / testing courses
UNRELATED = ["c061", "c181", "c092", "c331"]  # sourdough, guitar, knife skills, stargazing


def rerank(client: httpx.Client, **body: object) -> dict:
    resp = client.post("/rerank", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_healthz_and_metrics(client: httpx.Client) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["items"] >= 300
    # Prepared without ONNX export (TEST_ENV), so there is one kernel; its thread count is
    # the configured one, and nothing was timed.
    assert health["encoder"]["kernel"] == "served" and health["encoder"]["threads"] == 1
    assert health["encoder"]["reason"] == "nothing to choose between"
    rerank(client, history=PYTHON_HISTORY, candidates=["c005", *UNRELATED])
    metrics = client.get("/metrics").text
    assert "recommender_requests_total" in metrics
    assert 'endpoint="rerank"' in metrics


def _sample(client: httpx.Client, name: str, labels: dict[str, str] | None = None) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and sample.labels == (labels or {}):
                return float(sample.value)
    return 0.0


def test_drift_metrics_count_unknown_candidates_and_cold_requests(client: httpx.Client) -> None:
    known = {"in_catalogue": "true"}
    unknown = {"in_catalogue": "false"}
    before = [
        _sample(client, "recommender_candidate_items_total", known),
        _sample(client, "recommender_candidate_items_total", unknown),
        _sample(client, "recommender_cold_requests_total"),
    ]
    new_item = {"id": "new-course", "text": "An evening course on pottery glazes."}
    rerank(client, history=PYTHON_HISTORY, candidates=["c005", "c061", new_item])
    rerank(client, candidates=["c005"])  # no history: a cold request
    after = [
        _sample(client, "recommender_candidate_items_total", known),
        _sample(client, "recommender_candidate_items_total", unknown),
        _sample(client, "recommender_cold_requests_total"),
    ]
    assert [a - b for a, b in zip(after, before, strict=True)] == [3, 1, 1]


def test_matching_catalogue_candidate_ranks_above_unrelated(client: httpx.Client) -> None:
    data = rerank(client, history=PYTHON_HISTORY, candidates=[*UNRELATED, "c005"], mmr_lambda=1.0)
    assert data["items"][0]["id"] == "c005"  # Testing Python Code: Intermediate


def test_matching_uncatalogued_text_ranks_above_unrelated_texts(client: httpx.Client) -> None:
    candidates = [
        {"id": "new-bread", "text": "Bake a rye loaf with a long cold ferment."},
        {"id": "new-py", "text": "Write pytest unit tests for your Python functions."},
        {"id": "new-yoga", "text": "A morning yoga flow for stiff hips."},
    ]
    data = rerank(client, history=PYTHON_HISTORY, candidates=candidates, mmr_lambda=1.0)
    assert data["items"][0]["id"] == "new-py"


def test_explanation_names_the_history_item_that_matches(client: httpx.Client) -> None:
    history = ["c061", "c004", "c181"]  # sourdough, Python testing, guitar
    data = rerank(client, history=history, candidates=["c005", "c062", "c182"], mmr_lambda=1.0)
    by_id = {item["id"]: item for item in data["items"]}
    assert by_id["c005"]["because"][0]["id"] == "c004"
    assert by_id["c062"]["because"][0]["id"] == "c061"
    assert by_id["c182"]["because"][0]["id"] == "c181"
    assert "semantic" in by_id["c005"]["contributions"]


def test_mmr_lambda_changes_the_order(client: httpx.Client) -> None:
    # five near-identical Python courses and two different ones
    candidates = ["c002", "c003", "c005", "c006", "c008", "c062", "c182"]
    relevance = rerank(client, history=PYTHON_HISTORY[:2], candidates=candidates, mmr_lambda=1.0)
    diverse = rerank(client, history=PYTHON_HISTORY[:2], candidates=candidates, mmr_lambda=0.1)
    rel_ids = [i["id"] for i in relevance["items"]]
    div_ids = [i["id"] for i in diverse["items"]]
    assert sorted(rel_ids) == sorted(div_ids)
    assert rel_ids != div_ids
    # with a low λ a non-Python course reaches the top three
    assert {"c062", "c182"} & set(div_ids[:3])
    assert diverse["mmr_lambda"] == 0.1


def test_same_user_always_gets_the_same_bucket_and_it_is_logged(client: httpx.Client) -> None:
    buckets = {
        rerank(client, user_id="bucket-user-7", history=PYTHON_HISTORY, candidates=UNRELATED)[
            "bucket"
        ]
        for _ in range(3)
    }
    assert len(buckets) == 1
    seen = {
        rerank(client, user_id=f"user-{i}", history=PYTHON_HISTORY, candidates=UNRELATED)["bucket"]
        for i in range(40)
    }
    assert seen == {"control", "diverse"}
    data = rerank(client, user_id="bucket-user-7", history=PYTHON_HISTORY, candidates=UNRELATED)
    logged = None
    for _ in range(50):
        resp = client.get(f"/events/rankings/{data['request_id']}")
        if resp.status_code == 200:
            logged = resp.json()
            break
        time.sleep(0.1)
    assert logged is not None
    assert logged["bucket"] == data["bucket"] and logged["user_id"] == "bucket-user-7"
    assert logged["item_ids"] == [i["id"] for i in data["items"]]


def test_events_are_stored(client: httpx.Client) -> None:
    events = [
        {
            "user_id": "ev-user",
            "item_id": "c005",
            "type": "impression",
            "timestamp": 1_769_999_000,
            "position": 0,
            "bucket": "control",
        },
        {"user_id": "ev-user", "item_id": "c005", "type": "click", "timestamp": 1_770_000_000},
    ]
    resp = client.post("/events", json={"events": events}, headers={"X-API-Key": API_KEY})
    assert resp.status_code == 201 and resp.json() == {"stored": 2}
    stored = client.get("/events", params={"user_id": "ev-user"}).json()["events"]
    assert [(e["item_id"], e["type"]) for e in stored] == [
        ("c005", "impression"),
        ("c005", "click"),
    ]
    assert stored[0]["position"] == 0 and stored[0]["bucket"] == "control"
    # the click is now part of the user's history
    history = client.get("/users/ev-user/history").json()["items"]
    assert [h["id"] for h in history] == ["c005"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"history": ["c001"], "candidates": []}, "candidates"),
        ({"history": ["c001"], "candidates": ["c002"] * 10_000}, "candidates"),
        ({"history": ["c001"], "candidates": 5}, "candidates"),
        ({"history": "c001", "candidates": ["c002"]}, "history"),
        ({"candidates": ["c002"], "mmr_lambda": "high"}, "mmr_lambda"),
        ({"candidates": ["c002"], "mmr_lambda": 1.5}, "mmr_lambda"),
        ({"candidates": ["c002"], "top_k": 0}, "top_k"),
        ({"candidates": [{"id": "x", "features": {"price": "cheap"}}]}, "candidates"),
        ({"candidates": ["no-such-item"]}, "candidates"),
        ({"candidates": ["c002"], "surprise": 1}, "surprise"),
    ],
)
def test_malformed_rerank_input_is_a_422_naming_the_field(
    client: httpx.Client, body: dict, field: str
) -> None:
    resp = client.post("/rerank", json=body)
    assert resp.status_code == 422, resp.text
    locs = [err["loc"] for err in resp.json()["detail"]]
    assert any(field in [str(part) for part in loc] for loc in locs), locs


def test_bad_events_are_rejected(client: httpx.Client) -> None:
    key = {"X-API-Key": API_KEY}
    resp = client.post(
        "/events",
        json={"events": [{"user_id": "u", "item_id": "c1", "type": "like"}]},
        headers=key,
    )
    assert resp.status_code == 422
    assert "type" in resp.json()["detail"][0]["loc"]
    assert client.post("/events", json={"events": []}, headers=key).status_code == 422


def test_catalogue_admin_needs_the_key(client: httpx.Client) -> None:
    item = {
        "id": "t-1",
        "title": "Watercolour Painting: Beginner",
        "text": "Learn to paint loose watercolour landscapes.",
        "categories": ["art"],
    }
    assert client.put("/catalogue/items", json={"items": [item]}).status_code == 401
    wrong = client.put("/catalogue/items", json={"items": [item]}, headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401  # keel_service: an unknown key is 401, a narrower role 403
    assert client.delete("/catalogue/items/c001").status_code == 401
    ok = client.put("/catalogue/items", json={"items": [item]}, headers={"X-API-Key": API_KEY})
    assert ok.status_code == 200, ok.text
    assert ok.json()["inserted"] == 1
    assert client.get("/catalogue/items/t-1").json()["title"] == item["title"]
    # the new item is embedded and can be reranked by id
    data = rerank(client, history=["c001"], candidates=["t-1", "c002"])
    assert {i["id"] for i in data["items"]} == {"t-1", "c002"}
    gone = client.delete("/catalogue/items/t-1", headers={"X-API-Key": API_KEY})
    assert gone.status_code == 200
    assert client.get("/catalogue/items/t-1").status_code == 404


def test_recommend_retrieves_from_the_index_and_excludes_seen(client: httpx.Client) -> None:
    resp = client.post(
        "/recommend", json={"history": PYTHON_HISTORY, "top_k": 5, "mmr_lambda": 1.0}
    )
    assert resp.status_code == 200, resp.text
    items = resp.json()["items"]
    assert len(items) == 5
    assert not {i["id"] for i in items} & set(PYTHON_HISTORY)
    top = client.get(f"/catalogue/items/{items[0]['id']}").json()
    assert "programming" in top["categories"] or "data-science" in top["categories"]


def test_blend_weights_are_inspectable(client: httpx.Client) -> None:
    blend = client.get("/model/blend").json()
    names = {i["name"] for i in blend["inputs"]}
    assert {"semantic", "cooccurrence", "popularity", "category_match"} <= names
    assert all(len(i["shape"]["x"]) == len(i["shape"]["contribution"]) for i in blend["inputs"])


def test_second_prepare_reuses_the_cached_artifacts(rec_prepared: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.integration.recommender.rec_support import TEST_ENV

    env = {**os.environ, **TEST_ENV, "KEEL_REC_STATE_DIR": str(rec_prepared)}
    done = subprocess.run(
        [sys.executable, "-m", "recommender.cli", "prepare"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "reused cached artifacts" in done.stdout  # fingerprint matched: nothing retrained
