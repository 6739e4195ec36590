"""Analytics over stored conversations: intents over time, fallback, hand-off, feedback."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from customer_service.storage import ConversationStore


def conversation_analytics(
    store: ConversationStore, since_s: float = 7 * 86400, bucket_s: int = 3600
) -> dict[str, Any]:
    """Aggregates over the last ``since_s`` seconds.

    Returns:
        ``intents_over_time`` (bucket start ISO time -> intent -> count),
        ``intent_totals``, ``answers_by_kind``, ``fallback_rate`` (fallback answers /
        bot answers to customer messages), ``handoff_rate`` (conversations handed to
        an agent / conversations), and ``feedback`` (up, down, share positive).
    """
    since = time.time() - since_s
    over_time: dict[str, dict[str, int]] = defaultdict(dict)
    totals: dict[str, int] = defaultdict(int)
    for bucket, intent, count in store.intent_counts(since, bucket_s):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(bucket))
        over_time[stamp][intent] = count
        totals[intent] += count
    kinds = store.bot_kind_counts(since)
    answered = sum(n for kind, n in kinds.items() if kind not in {"handback", "None"})
    conversations, handed_off = store.conversation_counts(since)
    ratings = store.feedback_counts(since)
    up, down = ratings.get(1, 0), ratings.get(-1, 0)
    return {
        "window_s": since_s,
        "bucket_s": bucket_s,
        "intents_over_time": dict(over_time),
        "intent_totals": dict(sorted(totals.items(), key=lambda kv: -kv[1])),
        "answers_by_kind": kinds,
        "fallback_rate": kinds.get("fallback", 0) / answered if answered else 0.0,
        "conversations": conversations,
        "handed_off": handed_off,
        "handoff_rate": handed_off / conversations if conversations else 0.0,
        "feedback": {
            "up": up,
            "down": down,
            "positive_share": up / (up + down) if up + down else None,
        },
    }
