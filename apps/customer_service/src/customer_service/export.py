"""Export of conversations and feedback as new training data (JSON Lines)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from customer_service.pii import mask_pii
from customer_service.storage import ConversationStore, Role


def export_training_records(store: ConversationStore) -> Iterator[dict[str, Any]]:
    """One record per customer message that got a bot answer, PII already masked.

    Each record has ``text`` (customer message), ``intent`` and ``confidence`` (the
    bot's reading), ``answer``, ``answer_kind``, ``citations`` (doc ids) and
    ``rating`` (+1 / -1 / None): thumbs-up rows are new labelled examples,
    thumbs-down rows are candidates for relabelling.

    Texts are masked again on the way out: rows written by an earlier release, whose
    masking missed some formats, leave no personal data in the export either.
    """
    for conversation_id in store.iter_conversation_ids():
        history = store.history(conversation_id)
        for user, bot in itertools.pairwise(history):
            if user.role is not Role.USER or bot.role is not Role.BOT:
                continue
            yield {
                "conversation_id": conversation_id,
                "text": mask_pii(user.text),
                "intent": bot.intent,
                "confidence": bot.confidence,
                "answer": mask_pii(bot.text),
                "answer_kind": bot.kind,
                "citations": [c.get("doc_id") for c in bot.citations],
                "rating": bot.rating,
                "created_at": user.created_at,
            }
