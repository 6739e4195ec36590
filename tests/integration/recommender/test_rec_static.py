"""The recommender serving a trained static-embedding table (``KEEL_REC_STATIC_ENCODER=on``):
prepare trains it from the fine-tuned encoder, embeds the catalogue and fits the blend
with it, records the choice; the server embeds caller-sent texts with it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.recommender.rec_support import APP, prepare_state, server_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def static_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("rec-static") / "state"
    return prepare_state(state, {"KEEL_REC_STATIC_ENCODER": "on"})


@pytest.fixture(scope="module")
def static_client(static_state: Path) -> Iterator[httpx.Client]:
    from keel_service.servers import start_app_server

    env = {**server_env(static_state), "KEEL_REC_STATIC_ENCODER": "on"}
    with (
        start_app_server(APP, env=env, timeout_s=240) as url,
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        yield http


def _manifest(state: Path) -> dict:
    from recommender.artifacts import StateLayout, read_manifest

    manifest = read_manifest(StateLayout(state))
    assert manifest is not None
    return manifest


def test_prepare_serves_the_trained_table_and_records_the_choice(static_state: Path) -> None:
    from keel.inference import load_predictor
    from keel.inference._static import StaticPredictor
    from recommender.artifacts import resolve_model

    manifest = _manifest(static_state)
    choice = manifest["encoder_choice"]
    assert choice["served"] == "static" and choice["setting"] == "on"
    # Both candidates were scored on the validation split (numbers, not asserted values).
    assert set(choice["validation_lift"]) == {"static", "transformer"}
    serving = resolve_model(manifest["serving_model"], static_state)
    assert isinstance(serving, Path) and serving.name == "static"
    tier = json.loads((serving / "static_tier.json").read_text())
    assert tier["heads"] == {} and tier["pairs"] > 0
    assert tier["losses"]["regress_last"] < tier["losses"]["regress_first"]
    predictor = load_predictor(serving)
    assert isinstance(predictor, StaticPredictor) and predictor.dim == 256
    assert manifest["kernels"] == {"served": manifest["serving_model"]}


def test_the_server_reranks_uncached_texts_with_the_table(static_client: httpx.Client) -> None:
    health = static_client.get("/healthz").json()
    assert health["status"] == "ok"
    assert health["encoder_choice"]["served"] == "static"
    candidates = [
        {"id": f"new-{k}", "text": text}
        for k, text in enumerate(
            ["Advanced Python testing with pytest", "Sourdough bread at home", "Guitar chords"]
        )
    ]
    resp = static_client.post(
        "/rerank", json={"history": ["c001", "c004", "c002"], "candidates": candidates}
    )
    assert resp.status_code == 200, resp.text
    ranked = [row["id"] for row in resp.json()["items"]]
    assert sorted(ranked) == sorted(c["id"] for c in candidates)
