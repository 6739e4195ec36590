"""Agents' intent corrections: the labelled training data of the feedback loop.

An agent reviews a customer message (the review queue holds the customer messages
behind thumbs-down answers and hand-offs) and gives it the right intent, or marks it
out of scope. Corrections are stored PII-masked, one per message (a later correction
replaces the earlier one), and the set is versioned: every change (a new correction, a
changed label, a deletion) takes the next **dataset version** under the
``corrections_state`` row's lock, so versions commit in order and a model records the
version it was trained on. Deletions stay as tombstones (text blanked).

The set exports as CSV or JSON Lines (``text,label``; out-of-scope rows have the label
``out_of_scope``), and :func:`split_corrections` holds a stable share of it out for
validation: a text's side depends only on its hash, so it never moves between training
and validation as the set grows.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from customer_service.errors import CustomerServiceError, MessageNotFoundError
from customer_service.pii import mask_pii
from customer_service.tables import corrections_state, feedback, intent_corrections, messages
from customer_service.versioned import NothingChanged, current_version, versioned_write
from keel_service.db import WriteGate

#: The label of an out-of-scope correction in exports and training files.
OUT_OF_SCOPE = "out_of_scope"
#: Share of the corrections held out for validation (by text hash).
DEFAULT_HOLDOUT_SHARE = 0.2
#: Why a message is in the review queue (and what a correction records as its reason).
REVIEW_REASONS = ("thumbs_down", "handoff")
EXPORT_COLUMNS = (
    "text",
    "label",
    "out_of_scope",
    "predicted_intent",
    "predicted_confidence",
    "reason",
    "message_id",
    "version",
    "updated_at",
)

ExportFormat = Literal["csv", "jsonl"]


class CorrectionNotFoundError(CustomerServiceError, LookupError):
    """No correction of this message."""


@dataclass
class Correction:
    """One corrected customer message (``label`` is ``None`` when out of scope)."""

    message_id: int
    conversation_id: str
    text: str
    label: str | None
    out_of_scope: bool
    predicted_intent: str | None
    predicted_confidence: float | None
    reason: str | None
    agent: str | None
    created_at: float
    updated_at: float
    version: int

    @property
    def training_label(self) -> str:
        """The intent, or :data:`OUT_OF_SCOPE`."""
        return OUT_OF_SCOPE if self.out_of_scope or self.label is None else self.label

    def as_record(self) -> dict[str, Any]:
        """The export row (text masked again, so rows of older releases are covered)."""
        return {
            "text": mask_pii(self.text),
            "label": self.training_label,
            "out_of_scope": self.out_of_scope,
            "predicted_intent": self.predicted_intent,
            "predicted_confidence": self.predicted_confidence,
            "reason": self.reason,
            "message_id": self.message_id,
            "version": self.version,
            "updated_at": self.updated_at,
        }


@dataclass
class ReviewItem:
    """A customer message waiting for review: the bot's reading of it and why it is here."""

    message_id: int
    conversation_id: str
    text: str
    intent: str | None
    confidence: float | None
    reason: str  # thumbs_down | handoff
    answer_kind: str | None
    created_at: float
    correction: Correction | None = None


def _correction(row: Any) -> Correction:
    return Correction(
        message_id=int(row.message_id),
        conversation_id=row.conversation_id,
        text=row.text,
        label=row.label,
        out_of_scope=bool(row.out_of_scope),
        predicted_intent=row.predicted_intent,
        predicted_confidence=row.predicted_confidence,
        reason=row.reason,
        agent=row.agent,
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=int(row.version),
    )


class CorrectionStore:
    """Intent corrections on the app's database (SQLite or PostgreSQL).

    Args:
        engine: the app's engine (schema migrated).
        write_gate: serialises this process's SQLite writers (shared with the
            conversation store).
    """

    def __init__(self, engine: Engine, write_gate: WriteGate) -> None:
        self.engine = engine
        self._gate = write_gate

    def _versioned_write(self) -> AbstractContextManager[tuple[Connection, int]]:
        """A transaction holding the next dataset version; raise :class:`NothingChanged`
        inside to give it back."""
        return versioned_write(self.engine, self._gate, corrections_state)

    def version(self) -> int:
        """The dataset version (0 before the first correction)."""
        return current_version(self.engine, corrections_state)

    def correct(
        self, message_id: int, label: str | None, agent: str | None = None
    ) -> tuple[Correction, bool]:
        """Label customer message ``message_id`` with intent ``label`` (``None``: out of
        scope), replacing an earlier correction of it.

        Returns:
            The correction and whether it changed the dataset (the same label again
            takes no version).

        Raises:
            MessageNotFoundError: no customer message with this id.
            ValueError: ``label`` is empty.
        """
        if label is not None and not label.strip():
            raise ValueError("label is empty")
        changed = False
        with self._versioned_write() as (conn, version):
            message = conn.execute(
                sa.select(
                    messages.c.id,
                    messages.c.conversation_id,
                    messages.c.text,
                    messages.c.intent,
                    messages.c.confidence,
                ).where(messages.c.id == message_id, messages.c.role == "user")
            ).first()
            if message is None:
                raise MessageNotFoundError(f"no customer message {message_id}")
            existing = conn.execute(
                intent_corrections.select().where(intent_corrections.c.message_id == message_id)
            ).first()
            if (
                existing is not None
                and not existing.deleted
                and existing.label == label
                and bool(existing.out_of_scope) == (label is None)
            ):
                raise NothingChanged
            now = time.time()
            values = {
                "conversation_id": message.conversation_id,
                "text": mask_pii(message.text),
                "label": label,
                "out_of_scope": label is None,
                "predicted_intent": message.intent,
                "predicted_confidence": message.confidence,
                "reason": self._reason(conn, message.conversation_id, message_id),
                "agent": mask_pii(agent)[:128] if agent else None,
                "updated_at": now,
                "deleted": False,
                "version": version,
            }
            if existing is None:
                conn.execute(
                    intent_corrections.insert().values(
                        message_id=message_id, created_at=now, **values
                    )
                )
            else:
                conn.execute(
                    intent_corrections.update()
                    .where(intent_corrections.c.message_id == message_id)
                    .values(values)
                )
            changed = True
        correction = self.get(message_id)
        if correction is None:  # pragma: no cover - written just above
            raise CorrectionNotFoundError(f"no correction of message {message_id}")
        return correction, changed

    @staticmethod
    def _reason(conn: Connection, conversation_id: str, message_id: int) -> str | None:
        """Why the message was up for review: the bot's answer to it was rated down, or
        it handed the conversation over (``None``: corrected from elsewhere)."""
        following = conn.execute(
            sa.select(messages.c.role, messages.c.kind, feedback.c.rating)
            .select_from(messages.outerjoin(feedback, feedback.c.message_id == messages.c.id))
            .where(messages.c.conversation_id == conversation_id, messages.c.id > message_id)
            .order_by(messages.c.id)
            .limit(20)
        ).all()
        answers = []  # the bot's messages up to the customer's next turn
        for row in following:
            if row.role == "user":
                break
            answers.append(row)
        if any(a.rating is not None and a.rating < 0 for a in answers):
            return "thumbs_down"
        if any(a.kind == "handoff" for a in answers):
            return "handoff"
        return None

    def delete(self, message_id: int) -> int:
        """Remove the correction of ``message_id`` (a tombstone, text blanked).

        Returns:
            The new dataset version.

        Raises:
            CorrectionNotFoundError: the message has no correction.
        """
        with self._versioned_write() as (conn, version):
            done = conn.execute(
                intent_corrections.update()
                .where(
                    intent_corrections.c.message_id == message_id,
                    intent_corrections.c.deleted.is_(False),
                )
                .values(deleted=True, text="", version=version, updated_at=time.time())
            ).rowcount
            if done != 1:
                raise CorrectionNotFoundError(f"no correction of message {message_id}")
            return version
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, message_id: int) -> Correction | None:
        """The live correction of ``message_id``, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(
                intent_corrections.select().where(
                    intent_corrections.c.message_id == message_id,
                    intent_corrections.c.deleted.is_(False),
                )
            ).first()
        return _correction(row) if row is not None else None

    def corrections(self) -> tuple[int, list[Correction]]:
        """``(dataset version, live corrections oldest first)``, read in one transaction."""
        with self.engine.connect() as conn:
            version = conn.execute(
                sa.select(corrections_state.c.version).where(corrections_state.c.id == 1)
            ).scalar_one()
            rows = conn.execute(
                intent_corrections.select()
                .where(intent_corrections.c.deleted.is_(False))
                .order_by(intent_corrections.c.id)
            ).all()
        return int(version), [_correction(r) for r in rows]

    def review_queue(self, limit: int = 50, include_corrected: bool = False) -> list[ReviewItem]:
        """Customer messages to review, newest first: each one the bot answered with an
        answer the customer rated down, or with a hand-off to a human.

        Args:
            limit: at most this many items.
            include_corrected: also list messages that already have a correction.
        """
        items: list[ReviewItem] = []
        seen: set[int] = set()
        before: int | None = None
        page = max(limit * 2, 50)
        with self.engine.connect() as conn:
            while len(items) < limit:
                query = (
                    sa.select(
                        messages.c.id,
                        messages.c.conversation_id,
                        messages.c.kind,
                        feedback.c.rating,
                    )
                    .select_from(
                        messages.outerjoin(feedback, feedback.c.message_id == messages.c.id)
                    )
                    .where(
                        messages.c.role == "bot",
                        sa.or_(feedback.c.rating < 0, messages.c.kind == "handoff"),
                    )
                    .order_by(messages.c.id.desc())
                    .limit(page)
                )
                if before is not None:
                    query = query.where(messages.c.id < before)
                answers = conn.execute(query).all()
                if not answers:
                    break
                before = answers[-1].id
                for answer in answers:
                    user = conn.execute(
                        sa.select(
                            messages.c.id,
                            messages.c.text,
                            messages.c.intent,
                            messages.c.confidence,
                            messages.c.created_at,
                        )
                        .where(
                            messages.c.conversation_id == answer.conversation_id,
                            messages.c.role == "user",
                            messages.c.id < answer.id,
                        )
                        .order_by(messages.c.id.desc())
                        .limit(1)
                    ).first()
                    if user is None or user.id in seen:
                        continue
                    seen.add(user.id)
                    row = conn.execute(
                        intent_corrections.select().where(
                            intent_corrections.c.message_id == user.id,
                            intent_corrections.c.deleted.is_(False),
                        )
                    ).first()
                    if row is not None and not include_corrected:
                        continue
                    items.append(
                        ReviewItem(
                            message_id=int(user.id),
                            conversation_id=answer.conversation_id,
                            text=mask_pii(user.text),
                            intent=user.intent,
                            confidence=user.confidence,
                            reason="thumbs_down"
                            if answer.rating is not None and answer.rating < 0
                            else "handoff",
                            answer_kind=answer.kind,
                            created_at=user.created_at,
                            correction=_correction(row) if row is not None else None,
                        )
                    )
                    if len(items) >= limit:
                        break
        return items


def export_corrections(corrections: Iterable[Correction], fmt: ExportFormat) -> Iterator[str]:
    """The corrections as CSV (with a header row) or JSON Lines, one string per line."""
    if fmt == "jsonl":
        for correction in corrections:
            yield json.dumps(correction.as_record(), ensure_ascii=False) + "\n"
        return
    if fmt != "csv":
        raise ValueError(f"format must be csv or jsonl, not {fmt!r}")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for correction in corrections:
        writer.writerow(correction.as_record())
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()


def is_held_out(text: str, share: float = DEFAULT_HOLDOUT_SHARE) -> bool:
    """Whether ``text`` belongs to the validation share (stable: by its hash only)."""
    if not 0.0 <= share < 1.0:
        raise ValueError(f"holdout share {share!r} must be within [0, 1)")
    bucket = int(hashlib.sha256(text.strip().lower().encode("utf-8")).hexdigest()[:8], 16)
    return bucket % 10_000 < share * 10_000


def split_corrections(
    corrections: Iterable[Correction], share: float = DEFAULT_HOLDOUT_SHARE
) -> tuple[list[Correction], list[Correction]]:
    """``(training, held out)``: the corrections whose text hashes into ``share`` are
    held out for validation; the same text always lands on the same side."""
    train: list[Correction] = []
    held_out: list[Correction] = []
    for correction in corrections:
        (held_out if is_held_out(correction.text, share) else train).append(correction)
    return train, held_out


@dataclass(frozen=True)
class CorrectionTrainingData:
    """The corrections as training data for the next intent model.

    ``train`` and ``validation`` are ``(text, intent)`` pairs (the validation share is
    held out by text hash, so both models are scored on corrections the candidate never
    saw); ``out_of_scope`` are the texts agents marked out of scope (all of them, for the
    out-of-scope calibration). ``version`` is the dataset version they were read at.
    """

    version: int
    train: tuple[tuple[str, str], ...]
    validation: tuple[tuple[str, str], ...]
    out_of_scope: tuple[str, ...]


def training_data(
    store: CorrectionStore,
    labels: Iterable[str] | None = None,
    holdout_share: float = DEFAULT_HOLDOUT_SHARE,
) -> CorrectionTrainingData:
    """Read the live corrections and split them for training.

    Args:
        store: the corrections.
        labels: the model's intents; corrections to other intents are left out (an
            intent the model does not have cannot be learnt by a new head over the same
            labels). ``None`` keeps every intent.
        holdout_share: share of the in-scope corrections held out for validation.
    """
    version, rows = store.corrections()
    known = set(labels) if labels is not None else None
    in_scope = [
        c
        for c in rows
        if not c.out_of_scope and c.label and (known is None or c.label in known) and c.text
    ]
    train, held_out = split_corrections(in_scope, holdout_share)
    return CorrectionTrainingData(
        version=version,
        train=tuple((mask_pii(c.text), str(c.label)) for c in train),
        validation=tuple((mask_pii(c.text), str(c.label)) for c in held_out),
        out_of_scope=tuple(mask_pii(c.text) for c in rows if c.out_of_scope and c.text),
    )
