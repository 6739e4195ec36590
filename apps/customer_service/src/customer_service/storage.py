"""Conversation storage (SQLAlchemy Core; SQLite in WAL mode by default, or PostgreSQL).

Every text is passed through :func:`customer_service.pii.mask_pii` here, so nothing
unmasked reaches the database whatever the caller does.

Conversation rows carry a ``version``: every update is a compare-and-set
(``UPDATE ... WHERE id = ? AND version = ?``), so a writer that read the row before
someone else changed it is refused (:class:`ConversationConflictError`) instead of
overwriting the other change. Callers re-read and retry; :meth:`ConversationStore.modify`
does that for quick read-modify-write changes (agent actions).
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from customer_service.errors import (
    ConversationConflictError,
    MessageNotFoundError,
    SessionNotFoundError,
)
from customer_service.pii import mask_pii
from customer_service.tables import (
    MIGRATIONS_DIR,
    VERSION_TABLE,
    conversations,
    feedback,
    messages,
    metadata,
)
from keel_service.db import (
    DriverStatement,
    GroupCommit,
    WriteGate,
    is_sqlite,
    make_engine,
    migrate,
)

__all__ = [
    "MAX_ATTEMPTS",
    "Conversation",
    "ConversationState",
    "ConversationStore",
    "NewMessage",
    "Role",
    "StoredMessage",
    "backoff",
    "conversations",
    "feedback",
    "messages",
    "metadata",
]

log = logging.getLogger(__name__)

# Compare-and-set attempts of one read-modify-write before the caller gets a 409.
MAX_ATTEMPTS = 20
# Customer turns kept as the evidence of a hand-off, and how much of each text.
EVIDENCE_TURNS = 3
EVIDENCE_TEXT_CHARS = 300


class ConversationState(StrEnum):
    """Who is answering the conversation."""

    BOT = "bot"
    WAITING_FOR_AGENT = "waiting_for_agent"
    WITH_AGENT = "with_agent"


class Role(StrEnum):
    USER = "user"
    BOT = "bot"
    AGENT = "agent"


@dataclass
class Conversation:
    """A conversation's row."""

    id: str
    client_id: str
    state: ConversationState
    created_at: float
    updated_at: float
    low_confidence_streak: int = 0
    pending_options: list[str] = field(default_factory=list)
    last_intent: str | None = None
    handoff_reason: str | None = None
    handoff_at: float | None = None
    handoff_count: int = 0
    agent_name: str | None = None
    version: int = 0
    # Why the last hand-off happened: ``{"reason": code, "turns": [...]}`` (see
    # :meth:`ConversationStore.handoff_evidence`); written with the hand-off itself.
    handoff_evidence: dict[str, Any] | None = None
    # Set by whoever hands the conversation over; the store then records the evidence
    # in the same transaction. Not a column.
    collect_handoff_evidence: bool = field(default=False, compare=False)


@dataclass
class StoredMessage:
    """A message's row; ``citations`` is a list of dicts."""

    id: int
    conversation_id: str
    role: Role
    text: str
    created_at: float
    kind: str | None = None
    intent: str | None = None
    confidence: float | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)
    rating: int | None = None


@dataclass
class NewMessage:
    """A message to store (its text is masked on the way in)."""

    role: Role
    text: str
    kind: str | None = None
    intent: str | None = None
    confidence: float | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)


# Statements built once. SQLAlchemy caches a statement's compiled form by its cache key,
# and building a statement with ``.values(...)`` on every call (then computing that key)
# cost more CPU than SQLite's own work on /chat; these take their values as parameters.
_SELECT_CONVERSATION = conversations.select().where(
    conversations.c.id == sa.bindparam("conversation_id")
)
_SELECT_CONVERSATION_FOR_UPDATE = _SELECT_CONVERSATION.with_for_update()
# The conversation's mutable columns (bound as ``p_<column>``) and a message's.
_CONVERSATION_CHANGES = (
    "version",
    "state",
    "updated_at",
    "low_confidence_streak",
    "pending_options",
    "last_intent",
    "handoff_reason",
    "handoff_at",
    "handoff_count",
    "agent_name",
    "handoff_evidence",
)
_MESSAGE_COLUMNS = (
    "conversation_id",
    "role",
    "text",
    "kind",
    "intent",
    "confidence",
    "citations",
    "created_at",
)
_UPDATE_CONVERSATION = (
    conversations.update()
    .where(
        conversations.c.id == sa.bindparam("where_id"),
        conversations.c.version == sa.bindparam("where_version"),
    )
    .values({name: sa.bindparam(f"p_{name}") for name in _CONVERSATION_CHANGES})
)
_INSERT_MESSAGE = (
    messages.insert()
    .values({name: sa.bindparam(f"p_{name}") for name in _MESSAGE_COLUMNS})
    .returning(messages.c.id)
)
_INSERT_CONVERSATION = conversations.insert()
_RECENT_USER_TEXTS = (
    sa.select(messages.c.text)
    .where(
        messages.c.conversation_id == sa.bindparam("conversation_id"),
        messages.c.role == Role.USER.value,
    )
    .order_by(messages.c.id.desc())
    .limit(sa.bindparam("limit"))
)


def open_engine(url: str) -> Engine:
    """An engine on ``url`` with the schema migrated to the newest revision.

    Safe when several processes start at once (``keel_service.db.migrate`` locks).
    """
    # 16 connections: /chat runs in FastAPI's thread pool, and SQLite readers are cheap.
    engine = make_engine(url, pool_size=16)
    migrate(engine, MIGRATIONS_DIR, VERSION_TABLE)
    return engine


def _conversation_from_row(row: Any) -> Conversation:
    return Conversation(
        id=row.id,
        client_id=row.client_id,
        state=ConversationState(row.state),
        created_at=row.created_at,
        updated_at=row.updated_at,
        low_confidence_streak=row.low_confidence_streak or 0,
        pending_options=json.loads(row.pending_options) if row.pending_options else [],
        last_intent=row.last_intent,
        handoff_reason=row.handoff_reason,
        handoff_at=row.handoff_at,
        handoff_count=row.handoff_count or 0,
        agent_name=row.agent_name,
        version=row.version or 0,
        handoff_evidence=json.loads(row.handoff_evidence) if row.handoff_evidence else None,
    )


def backoff(attempt: int) -> None:
    """Sleep a little before retry ``attempt`` (jittered, so contenders spread out)."""
    time.sleep(random.uniform(0.0, min(0.2, 0.005 * 2**attempt)))


def _message_from_row(row: Any, rating: int | None = None) -> StoredMessage:
    return StoredMessage(
        id=row.id,
        conversation_id=row.conversation_id,
        role=Role(row.role),
        text=row.text,
        created_at=row.created_at,
        kind=row.kind,
        intent=row.intent,
        confidence=row.confidence,
        citations=json.loads(row.citations) if row.citations else [],
        rating=rating,
    )


def _conversation_values(conversation: Conversation) -> dict[str, Any]:
    """The compare-and-set's values for ``conversation``'s mutable fields (masked);
    ``p_updated_at`` is now."""
    return {
        "where_id": conversation.id,
        "where_version": conversation.version,
        "p_version": conversation.version + 1,
        "p_state": conversation.state.value,
        "p_updated_at": time.time(),
        "p_low_confidence_streak": conversation.low_confidence_streak,
        "p_pending_options": json.dumps(conversation.pending_options)
        if conversation.pending_options
        else None,
        "p_last_intent": conversation.last_intent,
        "p_handoff_reason": conversation.handoff_reason,
        "p_handoff_at": conversation.handoff_at,
        "p_handoff_count": conversation.handoff_count,
        "p_agent_name": mask_pii(conversation.agent_name) if conversation.agent_name else None,
        "p_handoff_evidence": json.dumps(conversation.handoff_evidence, ensure_ascii=False)
        if conversation.handoff_evidence
        else None,
    }


@dataclass
class _Turn:
    """A turn ready to write: the conversation's compare-and-set values and each
    message's row, masked and serialised, with the masked citations."""

    conversation: Conversation
    messages: list[NewMessage]
    values: dict[str, Any]
    rows: list[dict[str, Any]]
    citations: list[list[dict[str, Any]]]


def _plan_turn(conversation: Conversation, new_messages: list[NewMessage]) -> _Turn:
    now = time.time()
    rows: list[dict[str, Any]] = []
    all_citations: list[list[dict[str, Any]]] = []
    for message in new_messages:
        citations = [
            {k: (mask_pii(v) if isinstance(v, str) else v) for k, v in c.items()}
            for c in message.citations
        ]
        all_citations.append(citations)
        rows.append(
            {
                "p_conversation_id": conversation.id,
                "p_role": message.role.value,
                "p_text": mask_pii(message.text),
                "p_kind": message.kind,
                "p_intent": message.intent,
                "p_confidence": message.confidence,
                "p_citations": json.dumps(citations, ensure_ascii=False) if citations else None,
                "p_created_at": now,
            }
        )
    return _Turn(
        conversation, new_messages, _conversation_values(conversation), rows, all_citations
    )


def _turn_written(turn: _Turn, ids: list[int]) -> list[StoredMessage]:
    """Once ``turn`` is committed: its conversation's version moves on; the stored
    messages."""
    conversation = turn.conversation
    conversation.updated_at = turn.values["p_updated_at"]
    conversation.version += 1
    return [
        StoredMessage(
            id=message_id,
            conversation_id=conversation.id,
            role=message.role,
            text=row["p_text"],
            created_at=row["p_created_at"],
            kind=message.kind,
            intent=message.intent,
            confidence=message.confidence,
            citations=citations,
        )
        for message_id, message, row, citations in zip(
            ids, turn.messages, turn.rows, turn.citations, strict=True
        )
    ]


class ConversationStore:
    """Repository of conversations, messages and feedback.

    Args:
        url: SQLAlchemy database URL (``sqlite:///path`` by default in the app).
    """

    def __init__(self, url: str) -> None:
        self.engine = open_engine(url)
        # SQLite takes one writer at a time and makes the others sleep and retry (the
        # busy handler backs off up to 100 ms per try), which made /chat's tail latency
        # under 32 concurrent clients. Writers of this process queue on a lock instead.
        self.write_gate = WriteGate(self.engine)
        # Every turn's statements, run on the driver (keel_service.db.DriverStatement).
        self._select_conversation = DriverStatement(self.engine, _SELECT_CONVERSATION)
        self._select_conversation_for_update = DriverStatement(
            self.engine, _SELECT_CONVERSATION_FOR_UPDATE
        )
        self._update_conversation = DriverStatement(self.engine, _UPDATE_CONVERSATION)
        self._insert_message_statement = DriverStatement(self.engine, _INSERT_MESSAGE)
        # On SQLite (one writer at a time) the bot's turns are group-committed: the gate
        # is then taken once per batch of concurrent turns instead of once per turn.
        self._turns: GroupCommit[_Turn, list[int]] | None = (
            GroupCommit(
                self.engine,
                self.write_gate,
                self._apply_turn,
                item_errors=(ConversationConflictError, SessionNotFoundError),
            )
            if is_sqlite(self.engine)
            else None
        )

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction (serialised within the process for SQLite)."""
        with self.write_gate(), self.engine.begin() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()

    # conversations -------------------------------------------------------
    def create_conversation(self, client_id: str) -> Conversation:
        now = time.time()
        conversation = Conversation(
            id=uuid.uuid4().hex,
            client_id=mask_pii(client_id)[:128],
            state=ConversationState.BOT,
            created_at=now,
            updated_at=now,
        )
        with self._write() as conn:
            conn.execute(
                _INSERT_CONVERSATION,
                {
                    "id": conversation.id,
                    "client_id": conversation.client_id,
                    "state": conversation.state.value,
                    "created_at": now,
                    "updated_at": now,
                    "low_confidence_streak": 0,
                    "handoff_count": 0,
                    "version": 0,
                },
            )
        return conversation

    def get_conversation(
        self, conversation_id: str, conn: Connection | None = None, *, for_update: bool = False
    ) -> Conversation:
        """The conversation ``conversation_id``.

        Args:
            conversation_id: its id.
            conn: read inside this transaction (default: a connection of its own).
            for_update: lock the row until ``conn``'s transaction ends (PostgreSQL
                ``SELECT ... FOR UPDATE``; SQLite writers are already serialised).

        Raises:
            SessionNotFoundError: no such conversation.
        """
        query = self._select_conversation_for_update if for_update else self._select_conversation
        params = {"conversation_id": conversation_id}
        if conn is None:
            with self.engine.connect() as own:
                row = query.first(own, params)
        else:
            row = query.first(conn, params)
        if row is None:
            raise SessionNotFoundError(f"no conversation {conversation_id!r}")
        return _conversation_from_row(row)

    def update_conversation(
        self, conversation: Conversation, conn: Connection | None = None
    ) -> None:
        """Write a conversation's mutable fields back if nobody changed the row since it
        was read (compare-and-set on ``version``); ``conversation.version`` then moves on.

        Raises:
            ConversationConflictError: the row changed since ``conversation`` was read.
            SessionNotFoundError: the conversation no longer exists (purged).
        """
        values = _conversation_values(conversation)
        if conn is None:
            with self._write() as own:
                self._compare_and_set(own, conversation, values)
        else:
            self._compare_and_set(conn, conversation, values)
        conversation.updated_at = values["p_updated_at"]
        conversation.version += 1

    def _compare_and_set(
        self, conn: Connection, conversation: Conversation, values: dict[str, Any]
    ) -> None:
        if self._update_conversation.rowcount(conn, values) == 1:
            return
        exists = conn.execute(
            sa.select(conversations.c.version).where(conversations.c.id == conversation.id)
        ).first()
        if exists is None:
            raise SessionNotFoundError(f"no conversation {conversation.id!r}")
        raise ConversationConflictError(
            f"conversation {conversation.id!r} changed concurrently "
            f"(version {conversation.version} -> {exists.version})"
        )

    def modify(
        self,
        conversation_id: str,
        change: Callable[[Conversation], list[NewMessage] | None],
    ) -> tuple[Conversation, list[StoredMessage]]:
        """Read, change and write a conversation in one transaction, retried on conflict.

        The row is read under the write lock (``FOR UPDATE`` on PostgreSQL), so
        concurrent callers in one process queue instead of conflicting; the
        compare-and-set still guards against other processes.

        Args:
            conversation_id: the conversation.
            change: mutates the conversation it is given and returns the messages to
                store with it, or ``None`` to write nothing. It may run more than once,
                and runs under the store's write lock: it must be quick and must not
                call the store. Exceptions it raises roll back and propagate.

        Returns:
            The conversation as written (or as read, when nothing was written) and the
            stored messages.

        Raises:
            SessionNotFoundError: no such conversation.
            ConversationConflictError: still conflicting after ``MAX_ATTEMPTS`` tries.
        """
        for attempt in range(MAX_ATTEMPTS):
            try:
                with self._write() as conn:
                    conversation = self.get_conversation(conversation_id, conn, for_update=True)
                    new_messages = change(conversation)
                    if new_messages is None:
                        return conversation, []
                    stored = self._write_turn(conn, conversation, new_messages)
                return conversation, stored
            except ConversationConflictError:
                backoff(attempt)
        raise ConversationConflictError(
            f"conversation {conversation_id!r} kept changing; retry the request"
        )

    def queue(self) -> list[Conversation]:
        """Conversations waiting for or handled by an agent, oldest hand-off first."""
        query = (
            conversations.select()
            .where(
                conversations.c.state.in_(
                    [ConversationState.WAITING_FOR_AGENT.value, ConversationState.WITH_AGENT.value]
                )
            )
            .order_by(conversations.c.handoff_at, conversations.c.created_at)
        )
        with self.engine.connect() as conn:
            return [_conversation_from_row(row) for row in conn.execute(query)]

    # messages ------------------------------------------------------------
    def record_turn(
        self, conversation: Conversation, new_messages: list[NewMessage]
    ) -> list[StoredMessage]:
        """Store messages and the conversation's new state in one transaction.

        The conversation is written first, conditionally: when it changed since it was
        read, nothing is stored and the caller re-reads and decides again. On SQLite,
        turns that arrive together share one transaction (``keel_service.db.GroupCommit``);
        each is still all or nothing, and a conflict is still its own turn's.

        Raises:
            ConversationConflictError: the conversation changed since it was read.
            SessionNotFoundError: the conversation no longer exists.
        """
        if self._turns is None or conversation.collect_handoff_evidence:
            with self._write() as conn:
                return self._write_turn(conn, conversation, new_messages)
        turn = _plan_turn(conversation, new_messages)  # masking and JSON outside the gate
        ids = self._turns.submit(turn)
        return _turn_written(turn, ids)

    def _write_turn(
        self, conn: Connection, conversation: Conversation, new_messages: list[NewMessage]
    ) -> list[StoredMessage]:
        if conversation.collect_handoff_evidence:
            conversation.handoff_evidence = self.handoff_evidence(conn, conversation, new_messages)
        turn = _plan_turn(conversation, new_messages)
        ids = self._apply_turn(conn, turn)
        conversation.collect_handoff_evidence = False
        return _turn_written(turn, ids)

    def _apply_turn(self, conn: Connection, turn: _Turn) -> list[int]:
        """Write a planned turn on ``conn``: the compare-and-set (which raises before
        anything is written), then its messages; their ids. Changes nothing in memory."""
        self._compare_and_set(conn, turn.conversation, turn.values)
        return [int(self._insert_message_statement.first(conn, row).id) for row in turn.rows]

    def handoff_evidence(
        self, conn: Connection, conversation: Conversation, new_messages: list[NewMessage]
    ) -> dict[str, Any]:
        """Why ``conversation`` is being handed over: its reason code and the last
        :data:`EVIDENCE_TURNS` customer turns (masked text, intent, confidence, and the
        kind of answer the bot gave), the turn being written included.

        Args:
            conn: the hand-off's transaction (the evidence is read and written with it).
            conversation: carries the reason (``handoff_reason``).
            new_messages: the messages written with the hand-off.
        """
        rows = conn.execute(
            sa.select(
                messages.c.role,
                messages.c.text,
                messages.c.kind,
                messages.c.intent,
                messages.c.confidence,
            )
            .where(messages.c.conversation_id == conversation.id)
            .order_by(messages.c.id.desc())
            .limit(EVIDENCE_TURNS * 3)
        ).all()
        sequence = [(r.role, r.text, r.kind, r.intent, r.confidence) for r in reversed(rows)]
        sequence += [
            (m.role.value, mask_pii(m.text), m.kind, m.intent, m.confidence) for m in new_messages
        ]
        turns: list[dict[str, Any]] = []
        for role, text, kind, intent, confidence in sequence:
            if role == Role.USER.value:
                turns.append(
                    {
                        "text": text[:EVIDENCE_TEXT_CHARS],
                        "intent": intent,
                        "confidence": confidence,
                        "answer": None,
                    }
                )
            elif role == Role.BOT.value and turns and turns[-1]["answer"] is None:
                turns[-1]["answer"] = kind
        return {"reason": conversation.handoff_reason, "turns": turns[-EVIDENCE_TURNS:]}

    def recent_user_texts(self, conversation_id: str, limit: int) -> list[str]:
        """The last ``limit`` user messages, oldest first."""
        if limit <= 0:
            return []
        params = {"conversation_id": conversation_id, "limit": limit}
        with self.engine.connect() as conn:
            return [row.text for row in conn.execute(_RECENT_USER_TEXTS, params)][::-1]

    def history(self, conversation_id: str, after_id: int = 0) -> list[StoredMessage]:
        """All messages of a conversation (after ``after_id``), with their feedback rating."""
        self.get_conversation(conversation_id)
        query = (
            sa.select(messages, feedback.c.rating)
            .select_from(messages.outerjoin(feedback, feedback.c.message_id == messages.c.id))
            .where(messages.c.conversation_id == conversation_id, messages.c.id > after_id)
            .order_by(messages.c.id)
        )
        with self.engine.connect() as conn:
            return [_message_from_row(row, row.rating) for row in conn.execute(query)]

    # feedback ------------------------------------------------------------
    def set_feedback(
        self, conversation_id: str, message_id: int, rating: int, comment: str | None = None
    ) -> None:
        """Store (or replace) the thumbs rating of a bot message.

        Raises:
            MessageNotFoundError: the message is not a bot message of this conversation.
        """
        with self._write() as conn:
            row = conn.execute(
                sa.select(messages.c.id).where(
                    messages.c.id == message_id,
                    messages.c.conversation_id == conversation_id,
                    messages.c.role == Role.BOT.value,
                )
            ).first()
            if row is None:
                raise MessageNotFoundError(
                    f"no bot message {message_id} in conversation {conversation_id!r}"
                )
            conn.execute(feedback.delete().where(feedback.c.message_id == message_id))
            conn.execute(
                feedback.insert().values(
                    message_id=message_id,
                    conversation_id=conversation_id,
                    rating=rating,
                    comment=mask_pii(comment) if comment else None,
                    created_at=time.time(),
                )
            )

    # analytics and export -------------------------------------------------
    def intent_counts(self, since: float, bucket_s: int) -> list[tuple[float, str, int]]:
        """``(bucket start, intent, count)`` of user messages since ``since``."""
        bucket = (sa.cast(messages.c.created_at / bucket_s, sa.Integer) * bucket_s).label("bucket")
        query = (
            sa.select(bucket, messages.c.intent, sa.func.count().label("n"))
            .where(
                messages.c.role == Role.USER.value,
                messages.c.created_at >= since,
                messages.c.intent.is_not(None),
            )
            .group_by(bucket, messages.c.intent)
            .order_by(bucket)
        )
        with self.engine.connect() as conn:
            return [(float(r.bucket), r.intent, int(r.n)) for r in conn.execute(query)]

    def bot_kind_counts(self, since: float) -> dict[str, int]:
        """Bot messages since ``since`` by answer kind."""
        query = (
            sa.select(messages.c.kind, sa.func.count().label("n"))
            .where(messages.c.role == Role.BOT.value, messages.c.created_at >= since)
            .group_by(messages.c.kind)
        )
        with self.engine.connect() as conn:
            return {str(r.kind): int(r.n) for r in conn.execute(query)}

    def conversation_counts(self, since: float) -> tuple[int, int]:
        """``(conversations started, of which handed off at least once)`` since ``since``."""
        query = sa.select(
            sa.func.count().label("n"),
            sa.func.sum(sa.case((conversations.c.handoff_count > 0, 1), else_=0)).label("h"),
        ).where(conversations.c.created_at >= since)
        with self.engine.connect() as conn:
            row = conn.execute(query).one()
        return int(row.n or 0), int(row.h or 0)

    def feedback_counts(self, since: float) -> dict[int, int]:
        query = (
            sa.select(feedback.c.rating, sa.func.count().label("n"))
            .where(feedback.c.created_at >= since)
            .group_by(feedback.c.rating)
        )
        with self.engine.connect() as conn:
            return {int(r.rating): int(r.n) for r in conn.execute(query)}

    # retention -------------------------------------------------------------
    def purge_expired(self, now: float, retention_days: float, batch_size: int = 500) -> int:
        """Delete conversations idle for more than ``retention_days`` with their messages
        and feedback, in batches (each its own short transaction).

        Args:
            now: the current time (epoch seconds).
            retention_days: how long a conversation is kept after its last activity
                (``updated_at``); ``0`` or less keeps everything.
            batch_size: conversations deleted per transaction.

        Returns:
            The number of conversations deleted.
        """
        if retention_days <= 0:
            return 0
        cutoff = now - retention_days * 86400
        deleted = 0
        while True:
            with self._write() as conn:
                # FOR UPDATE: a concurrent chat turn waits, then finds the row gone (404)
                # instead of adding a message to a conversation being deleted.
                ids = [
                    row.id
                    for row in conn.execute(
                        sa.select(conversations.c.id)
                        .where(conversations.c.updated_at < cutoff)
                        .limit(batch_size)
                        .with_for_update(skip_locked=True)
                    )
                ]
                if not ids:
                    return deleted
                message_ids = sa.select(messages.c.id).where(messages.c.conversation_id.in_(ids))
                conn.execute(
                    feedback.delete().where(
                        sa.or_(
                            feedback.c.conversation_id.in_(ids),
                            feedback.c.message_id.in_(message_ids),
                        )
                    )
                )
                conn.execute(messages.delete().where(messages.c.conversation_id.in_(ids)))
                conn.execute(conversations.delete().where(conversations.c.id.in_(ids)))
            deleted += len(ids)

    def iter_conversation_ids(self) -> Iterator[str]:
        with self.engine.connect() as conn:
            for row in conn.execute(
                sa.select(conversations.c.id).order_by(conversations.c.created_at)
            ):
                yield row.id
