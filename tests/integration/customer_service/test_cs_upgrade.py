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
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from keel_service.servers import start_app_server
from tests.integration.customer_service.cs_support import APP, server_env

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


def _model(client: httpx.Client) -> dict:
    response = client.get("/healthz")
    assert response.status_code == 200, response.text
    return response.json()["model"]


def _wait_for_outcome(client: httpx.Client) -> dict:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        model = _model(client)
        if model["upgrade"]["state"] in {"swapped", "refused", "failed"}:
            return model
        time.sleep(1.0)
    raise AssertionError(f"no upgrade outcome within {DEADLINE_S:.0f} s: {model}")


@pytest.mark.timeout(DEADLINE_S + 300)
def test_upgrade_swaps_the_production_model_in_without_a_failed_request(
    cs_state_dir: Path, tmp_path: Path
) -> None:
    state = _own_state(cs_state_dir, tmp_path / "state", break_head=True)
    env = server_env(state, KEEL_CS_UPGRADE="on", KEEL_CS_UPGRADE_EPOCHS="1")
    statuses: list[int] = []
    phases: list[str] = []
    stop = threading.Event()

    with (
        start_app_server(APP, env=env, timeout_s=240) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        first = _model(client)
        assert first["tier"] == "fast"
        assert first["upgrade"]["state"] in {"pending", "training", "evaluating"}

        def chat_loop() -> None:
            with httpx.Client(base_url=url, timeout=60) as chat:
                session = chat.post("/sessions").json()["session_id"]
                while not stop.is_set():
                    reply = chat.post("/chat", json={"session_id": session, "message": QUESTION})
                    statuses.append(reply.status_code)
                    phases.append(_model(chat)["tier"])
                    time.sleep(0.05)

        loop = threading.Thread(target=chat_loop)
        loop.start()
        try:
            outcome = _wait_for_outcome(client)
            # Keep chatting a little on the new model.
            after = len(statuses)
            deadline = time.monotonic() + 120
            while len(statuses) < after + 10 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            stop.set()
            loop.join(120)

        assert outcome["upgrade"]["state"] == "swapped", outcome
        assert outcome["tier"] == "full"
        upgrade = outcome["upgrade"]
        assert upgrade["fraction"] == 1.0
        assert upgrade["candidate_score"] > upgrade["served_score"]
        assert outcome["validation_score"] == upgrade["candidate_score"]
        # A client chatted throughout: on the old model, then on the new, never an error.
        assert statuses and set(statuses) == {200}, statuses
        assert phases[0] == "fast" and phases[-1] == "full"
        # The new model serves: the broken head said one intent for everything.
        session = client.post("/sessions").json()["session_id"]
        reply = client.post("/chat", json={"session_id": session, "message": QUESTION}).json()
        assert reply["intent"] == "card_arrival", reply
        metrics = client.get("/metrics").text
        assert 'keel_model_validation_score{model="intent",tier="full"}' in metrics
        assert 'keel_model_upgrade_state{model="intent",state="swapped"} 1.0' in metrics

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
        outcome = _wait_for_outcome(client)
        assert outcome["upgrade"]["state"] == "refused", outcome
        assert outcome["tier"] == "fast"
        assert "does not beat the served model" in outcome["upgrade"]["reason"]
    [kept] = (state / "models" / "intent-upgrade" / "refused").iterdir()
    record = json.loads((kept / "reason.json").read_text())
    assert record["score"] < record["served_score"]
    assert (kept / "model" / "intent.json").is_file()
