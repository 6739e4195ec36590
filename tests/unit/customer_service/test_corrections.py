"""Intent corrections: the review queue, versioned corrections, masking, export, hold-out."""

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from customer_service.corrections import (
    OUT_OF_SCOPE,
    CorrectionNotFoundError,
    CorrectionStore,
    export_corrections,
    is_held_out,
    split_corrections,
    training_data,
)
from customer_service.errors import MessageNotFoundError
from customer_service.storage import ConversationStore, NewMessage, Role, messages
from customer_service.tables import VERSION_TABLE
from keel_service.db import schema_revision


@pytest.fixture()
def store(database_url: str) -> Iterator[ConversationStore]:
    """A conversation store on SQLite, then on a real PostgreSQL (``database_url``)."""
    conversation_store = ConversationStore(database_url)
    yield conversation_store
    conversation_store.close()


def _turn(store: ConversationStore, text: str, kind: str, intent: str) -> tuple[str, int, int]:
    """A customer message and the bot's answer in a new conversation: the ids."""
    conversation = store.create_conversation("web")
    user, bot = store.record_turn(
        conversation,
        [
            NewMessage(Role.USER, text, intent=intent, confidence=0.41),
            NewMessage(Role.BOT, "an answer", kind, intent, 0.41),
        ],
    )
    return conversation.id, user.id, bot.id


def test_review_queue_versioned_corrections_and_export(store: ConversationStore) -> None:
    assert schema_revision(store.engine, VERSION_TABLE) == "0003"
    corrections = CorrectionStore(store.engine, store.write_gate)
    assert corrections.version() == 0
    rated_conversation, rated_user, rated_bot = _turn(
        store, "my card never came", "template", "activate_card"
    )
    _, handoff_user, _ = _turn(store, "mail me at jo@example.com", "handoff", "talk_to_human")
    _, fine_user, _ = _turn(store, "hello there", "template", "greeting")
    store.set_feedback(rated_conversation, rated_bot, -1)

    queue = corrections.review_queue()
    assert [(i.message_id, i.reason) for i in queue] == [
        (handoff_user, "handoff"),
        (rated_user, "thumbs_down"),
    ]
    assert queue[0].text == "mail me at [EMAIL]" and queue[1].intent == "activate_card"

    first, changed = corrections.correct(rated_user, "card_arrival", agent="Sam")
    assert changed and first.version == 1 and corrections.version() == 1
    assert (first.label, first.predicted_intent, first.reason) == (
        "card_arrival",
        "activate_card",
        "thumbs_down",
    )
    # The same label again is no change and takes no version.
    again, changed = corrections.correct(rated_user, "card_arrival")
    assert not changed and again.version == 1 and corrections.version() == 1
    relabelled, changed = corrections.correct(rated_user, "lost_or_stolen_card")
    assert changed and relabelled.version == 2
    oos, _ = corrections.correct(handoff_user, None)
    assert oos.out_of_scope and oos.training_label == OUT_OF_SCOPE and oos.version == 3
    corrections.correct(fine_user, "greeting")  # not in the queue, still correctable

    # Corrected messages leave the queue unless asked for.
    assert corrections.review_queue() == []
    assert {i.message_id for i in corrections.review_queue(include_corrected=True)} == {
        rated_user,
        handoff_user,
    }

    assert corrections.delete(fine_user) == 5
    with pytest.raises(CorrectionNotFoundError):
        corrections.delete(fine_user)
    with pytest.raises(MessageNotFoundError):
        corrections.correct(rated_bot, "greeting")  # a bot message is not a customer's
    with pytest.raises(MessageNotFoundError):
        corrections.correct(10**9, "greeting")
    assert corrections.version() == 5

    version, rows = corrections.corrections()
    assert version == 5
    assert [(c.message_id, c.training_label) for c in rows] == [
        (rated_user, "lost_or_stolen_card"),
        (handoff_user, OUT_OF_SCOPE),
    ]
    lines = list(export_corrections(rows, "jsonl"))
    records = [json.loads(line) for line in lines]
    assert [r["label"] for r in records] == ["lost_or_stolen_card", OUT_OF_SCOPE]
    assert records[1]["text"] == "mail me at [EMAIL]" and records[1]["out_of_scope"] is True
    table = list(csv.DictReader(io.StringIO("".join(export_corrections(rows, "csv")))))
    assert [(r["text"], r["label"]) for r in table] == [
        ("my card never came", "lost_or_stolen_card"),
        ("mail me at [EMAIL]", OUT_OF_SCOPE),
    ]
    with pytest.raises(ValueError, match="format"):
        list(export_corrections(rows, "xml"))  # type: ignore[arg-type]


def test_a_hand_off_after_a_rated_answer_is_the_reason(store: ConversationStore) -> None:
    conversation_id, user_id, _ = _turn(store, "what fees do you charge", "retrieval", "fees")
    conversation = store.get_conversation(conversation_id)
    store.record_turn(conversation, [NewMessage(Role.BOT, "passing you on", "handoff")])
    corrections = CorrectionStore(store.engine, store.write_gate)
    [item] = corrections.review_queue()
    assert (item.message_id, item.reason) == (user_id, "handoff")
    assert corrections.correct(user_id, "fees_and_charges")[0].reason == "handoff"


def test_a_row_of_an_older_release_is_masked_on_the_way_in_and_out(
    store: ConversationStore,
) -> None:
    conversation = store.create_conversation("web")
    with store.engine.begin() as conn:  # written unmasked, as an older release might have
        message_id = conn.execute(
            messages.insert().values(
                conversation_id=conversation.id,
                role="user",
                text="card 4111 1111 1111 1111 was declined",
                created_at=1.0,
            )
        ).inserted_primary_key
    assert message_id is not None
    corrections = CorrectionStore(store.engine, store.write_gate)
    correction, _ = corrections.correct(int(message_id[0]), "card_declined", agent="jo@example.com")
    assert correction.text == "card [CARD] was declined" and correction.agent == "[EMAIL]"
    with store.engine.connect() as conn:
        stored = repr(conn.execute(sa.text("select * from intent_corrections")).all())
    assert "4111" not in stored and "jo@example.com" not in stored


def test_the_held_out_share_is_stable_and_about_the_share() -> None:
    texts = [f"utterance number {i}" for i in range(2000)]
    held = [t for t in texts if is_held_out(t, 0.2)]
    assert 0.15 < len(held) / len(texts) < 0.25
    assert held == [t for t in texts if is_held_out(t.upper() + "  ", 0.2)]  # case, spaces
    assert not any(is_held_out(t, 0.0) for t in texts)
    with pytest.raises(ValueError):
        is_held_out("x", 1.0)


def test_split_keeps_every_correction_on_one_side(store: ConversationStore) -> None:
    corrections = CorrectionStore(store.engine, store.write_gate)
    ids = [_turn(store, f"question {i}", "fallback", "greeting")[1] for i in range(12)]
    for message_id in ids:
        corrections.correct(message_id, "greeting")
    _, rows = corrections.corrections()
    train, held_out = split_corrections(rows, 0.5)
    assert sorted(c.message_id for c in train + held_out) == sorted(ids)
    assert all(is_held_out(c.text, 0.5) for c in held_out)
    assert not any(is_held_out(c.text, 0.5) for c in train)


def test_training_data_splits_in_scope_keeps_out_of_scope_and_drops_unknown_intents(
    tmp_path: Path,
) -> None:
    store = ConversationStore(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    corrections = CorrectionStore(store.engine, store.write_gate)
    texts = [f"where is card number {i}" for i in range(20)]
    for text in texts:
        corrections.correct(_turn(store, text, "fallback", "greeting")[1], "card_arrival")
    corrections.correct(_turn(store, "tell me a joke", "fallback", "greeting")[1], None)
    corrections.correct(_turn(store, "bitcoin please", "fallback", "greeting")[1], "crypto")
    data = training_data(corrections, labels=["card_arrival", "greeting"], holdout_share=0.3)
    assert data.version == corrections.version() == 22
    assert data.out_of_scope == ("tell me a joke",)
    assert sorted(t for t, _ in data.train + data.validation) == sorted(texts)
    assert {label for _, label in data.train + data.validation} == {"card_arrival"}
    assert data.validation and data.train  # 20 texts: both sides get some
    assert all(is_held_out(t, 0.3) for t, _ in data.validation)
    store.close()
