"""Live upgrade of the support bot's intent model, end to end on a real server.

The server starts on the fast (frozen-encoder head) tier; a niced child trains the
production recipe (``full``: here one epoch, no compression, to stay cheap) and the
server swaps it in while a client keeps chatting: every answer is a 200, before, during
and after the swap. So that the swap is certain on a validation set of 50 rows, the
served head is deliberately broken first (it answers one intent for everything); the
refusal of a candidate that is not better is tested with a fake build in
``tests/unit/service/test_upgrade.py`` and, with a recipe known to be worse, in the slow
test below.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from keel_service.servers import start_app_server
from tests.integration.customer_service.cs_support import APP, server_env
from tests.support.live_upgrade import (
    assert_swap_metrics,
    assert_swapped,
    assert_upgrading_from_fast,
    calling_throughout,
    served_model,
    wait_for_outcome,
)

pytestmark = pytest.mark.integration
DEADLINE_S = 1200.0  # one fine-tuning epoch on 2 busy cores, with generous margin
QUESTION = "My new card still hasn't arrived, where is it?"


def _own_state(prepared: Path, target: Path, *, break_head: bool) -> Path:
    """A server state folder with its own copy of the prepared fast intent model (the
    upgrade writes beside it), optionally with a head that always answers one intent."""
    shutil.copytree(
        prepared,
        target,
        ignore=shutil.ignore_patterns("models", "*.sqlite3*", "*.migrate-lock"),
    )
    models = target / "models"
    models.mkdir()
    for entry in (prepared / "models").iterdir():
        if entry.name != "intent":
            (models / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    shutil.copytree(
        prepared / "models" / "intent",
        models / "intent",
        symlinks=True,
        ignore=shutil.ignore_patterns("encoder", ".lock"),
    )
    for trained in (models / "intent").glob("*/*"):
        encoder = prepared / "models" / "intent" / trained.parent.name / trained.name / "encoder"
        if encoder.is_dir():
            (trained / "encoder").symlink_to(encoder, target_is_directory=True)
        head = trained / "head.safetensors"
        if break_head and head.is_file():
            tensors = load_file(head)
            tensors["weight"] = np.zeros_like(tensors["weight"])
            tensors["bias"] = np.zeros_like(tensors["bias"])
            tensors["bias"][0] = 1.0
            save_file(tensors, head)
    return target


@pytest.mark.timeout(DEADLINE_S + 300)
def test_upgrade_swaps_the_production_model_in_without_a_failed_request(
    cs_state_dir: Path, tmp_path: Path
) -> None:
    state = _own_state(cs_state_dir, tmp_path / "state", break_head=True)
    env = server_env(state, KEEL_CS_UPGRADE="on", KEEL_CS_UPGRADE_EPOCHS="1")
    with (
        start_app_server(APP, env=env, timeout_s=240) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        assert_upgrading_from_fast(served_model(client))
        session = client.post("/sessions").json()["session_id"]

        def chat(http: httpx.Client, k: int) -> httpx.Response:
            return http.post("/chat", json={"session_id": session, "message": QUESTION})

        # A client chats throughout, and a little on the new model once it is in.
        with calling_throughout(url, chat) as chats:
            outcome = wait_for_outcome(client, DEADLINE_S)

        upgrade = assert_swapped(outcome)
        # A client chatted throughout: on the old model, then on the new, never an error.
        chats.assert_never_failed(first_tier="fast", last_tier="full")
        # The new model serves: the broken head said one intent for everything.
        session = client.post("/sessions").json()["session_id"]
        reply = client.post("/chat", json={"session_id": session, "message": QUESTION}).json()
        assert reply["intent"] == "card_arrival", reply
        assert_swap_metrics(client, "intent")

    accepted = list((state / "models" / "intent-upgrade" / "accepted").iterdir())
    assert len(accepted) == 1
    result = json.loads((accepted[0] / "result.json").read_text())
    assert result["score"] == upgrade["candidate_score"]


@pytest.mark.slow
@pytest.mark.timeout(DEADLINE_S + 300)
def test_a_candidate_known_to_be_worse_is_refused_and_kept_aside(
    cs_state_dir: Path, tmp_path: Path
) -> None:
    """A learning rate of 0.5 wrecks the encoder: the served head stays."""
    state = _own_state(cs_state_dir, tmp_path / "state", break_head=False)
    env = server_env(
        state,
        KEEL_CS_UPGRADE="on",
        KEEL_CS_UPGRADE_EPOCHS="1",
        KEEL_CS_UPGRADE_LEARNING_RATE="0.5",
    )
    with (
        start_app_server(APP, env=env, timeout_s=240) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        outcome = wait_for_outcome(client, DEADLINE_S)
        assert outcome["upgrade"]["state"] == "refused", outcome
        assert outcome["tier"] == "fast"
        assert "does not beat the served model" in outcome["upgrade"]["reason"]
    [kept] = (state / "models" / "intent-upgrade" / "refused").iterdir()
    record = json.loads((kept / "reason.json").read_text())
    assert record["score"] < record["served_score"]
    assert (kept / "model" / "intent.json").is_file()
