"""Generated answers with the real SmolLM2 (offline): shown only when grounded."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from customer_service.grounding import check_grounding
from customer_service.knowledge_base import RetrievedPassage
from keel_service.servers import start_app_server
from tests.integration.customer_service.cs_support import APP, server_env

pytestmark = pytest.mark.integration

# A retrieval intent of the demo data: its answer comes from the knowledge base.
QUESTION = "What fees do you charge?"


def test_generated_answer_is_grounded_or_replaced_by_the_extractive_one(
    cs_state_dir: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "smollm2"
    env = server_env(
        cs_state_dir,
        KEEL_CS_GENERATION="true",
        KEEL_CS_GENERATION_MAX_NEW_TOKENS="32",  # keeps the test short on 2 cores
        KEEL_CS_GENERATION_MODEL_DIR=str(model_dir),
        KEEL_CS_NUM_THREADS="2",
        KEEL_CS_COMPRESS="false",  # as prepared: no compression run at start-up
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    with (
        start_app_server(APP, env=env, timeout_s=240) as url,
        httpx.Client(base_url=url, timeout=120) as client,
    ):
        assert client.get("/healthz").json()["generation"] == "on"
        # The first load dequantized the packaged GGUF into the cache folder.
        assert (model_dir / "model.safetensors").is_file()

        reply = client.post("/chat", json={"message": QUESTION}).json()
        assert reply["kind"] == "retrieval" and reply["intent"] == "fees_and_charges"
        citations = reply["citations"]
        assert [c["number"] for c in citations] == list(range(1, len(citations) + 1))
        cited = {int(n) for n in re.findall(r"\[(\d+)\]", reply["answer"])}
        assert cited and cited <= {c["number"] for c in citations}
        if reply["generated"]:
            assert reply["grounding_failure"] is None
            outcome = "shown"
        else:
            # The extractive answer, with the reason the generated one was rejected.
            assert reply["grounding_failure"]
            outcome = "rejected"
        metrics = client.get("/metrics").text
        assert f'cs_generated_answers_total{{outcome="{outcome}"}} 1.0' in metrics
        stored = client.get(f"/sessions/{reply['session_id']}").json()["messages"]
        assert stored[-1]["text"] == reply["answer"]  # only the text shown is stored

    # A made-up sentence citing a real retrieved passage is rejected.
    passages = [
        RetrievedPassage(
            c["passage_id"],
            c["doc_id"],
            c["title"],
            c["url"],
            c["start"],
            c["end"],
            c["snippet"],
            0,
        )
        for c in citations
    ]
    made_up = "Every customer gets a free holiday in Spain after opening an account [1]."
    result = check_grounding(made_up, passages, min_overlap=0.7)
    assert not result.grounded and "sentence 1" in (result.failure or "")
