import sqlite3
from pathlib import Path

import pytest

from customer_service.errors import MessageNotFoundError, SessionNotFoundError
from customer_service.storage import ConversationState, ConversationStore, NewMessage, Role


@pytest.fixture()
def store(tmp_path: Path) -> ConversationStore:
    return ConversationStore(f"sqlite:///{tmp_path / 'db.sqlite3'}")


def test_personal_data_never_reaches_the_database(tmp_path: Path, store: ConversationStore) -> None:
    conversation = store.create_conversation("web")
    store.record_turn(
        conversation,
        [
            NewMessage(Role.USER, "card 4111 1111 1111 1111, mail a@b.com, call 07700900123"),
            NewMessage(Role.BOT, "noted", citations=[{"snippet": "reach me at x@y.org"}]),
        ],
    )
    raw = (
        sqlite3.connect(tmp_path / "db.sqlite3")
        .execute("select text, citations from messages")
        .fetchall()
    )
    dump = repr(raw)
    assert (
        "4111" not in dump
        and "a@b.com" not in dump
        and "07700900123" not in dump
        and "x@y.org" not in dump
    )
    assert raw[0][0] == "card [CARD], mail [EMAIL], call [PHONE]"


def test_sqlite_runs_in_wal_mode(tmp_path: Path, store: ConversationStore) -> None:
    store.create_conversation("web")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_history_feedback_and_queue(store: ConversationStore) -> None:
    conversation = store.create_conversation("web")
    user, bot = store.record_turn(
        conversation, [NewMessage(Role.USER, "hi"), NewMessage(Role.BOT, "hello", "template")]
    )
    store.set_feedback(conversation.id, bot.id, 1, "great")
    store.set_feedback(conversation.id, bot.id, -1)  # replaces the first vote
    history = store.history(conversation.id)
    assert [(m.role, m.rating) for m in history] == [(Role.USER, None), (Role.BOT, -1)]
    with pytest.raises(MessageNotFoundError):
        store.set_feedback(conversation.id, user.id, 1)  # only bot answers are rated
    assert store.queue() == []
    conversation.state = ConversationState.WAITING_FOR_AGENT
    store.update_conversation(conversation)
    assert [c.id for c in store.queue()] == [conversation.id]
    with pytest.raises(SessionNotFoundError):
        store.history("0" * 32)
