"""Server restarts and rate limiting (each needs its own server process)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from keel_service.servers import start_app_server
from tests.integration.customer_service.cs_support import APP, server_env

pytestmark = pytest.mark.integration


def test_restart_loses_no_conversation(cs_state_dir: Path) -> None:
    env = server_env(cs_state_dir)
    with (
        start_app_server(APP, env=env, timeout_s=180) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        session = client.post("/sessions").json()["session_id"]
        client.post("/chat", json={"session_id": session, "message": "I lost my card"})
        client.post(f"/sessions/{session}/handoff")
        before = client.get(f"/sessions/{session}").json()
    with (
        start_app_server(APP, env=env, timeout_s=180) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        after = client.get(f"/sessions/{session}").json()
        assert after == before
        assert after["state"] == "waiting_for_agent"
        assert (
            client.post("/chat", json={"session_id": session, "message": "hello?"}).json()["kind"]
            == "silent"
        )


def test_rate_limit_answers_429(cs_state_dir: Path) -> None:
    env = server_env(cs_state_dir, KEEL_CS_RATE_LIMIT_PER_MINUTE="3", KEEL_CS_RATE_LIMIT_BURST="3")
    with (
        start_app_server(APP, env=env, timeout_s=180) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        session = client.post("/sessions").json()["session_id"]  # 1st request
        codes = [
            client.post("/chat", json={"session_id": session, "message": "hello"}).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 429]
        refused = client.post("/chat", json={"session_id": session, "message": "hello"})
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert client.get(f"/sessions/{session}").status_code == 200  # reads are not limited


def test_retention_job_purges_expired_conversations(cs_state_dir: Path, tmp_path: Path) -> None:
    import time

    from customer_service.storage import ConversationStore, NewMessage, Role, conversations

    database = f"sqlite:///{tmp_path / 'retention.sqlite3'}"
    store = ConversationStore(database)
    expired = store.create_conversation("web")
    store.record_turn(expired, [NewMessage(Role.USER, "an old question")])
    kept = store.create_conversation("web")
    store.record_turn(kept, [NewMessage(Role.USER, "a recent question")])
    with store.engine.begin() as conn:  # idle for 31 days
        conn.execute(
            conversations.update()
            .where(conversations.c.id == expired.id)
            .values(updated_at=time.time() - 31 * 86400)
        )
    store.close()
    env = server_env(cs_state_dir, KEEL_CS_DATABASE_URL=database, KEEL_CS_RETENTION_DAYS="30")
    with (
        start_app_server(APP, env=env, timeout_s=180) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        # The first purge runs before the app reports ready.
        assert client.get(f"/sessions/{expired.id}").status_code == 404
        recent = client.get(f"/sessions/{kept.id}").json()
        assert [m["text"] for m in recent["messages"]] == ["a recent question"]
