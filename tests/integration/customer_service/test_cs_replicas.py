"""Two support-bot replicas on one PostgreSQL: knowledge-base edits made through one are
answered by the other, and a conversation moves freely between them (real servers)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from keel_service.servers import start_app_server
from tests.integration.customer_service.cs_support import API_KEY, APP, copy_state, server_env

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
ADMIN = {"X-API-Key": API_KEY}
DEADLINE_S = 120.0

PET_DOC = {
    "title": "Pet insurance",
    "text": (
        "Bramble Bank does not sell pet insurance itself. Pet insurance for cats and dogs "
        "is offered by our partner Fernleaf Mutual, with a 10% discount for Bramble customers."
    ),
    "format": "text",
}
PET_QUESTION = "Who offers pet insurance for cats?"


@pytest.fixture(scope="module")
def replicas(
    cs_state_dir: Path, postgres_module_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[httpx.Client]]:
    """Clients of replicas A and B: one PostgreSQL, their own state folders (started once
    for the module: each test leaves the knowledge base as it found it)."""
    folder = tmp_path_factory.mktemp("cs-replicas")
    with ExitStack() as stack:
        clients = []
        for name in ("a", "b"):
            env = server_env(
                copy_state(cs_state_dir, folder / name),
                KEEL_CS_DATABASE_URL=postgres_module_url,
                KEEL_CS_KB_POLL_INTERVAL_S="1",
            )
            url = stack.enter_context(start_app_server(APP, env=env, timeout_s=240))
            clients.append(stack.enter_context(httpx.Client(base_url=url, timeout=60)))
        yield clients


def _cited(client: httpx.Client, doc_id: str) -> bool:
    session = client.post("/sessions").json()["session_id"]
    reply = client.post("/chat", json={"session_id": session, "message": PET_QUESTION})
    assert reply.status_code == 200, reply.text
    return any(c["doc_id"] == doc_id for c in reply.json()["citations"])


def _wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(1.0)
    pytest.fail(f"not within {DEADLINE_S:.0f} s: {what}")


def test_a_document_added_on_one_replica_is_cited_by_the_other(
    replicas: list[httpx.Client],
) -> None:
    a, b = replicas
    # The bundled content was seeded once: both replicas serve the same documents.
    documents = [
        {d["doc_id"] for d in c.get("/admin/documents", headers=ADMIN).json()} for c in replicas
    ]
    assert documents[0] == documents[1] and len(documents[0]) >= 40
    assert not _cited(b, "pet-insurance")

    put = a.put("/admin/documents/pet-insurance", json=PET_DOC, headers=ADMIN)
    assert put.status_code == 200 and put.json()["status"] == "added"
    assert _cited(a, "pet-insurance")  # applied at once where it was made
    _wait_for(lambda: _cited(b, "pet-insurance"), "replica B cites the new document")

    # Deleted through B: A stops citing it.
    assert b.delete("/admin/documents/pet-insurance", headers=ADMIN).status_code == 204
    assert b.get("/kb/pet-insurance/content").status_code == 404
    _wait_for(lambda: not _cited(a, "pet-insurance"), "replica A forgets the deleted document")
    assert a.delete("/admin/documents/pet-insurance", headers=ADMIN).status_code == 404


def test_a_conversation_started_on_one_replica_continues_on_the_other(
    replicas: list[httpx.Client],
) -> None:
    a, b = replicas
    session = a.post("/sessions").json()["session_id"]
    first = a.post("/chat", json={"session_id": session, "message": "I lost my card"})
    assert first.status_code == 200 and first.json()["kind"] == "template"
    on_b = b.get(f"/sessions/{session}").json()
    assert [m["text"] for m in on_b["messages"] if m["role"] == "user"] == ["I lost my card"]

    second = b.post("/chat", json={"session_id": session, "message": "How do I send money abroad?"})
    assert second.status_code == 200
    handed = b.post(f"/sessions/{session}/handoff", json={"reason": "customer_button"})
    assert handed.status_code == 200
    queue_a = a.get("/agent/queue", headers=ADMIN).json()
    item = next(i for i in queue_a if i["session_id"] == session)
    assert item["state"] == "waiting_for_agent" and item["handoff_turns"]
    reply = a.post(
        f"/agent/sessions/{session}/reply",
        json={"agent": "Sam", "message": "Sam here"},
        headers=ADMIN,
    )
    assert reply.status_code == 200
    history = b.get(f"/sessions/{session}").json()
    assert history["state"] == "with_agent"
    assert [m["role"] for m in history["messages"]] == [
        "user",
        "bot",
        "user",
        "bot",
        "bot",
        "agent",
    ]
