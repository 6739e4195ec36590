"""Live upgrade of the recommender's encoder and blend, end to end on a real server.

The server starts on the prepared ``fast`` model; a niced child builds the production
recipe (``prepare --budget full``; here a tiny one: 64 pairs, one epoch, no compression)
and the server swaps it in while a client keeps reranking (catalogue ids and new texts,
which go through the encoder): every answer is a 200, before, during and after the swap.
So that the swap is certain on the demo catalogue's few held-out interactions, the
served encoder is deliberately broken first (its weights zeroed: every text gets the same
vector). A candidate that is not better enough is refused with its reason and kept aside.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from keel_service.servers import start_app_server
from tests.integration.recommender.rec_support import APP, copy_state, server_env
from tests.support.live_upgrade import (
    assert_swap_metrics,
    assert_swapped,
    assert_upgrading_from_fast,
    calling_throughout,
    served_model,
    wait_for_outcome,
)

pytestmark = pytest.mark.integration
DEADLINE_S = 900.0  # a 2-step fine-tune and two catalogue embeddings on 2 busy cores
UPGRADE_ENV = {
    "KEEL_REC_UPGRADE": "on",
    "KEEL_REC_UPGRADE_MAX_PAIRS": "64",
    "KEEL_REC_UPGRADE_EPOCHS": "1",
}
HISTORY = ["c001", "c004", "c002"]


def _break_served_encoder(state: Path) -> None:
    """Zero every weight of the served encoder (a private copy): all texts embed alike."""
    manifest = json.loads(next((state / "prepared").glob("*/manifest.json")).read_text())
    served = state / manifest["serving_model"]
    files = list(served.rglob("*.safetensors"))
    assert files, f"no weights under {served}"
    for path in files:
        save_file({k: np.zeros_like(v) for k, v in load_file(path).items()}, path)


@pytest.mark.timeout(DEADLINE_S + 300)
def test_upgrade_swaps_the_production_model_in_without_a_failed_request(
    rec_prepared: Path, tmp_path: Path
) -> None:
    state = copy_state(rec_prepared, tmp_path / "state")
    _break_served_encoder(state)
    env = {**server_env(state), **UPGRADE_ENV}
    with (
        start_app_server(APP, env=env, timeout_s=240) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        first = served_model(client)
        assert first["name"] == "reranker"
        assert_upgrading_from_fast(first)

        def rerank(http: httpx.Client, k: int) -> httpx.Response:
            new_text = {"id": f"new-{k}", "title": "Pytest fixtures", "text": f"part {k}"}
            body = {"history": HISTORY, "candidates": ["c005", "c061", new_text]}
            return http.post("/rerank", json=body)

        # A client reranks throughout, and a little on the new model once it is in.
        with calling_throughout(url, rerank) as reranks:
            outcome = wait_for_outcome(client, DEADLINE_S)

        upgrade = assert_swapped(outcome)
        # A client reranked throughout: on the old model, then on the new, never an error.
        reranks.assert_never_failed(first_tier="fast", last_tier="full")
        health = client.get("/healthz").json()
        assert health["encoder"]["kernel"] == "served"  # no ONNX export in this recipe
        assert "upgrade/accepted" in health["serving_model"]
        # The new encoder serves: unlike the broken one, it tells new texts apart.
        texts = [
            {"id": "t-py", "text": "Write pytest unit tests for your Python functions."},
            {"id": "t-bread", "text": "Bake a rye loaf with a long cold ferment."},
        ]
        ranked = client.post("/rerank", json={"history": HISTORY, "candidates": texts}).json()
        semantic = {item["id"]: item["features"]["semantic"] for item in ranked["items"]}
        assert semantic["t-py"] > semantic["t-bread"], ranked
        assert_swap_metrics(client, "reranker")

    accepted = list((state / "upgrade" / "accepted").iterdir())
    assert len(accepted) == 1
    result = json.loads((accepted[0] / "result.json").read_text())
    assert result["score"] == pytest.approx(upgrade["candidate_score"], abs=1e-4)
    assert result["details"]["candidate"]["blend.ndcg_at_10"] == pytest.approx(
        result["score"], abs=1e-4
    )


@pytest.mark.timeout(DEADLINE_S + 300)
def test_a_candidate_that_is_not_better_enough_is_refused_and_kept_aside(
    rec_prepared: Path, tmp_path: Path
) -> None:
    state = copy_state(rec_prepared, tmp_path / "state")
    # nDCG is at most 1: no candidate can beat the served model by more than 1.
    env = {**server_env(state), **UPGRADE_ENV, "KEEL_REC_UPGRADE_MIN_GAIN": "1.0"}
    with (
        start_app_server(APP, env=env, timeout_s=240) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        outcome = wait_for_outcome(client, DEADLINE_S)
        assert outcome["upgrade"]["state"] == "refused", outcome
        assert outcome["tier"] == "fast"
        assert outcome["upgrade"]["reason"]
        reply = client.post("/rerank", json={"history": HISTORY, "candidates": ["c005", "c061"]})
        assert reply.status_code == 200
    refused = list((state / "upgrade" / "refused").iterdir())
    assert len(refused) == 1
    reason = json.loads((refused[0] / "reason.json").read_text())
    assert reason
