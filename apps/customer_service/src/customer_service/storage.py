"""Conversation storage (SQLAlchemy Core; SQLite in WAL mode by default).

Every text is passed through :func:`customer_service.pii.mask_pii` here, so nothing
unmasked reaches the database whatever the caller does.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from customer_service.errors import MessageNotFoundError, SessionNotFoundError
from customer_service.pii import mask_pii


class ConversationState(StrEnum):
    """Who is answering the conversation."""

    BOT = "bot"
    WAITING_FOR_AGENT = "waiting_for_agent"
    WITH_AGENT = "with_agent"


class Role(StrEnum):
    USER = "user"
    BOT = "bot"
    AGENT = "agent"


metadata = sa.MetaData()

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("client_id", sa.String(128), nullable=False),
    sa.Column("state", sa.String(32), nullable=False, index=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("low_confidence_streak", sa.Integer, nullable=False, default=0),
    sa.Column("pending_options", sa.Text, nullable=True),
    sa.Column("last_intent", sa.String(128), nullable=True),
    sa.Column("handoff_reason", sa.String(64), nullable=True),
    sa.Column("handoff_at", sa.Float, nullable=True),
    sa.Column("handoff_count", sa.Integer, nullable=False, default=0),
    sa.Column("agent_name", sa.String(128), nullable=True),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(32), sa.ForeignKey("conversations.id"), index=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("kind", sa.String(32), nullable=True),
    sa.Column("intent", sa.String(128), nullable=True),
    sa.Column("confidence", sa.Float, nullable=True),
    sa.Column("citations", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id"), primary_key=True),
    sa.Column("conversation_id", sa.String(32), sa.ForeignKey("conversations.id"), index=True),
    sa.Column("rating", sa.Integer, nullable=False),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
)


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


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_db_engine(url: str) -> Engine:
    """An SQLAlchemy engine; SQLite files get WAL mode and a busy timeout."""
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False}, pool_size=16, max_overflow=16
        )
        sa.event.listen(engine, "connect", _set_sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


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
    )


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


class ConversationStore:
    """Repository of conversations, messages and feedback.

    Args:
        url: SQLAlchemy database URL (``sqlite:///path`` by default in the app).
    """

    def __init__(self, url: str) -> None:
        self.engine = create_db_engine(url)
        metadata.create_all(self.engine)
        # SQLite takes one writer at a time and makes the others sleep and retry (the
        # busy handler backs off up to 100 ms per try), which made /chat's tail latency
        # under 32 concurrent clients. Writers of this process queue on a lock instead.
        self._write_lock: AbstractContextManager[Any] = (
            threading.Lock() if self.engine.dialect.name == "sqlite" else nullcontext()
        )

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction (serialised within the process for SQLite)."""
        with self._write_lock, self.engine.begin() as conn:
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
                conversations.insert().values(
                    id=conversation.id,
                    client_id=conversation.client_id,
                    state=conversation.state.value,
                    created_at=now,
                    updated_at=now,
                    low_confidence_streak=0,
                    handoff_count=0,
                )
            )
        return conversation

    def get_conversation(
        self, conversation_id: str, conn: Connection | None = None
    ) -> Conversation:
        """The conversation ``conversation_id``.

        Raises:
            SessionNotFoundError: no such conversation.
        """
        query = conversations.select().where(conversations.c.id == conversation_id)
        if conn is None:
            with self.engine.connect() as own:
                row = own.execute(query).first()
        else:
            row = conn.execute(query).first()
        if row is None:
            raise SessionNotFoundError(f"no conversation {conversation_id!r}")
        return _conversation_from_row(row)

    def update_conversation(
        self, conversation: Conversation, conn: Connection | None = None
    ) -> None:
        """Write a conversation's mutable fields back."""
        conversation.updated_at = time.time()
        statement = (
            conversations.update()
            .where(conversations.c.id == conversation.id)
            .values(
                state=conversation.state.value,
                updated_at=conversation.updated_at,
                low_confidence_streak=conversation.low_confidence_streak,
                pending_options=json.dumps(conversation.pending_options)
                if conversation.pending_options
                else None,
                last_intent=conversation.last_intent,
                handoff_reason=conversation.handoff_reason,
                handoff_at=conversation.handoff_at,
                handoff_count=conversation.handoff_count,
                agent_name=mask_pii(conversation.agent_name) if conversation.agent_name else None,
            )
        )
        if conn is None:
            with self._write() as own:
                own.execute(statement)
        else:
            conn.execute(statement)

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
    def _insert_message(
        self, conn: Connection, conversation_id: str, message: NewMessage
    ) -> StoredMessage:
        now = time.time()
        text = mask_pii(message.text)
        citations = [
            {k: (mask_pii(v) if isinstance(v, str) else v) for k, v in c.items()}
            for c in message.citations
        ]
        result = conn.execute(
            messages.insert().values(
                conversation_id=conversation_id,
                role=message.role.value,
                text=text,
                kind=message.kind,
                intent=message.intent,
                confidence=message.confidence,
                citations=json.dumps(citations, ensure_ascii=False) if citations else None,
                created_at=now,
            )
        )
        message_id = int(result.inserted_primary_key[0])
        return StoredMessage(
            id=message_id,
            conversation_id=conversation_id,
            role=message.role,
            text=text,
            created_at=now,
            kind=message.kind,
            intent=message.intent,
            confidence=message.confidence,
            citations=citations,
        )

    def record_turn(
        self, conversation: Conversation, new_messages: list[NewMessage]
    ) -> list[StoredMessage]:
        """Store messages and the conversation's new state in one transaction."""
        with self._write() as conn:
            stored = [self._insert_message(conn, conversation.id, m) for m in new_messages]
            self.update_conversation(conversation, conn)
        return stored

    def recent_user_texts(self, conversation_id: str, limit: int) -> list[str]:
        """The last ``limit`` user messages, oldest first."""
        if limit <= 0:
            return []
        query = (
            sa.select(messages.c.text)
            .where(
                messages.c.conversation_id == conversation_id, messages.c.role == Role.USER.value
            )
            .order_by(messages.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [row.text for row in conn.execute(query)][::-1]

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

    def iter_conversation_ids(self) -> Iterator[str]:
        with self.engine.connect() as conn:
            for row in conn.execute(
                sa.select(conversations.c.id).order_by(conversations.c.created_at)
            ):
                yield row.id
