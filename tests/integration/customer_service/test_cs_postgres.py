"""Conversation storage on a real PostgreSQL: compare-and-set, row locks, upgrade, retention."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from customer_service.errors import ConversationConflictError, SessionNotFoundError
from customer_service.storage import (
    MAX_ATTEMPTS,
    Conversation,
    ConversationState,
    ConversationStore,
    NewMessage,
    Role,
    backoff,
    conversations,
)

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def test_a_stale_update_is_refused_on_postgresql(postgres_url: str) -> None:
    store = ConversationStore(postgres_url)
    created = store.create_conversation("web")
    bot_copy = store.get_conversation(created.id)
    agent_copy = store.get_conversation(created.id)
    agent_copy.state = ConversationState.WITH_AGENT
    store.record_turn(agent_copy, [NewMessage(Role.AGENT, "Sam here")])
    with pytest.raises(ConversationConflictError):
        store.record_turn(bot_copy, [NewMessage(Role.USER, "hi"), NewMessage(Role.BOT, "hello")])
    assert store.get_conversation(created.id).state is ConversationState.WITH_AGENT
    assert [m.text for m in store.history(created.id)] == ["Sam here"]
    store.close()


def test_concurrent_writers_of_two_processes_lose_no_update(postgres_url: str) -> None:
    """Two stores (as two server processes) and 16 threads: locked read-modify-writes
    (agent actions) and optimistic compare-and-set writes (bot turns) on one row."""
    stores = [ConversationStore(postgres_url), ConversationStore(postgres_url)]
    conversation_id = stores[0].create_conversation("web").id

    def agent_action(index: int) -> None:
        def change(conversation: Conversation) -> list[NewMessage]:
            conversation.handoff_count += 1
            conversation.state = ConversationState.WITH_AGENT
            return [NewMessage(Role.AGENT, f"agent {index}")]

        stores[index % 2].modify(conversation_id, change)

    def bot_turn(index: int) -> None:
        store = stores[index % 2]
        for attempt in range(MAX_ATTEMPTS * 5):
            conversation = store.get_conversation(conversation_id)
            conversation.low_confidence_streak += 1
            try:
                store.record_turn(conversation, [NewMessage(Role.USER, f"user {index}")])
                return
            except ConversationConflictError:
                backoff(min(attempt, 5))
        raise AssertionError(f"bot turn {index} never got through")

    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(agent_action, i) for i in range(40)]
        futures += [pool.submit(bot_turn, i) for i in range(40)]
        for future in futures:
            future.result()
    final = stores[0].get_conversation(conversation_id)
    assert final.handoff_count == 40 and final.low_confidence_streak == 40
    assert final.version == 80 and final.state is ConversationState.WITH_AGENT
    texts = sorted(m.text for m in stores[0].history(conversation_id))
    assert texts == sorted([f"agent {i}" for i in range(40)] + [f"user {i}" for i in range(40)])
    for store in stores:
        store.close()


def test_an_older_database_is_upgraded_and_purged_on_postgresql(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE conversations (id VARCHAR(32) PRIMARY KEY, "
                "client_id VARCHAR(128) NOT NULL, state VARCHAR(32) NOT NULL, "
                "created_at FLOAT NOT NULL, updated_at FLOAT NOT NULL, "
                "low_confidence_streak INTEGER NOT NULL, pending_options TEXT, "
                "last_intent VARCHAR(128), handoff_reason VARCHAR(64), handoff_at FLOAT, "
                "handoff_count INTEGER NOT NULL, agent_name VARCHAR(128))"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO conversations VALUES "
                "('old', 'web', 'bot', 1.0, 1.0, 0, NULL, NULL, NULL, NULL, 0, NULL)"
            )
        )
    engine.dispose()
    store = ConversationStore(postgres_url)
    old = store.get_conversation("old")
    assert old.version == 0
    store.record_turn(old, [NewMessage(Role.USER, "from before the upgrade")])
    with store.engine.begin() as conn:  # last activity 100 days ago
        conn.execute(
            conversations.update()
            .where(conversations.c.id == "old")
            .values(updated_at=time.time() - 100 * 86400)
        )
    recent = store.create_conversation("web")
    assert store.purge_expired(time.time(), retention_days=90) == 1
    with pytest.raises(SessionNotFoundError):
        store.get_conversation("old")
    assert store.get_conversation(recent.id).id == recent.id
    store.close()
