import functools
import sqlite3
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest
import sqlalchemy as sa

from customer_service.errors import (
    ConversationConflictError,
    MessageNotFoundError,
    SessionNotFoundError,
)
from customer_service.storage import (
    Conversation,
    ConversationState,
    ConversationStore,
    NewMessage,
    Role,
    conversations,
    feedback,
    messages,
)
from customer_service.tables import VERSION_TABLE
from keel_service.db import schema_revision
from tests.support.group_commit import write_in_one_batch


@pytest.fixture()
def store(database_url: str) -> Iterator[ConversationStore]:
    """A store on SQLite, then on a real PostgreSQL (``database_url``)."""
    conversation_store = ConversationStore(database_url)
    yield conversation_store
    conversation_store.close()


def test_personal_data_never_reaches_the_database(store: ConversationStore) -> None:
    conversation = store.create_conversation("web")
    store.record_turn(
        conversation,
        [
            NewMessage(Role.USER, "card 4111 1111 1111 1111, mail a@b.com, call 07700900123"),
            NewMessage(Role.BOT, "noted", citations=[{"snippet": "reach me at x@y.org"}]),
        ],
    )
    with store.engine.connect() as conn:  # what is really in the database
        raw = [tuple(r) for r in conn.execute(sa.text("select text, citations from messages"))]
    dump = repr(raw)
    assert (
        "4111" not in dump
        and "a@b.com" not in dump
        and "07700900123" not in dump
        and "x@y.org" not in dump
    )
    assert raw[0][0] == "card [CARD], mail [EMAIL], call [PHONE]"


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = ConversationStore(f"sqlite:///{tmp_path / 'db.sqlite3'}")
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


def test_a_stale_conversation_update_is_refused(store: ConversationStore) -> None:
    created = store.create_conversation("web")
    bot_copy = store.get_conversation(created.id)
    agent_copy = store.get_conversation(created.id)
    agent_copy.state = ConversationState.WITH_AGENT
    store.record_turn(agent_copy, [NewMessage(Role.AGENT, "Sam here")])
    assert agent_copy.version == 1
    # The bot read the row before the agent took over: its write must not land.
    bot_copy.low_confidence_streak = 1
    with pytest.raises(ConversationConflictError):
        store.record_turn(bot_copy, [NewMessage(Role.USER, "hi"), NewMessage(Role.BOT, "hello")])
    stored = store.get_conversation(created.id)
    assert stored.state is ConversationState.WITH_AGENT and stored.version == 1
    assert [m.text for m in store.history(created.id)] == ["Sam here"]  # nothing half-written


def test_modify_rereads_and_retries_after_a_conflict(tmp_path: Path) -> None:
    # SQLite only: on PostgreSQL modify() holds the row lock (FOR UPDATE), so another
    # writer waits instead of interleaving (tests/integration/.../test_cs_postgres.py).
    store = ConversationStore(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    created = store.create_conversation("web")
    # Another writer on the same database that does not queue on the store's write
    # lock (its own store; a process of ours would wait on the file lock instead), so
    # it can commit between this store's read and its write.
    other_process = ConversationStore(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    other_process.write_gate = lambda: nullcontext()
    seen_versions = []

    def take_over(conversation: Conversation) -> list[NewMessage]:
        seen_versions.append(conversation.version)
        if len(seen_versions) == 1:  # the other process writes between read and write
            other = other_process.get_conversation(created.id)
            other.low_confidence_streak = 5
            other_process.update_conversation(other)
        conversation.state = ConversationState.WITH_AGENT
        return [NewMessage(Role.AGENT, "hello")]

    conversation, stored = store.modify(created.id, take_over)
    assert seen_versions == [0, 1] and [m.text for m in stored] == ["hello"]
    final = store.get_conversation(created.id)
    assert final.state is ConversationState.WITH_AGENT and final.low_confidence_streak == 5
    assert final.version == conversation.version == 2
    assert [m.text for m in store.history(created.id)] == ["hello"]  # stored once
    other_process.close()


def test_updating_a_purged_conversation_is_not_found(store: ConversationStore) -> None:
    created = store.create_conversation("web")
    store.purge_expired(time.time() + 100 * 86400, retention_days=90)
    with pytest.raises(SessionNotFoundError):
        store.record_turn(created, [NewMessage(Role.USER, "hi")])


def test_a_database_from_before_the_version_column_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        old.executescript(
            """
            CREATE TABLE conversations (
                id VARCHAR(32) PRIMARY KEY, client_id VARCHAR(128) NOT NULL,
                state VARCHAR(32) NOT NULL, created_at FLOAT NOT NULL, updated_at FLOAT NOT NULL,
                low_confidence_streak INTEGER NOT NULL, pending_options TEXT,
                last_intent VARCHAR(128), handoff_reason VARCHAR(64), handoff_at FLOAT,
                handoff_count INTEGER NOT NULL, agent_name VARCHAR(128));
            INSERT INTO conversations VALUES
                ('abc', 'web', 'waiting_for_agent', 1.0, 1.0, 0, NULL, NULL, 'x', 1.0, 1, NULL);
            """
        )
    store = ConversationStore(f"sqlite:///{path}")
    conversation = store.get_conversation("abc")
    assert conversation.version == 0 and conversation.state is ConversationState.WAITING_FOR_AGENT
    conversation.state = ConversationState.WITH_AGENT
    store.update_conversation(conversation)
    assert store.get_conversation("abc").version == 1
    ConversationStore(f"sqlite:///{path}").close()  # a second start finds it upgraded
    engine = sa.create_engine(f"sqlite:///{path}")
    assert schema_revision(engine, VERSION_TABLE) == "0003"
    columns = {c["name"] for c in sa.inspect(engine).get_columns("conversations")}
    assert {"version", "handoff_evidence"} <= columns
    assert {"kb_documents", "kb_state", "intent_corrections", "corrections_state"} <= set(
        sa.inspect(engine).get_table_names()
    )


def test_retention_purges_old_conversations_only(store: ConversationStore) -> None:
    now = time.time()
    old = store.create_conversation("web")
    _, bot = store.record_turn(old, [NewMessage(Role.USER, "hi"), NewMessage(Role.BOT, "hello")])
    store.set_feedback(old.id, bot.id, 1, "thanks")
    recent = store.create_conversation("web")
    store.record_turn(recent, [NewMessage(Role.USER, "still here")])
    with store.engine.begin() as conn:  # the first one last changed 91 days ago
        conn.execute(
            conversations.update()
            .where(conversations.c.id == old.id)
            .values(created_at=now - 91 * 86400, updated_at=now - 91 * 86400)
        )
    assert store.purge_expired(now, retention_days=0) == 0  # 0 keeps everything
    assert store.purge_expired(now, retention_days=90, batch_size=1) == 1
    with pytest.raises(SessionNotFoundError):
        store.get_conversation(old.id)
    assert [m.text for m in store.history(recent.id)] == ["still here"]
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(feedback)).scalar() == 0
    assert store.purge_expired(now, retention_days=90) == 0


def test_sub_second_times_survive_the_round_trip(store: ConversationStore) -> None:
    created = store.create_conversation("web")
    stored = store.get_conversation(created.id)
    assert stored.created_at == pytest.approx(created.created_at, abs=1e-6)


def test_a_handoff_records_its_reason_and_the_turns_that_led_there(
    store: ConversationStore,
) -> None:
    conversation = store.create_conversation("web")
    for text, confidence in [("my card?", 0.31), ("card 4111 1111 1111 1111 broken", 0.22)]:
        conversation = store.get_conversation(conversation.id)
        store.record_turn(
            conversation,
            [
                NewMessage(Role.USER, text, intent="card_issue", confidence=confidence),
                NewMessage(Role.BOT, "sorry?", "fallback", "card_issue", confidence),
            ],
        )
    conversation = store.get_conversation(conversation.id)
    conversation.state = ConversationState.WAITING_FOR_AGENT
    conversation.handoff_reason = "repeated_low_confidence"
    conversation.collect_handoff_evidence = True
    store.record_turn(
        conversation,
        [
            NewMessage(Role.USER, "hello??", intent="greeting", confidence=0.18),
            NewMessage(Role.BOT, "passing you on", "handoff", "greeting", 0.18),
        ],
    )
    evidence = store.get_conversation(conversation.id).handoff_evidence
    assert evidence is not None and evidence["reason"] == "repeated_low_confidence"
    assert [(t["text"], t["confidence"], t["answer"]) for t in evidence["turns"]] == [
        ("my card?", 0.31, "fallback"),
        ("card [CARD] broken", 0.22, "fallback"),  # masked like every stored text
        ("hello??", 0.18, "handoff"),
    ]
    assert [c.handoff_evidence for c in store.queue()] == [evidence]


def test_turns_written_together_share_a_transaction_and_keep_their_own_outcome(
    tmp_path: Path,
) -> None:
    """On SQLite concurrent turns are group-committed: a stale turn in the batch is
    refused (its caller decides again), and the batch's other turns are stored."""
    store = ConversationStore(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    first, second, third = (store.create_conversation("web") for _ in range(3))
    stale = store.get_conversation(first.id)  # the same version as ``first``
    turns = store._turns
    assert turns is not None
    outcomes: dict[str, object] = {}

    def write(name: str, conversation: Conversation) -> None:
        try:
            outcomes[name] = store.record_turn(
                conversation, [NewMessage(Role.USER, name), NewMessage(Role.BOT, "ok")]
            )
        except ConversationConflictError as exc:
            outcomes[name] = exc

    write_in_one_batch(
        turns,
        store.write_gate,
        [
            functools.partial(write, name, conversation)
            for name, conversation in [("head", second), ("a", first), ("b", stale), ("c", third)]
        ],
    )
    transactions = turns.transactions
    assert transactions == 2  # "head", then a, b and c together
    # a and b raced on one version of ``first``: a (queued first) won, b was refused.
    assert isinstance(outcomes["b"], ConversationConflictError)
    assert first.version == 1 and stale.version == 0
    assert second.version == 1 and third.version == 1
    texts = [m.text for c in (first, second, third) for m in store.history(c.id)]
    assert sorted(texts) == ["a", "c", "head", "ok", "ok", "ok"]
    stored_a = outcomes["a"]
    assert isinstance(stored_a, list) and [m.text for m in stored_a] == ["a", "ok"]
    store.close()
