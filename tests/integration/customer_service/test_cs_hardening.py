"""Races, hostile input and personal data against a running support bot (real HTTP)."""

from __future__ import annotations

import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from keel_service.servers import start_app_server
from tests.integration.customer_service.cs_support import API_KEY, APP, copy_state, server_env

pytestmark = pytest.mark.integration
ADMIN = {"X-API-Key": API_KEY}
JSON = {"Content-Type": "application/json"}


def _start(client: httpx.Client) -> str:
    response = client.post("/sessions")
    assert response.status_code == 200, response.text
    return response.json()["session_id"]


def _chat(client: httpx.Client, session: str, text: str) -> httpx.Response:
    return client.post("/chat", json={"session_id": session, "message": text})


def _agent_reply(client: httpx.Client, session: str, text: str) -> httpx.Response:
    return client.post(
        f"/agent/sessions/{session}/reply", json={"agent": "Sam", "message": text}, headers=ADMIN
    )


def test_agent_takeovers_racing_bot_answers_are_never_undone(client: httpx.Client) -> None:
    """50 conversations, each with a customer message (the bot answers, a model call)
    and an agent's takeover sent at the same moment: the takeover always survives."""
    sessions = [_start(client) for _ in range(50)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = []
        for index, session in enumerate(sessions):
            futures.append(pool.submit(_chat, client, session, "I lost my card"))
            futures.append(pool.submit(_agent_reply, client, session, f"Sam here ({index})"))
        responses = [future.result() for future in futures]
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses[:5]]

    queue = {item["session_id"] for item in client.get("/agent/queue", headers=ADMIN).json()}
    for index, session in enumerate(sessions):
        history = client.get(f"/sessions/{session}").json()
        assert history["state"] == "with_agent", history
        assert session in queue
        texts = [(m["role"], m["text"]) for m in history["messages"]]
        assert texts.count(("agent", f"Sam here ({index})")) == 1, texts
        assert texts.count(("user", "I lost my card")) == 1, texts


def test_fifty_agent_replies_racing_customer_messages_all_land_once(
    client: httpx.Client,
) -> None:
    _fifty_agent_replies_race(client)


@pytest.mark.postgres
def test_fifty_agent_replies_race_on_postgresql(
    cs_state_dir: Path, postgres_url: str, tmp_path: Path
) -> None:
    """The same race on a server whose conversations live in PostgreSQL (row locks and
    compare-and-set instead of SQLite's single writer)."""
    state = copy_state(cs_state_dir, tmp_path / "state")
    env = server_env(state, KEEL_CS_DATABASE_URL=postgres_url)
    with (
        start_app_server(APP, env=env, timeout_s=240) as url,
        httpx.Client(base_url=url, timeout=60) as pg_client,
    ):
        _fifty_agent_replies_race(pg_client)


def _fifty_agent_replies_race(client: httpx.Client) -> None:
    session = _start(client)
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = []
        for index in range(50):
            futures.append(pool.submit(_agent_reply, client, session, f"agent {index}"))
            futures.append(pool.submit(_chat, client, session, f"I lost my card ({index})"))
        responses = [future.result() for future in futures]
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses[:5]]
    history = client.get(f"/sessions/{session}").json()
    assert history["state"] == "with_agent"
    agent = sorted(m["text"] for m in history["messages"] if m["role"] == "agent")
    user = sorted(m["text"] for m in history["messages"] if m["role"] == "user")
    assert agent == sorted(f"agent {i}" for i in range(50))
    assert user == sorted(f"I lost my card ({i})" for i in range(50))
    queue = client.get("/agent/queue", headers=ADMIN).json()
    assert [item["state"] for item in queue if item["session_id"] == session] == ["with_agent"]


def test_hostile_text_and_numbers_get_422_naming_the_field(client: httpx.Client) -> None:
    session = _start(client)
    bad_bodies = [
        ("/chat", '{"message": "\\ud800 lone surrogate"}', "message"),
        ("/chat", '{"message": "nul \\u0000 byte"}', "message"),
        ("/chat", '{"message": "\\u200b\\ufeff "}', "message"),  # nothing visible
        ("/chat", json.dumps({"message": "x" * 100_001}), "message"),
        (f"/sessions/{session}/feedback", '{"message_id": 1e400, "rating": "up"}', "message_id"),
        (
            f"/sessions/{session}/feedback",
            '{"message_id": 99999999999999999999999, "rating": "up"}',
            "message_id",
        ),
        (
            f"/sessions/{session}/feedback",
            '{"message_id": 1, "rating": "up", "comment": "\\udfff"}',
            "comment",
        ),
        (f"/agent/sessions/{session}/reply", '{"agent": "\\ud83d", "message": "x"}', "agent"),
        (f"/agent/sessions/{session}/reply", '{"agent": "Sam", "message": "a\\u0000"}', "message"),
        (
            f"/agent/sessions/{session}/reply",
            json.dumps({"agent": "S" * 65, "message": "x"}),
            "agent",
        ),
        ("/agent/sessions/not-a-session/reply", '{"agent": "Sam", "message": "x"}', "session_id"),
    ]
    for path, body, field in bad_bodies:
        response = client.post(path, content=body.encode(), headers={**JSON, **ADMIN})
        assert response.status_code == 422, (path, body[:80], response.status_code, response.text)
        assert field in {str(p) for p in response.json()["detail"][0]["loc"]}, response.text
    put = client.put(
        "/admin/documents/surrogate",
        content=b'{"title": "\\ud800", "text": "x"}',
        headers={**JSON, **ADMIN},
    )
    assert put.status_code == 422 and put.json()["detail"][0]["loc"][-1] == "title"
    huge_after = client.get(f"/sessions/{session}", params={"after": str(2**64)})
    assert huge_after.status_code == 422 and huge_after.json()["detail"][0]["loc"][-1] == "after"
    assert client.get("/sessions/%00").status_code == 422
    # The server is unharmed: the conversation still works.
    assert _chat(client, session, "I lost my card").json()["kind"] == "template"


def test_personal_data_variants_are_masked_everywhere(
    client: httpx.Client, cs_server_state: Path
) -> None:
    secrets = [
        "4111.1111.1111.1111",
        "４１１１ １１１１ １１１１ １１１１",
        "gb29 nwbk 6016 1331 9268 19",
        "+44 20 7946 0958",
        "11010519491231002X",
        "138-0013-8000",
        "jo.doe@example.com",
    ]
    session = _start(client)
    reply = _chat(
        client, session, "my card 4111.1111.1111.1111 and iban gb29 nwbk 6016 1331 9268 19"
    )
    assert reply.status_code == 200
    feedback = client.post(
        f"/sessions/{session}/feedback",
        json={
            "message_id": reply.json()["message_id"],
            "rating": "up",
            "comment": "jo.doe@example.com",
        },
    )
    assert feedback.status_code == 204
    client.post(f"/sessions/{session}/handoff")
    _chat(
        client,
        session,
        "身份证 11010519491231002X，手机 138-0013-8000，卡 ４１１１ １１１１ １１１１ １１１１",
    )
    assert _agent_reply(client, session, "I will call +44 20 7946 0958").status_code == 200

    history = client.get(f"/sessions/{session}").json()
    texts = [m["text"] for m in history["messages"]]
    assert "my card [CARD] and iban [IBAN]" in texts
    assert "身份证 [ID]，手机 [PHONE]，卡 [CARD]" in texts
    assert "I will call [PHONE]" in texts
    queue = client.get("/agent/queue", headers=ADMIN).json()
    assert [i["last_customer_message"] for i in queue if i["session_id"] == session] == [
        "身份证 [ID]，手机 [PHONE]，卡 [CARD]"
    ]
    export = client.get("/admin/export", headers=ADMIN).text
    assert f'"conversation_id": "{session}"' in export and "[CARD]" in export
    with sqlite3.connect(cs_server_state / "conversations.sqlite3") as db:
        dump = json.dumps(
            [
                db.execute("select text from messages").fetchall(),
                db.execute("select comment from feedback").fetchall(),
            ],
            ensure_ascii=False,
        )
    for secret in secrets:
        assert (
            secret not in dump
            and secret not in export
            and secret not in json.dumps(history, ensure_ascii=False)
        ), secret
