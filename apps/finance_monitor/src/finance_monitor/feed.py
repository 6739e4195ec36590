"""The dashboard's headline feed: the latest scored messages and counts per language.

A scorer running in the API process (``RUN_WORKERS=true``, the default and the demo)
hands every batch it has committed to a ``HeadlineFeed``; ``GET /api/headlines`` reads
it. Scorers running as their own processes do not feed it (the endpoint then says
``available: false``); their counts are in ``finance_messages_scored_by_language_total``.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import Any

from finance_monitor.messages import RawMessage
from finance_monitor.scoring import Scored

FEED_SIZE = 50
TEXT_CHARS = 280


class HeadlineFeed:
    """Thread-safe ring of the latest scored messages plus per-language counts."""

    def __init__(self, size: int = FEED_SIZE) -> None:
        self._items: deque[dict[str, Any]] = deque(maxlen=size)
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, scored: Iterable[tuple[RawMessage, Scored, list[str]]]) -> None:
        """Add scored messages: (message, verdict, tickers) each."""
        with self._lock:
            for message, verdict, tickers in scored:
                self._counts[verdict.lang] += 1
                self._items.append(
                    {
                        "id": message.id,
                        "text": (message.title or message.text)[:TEXT_CHARS],
                        "lang": verdict.lang,
                        "topic": verdict.topic,
                        "sentiment": verdict.sentiment,
                        "tickers": list(tickers),
                        "event_time": message.event_time,
                        "source": message.source,
                    }
                )

    def snapshot(self, limit: int = FEED_SIZE) -> tuple[dict[str, int], list[dict[str, Any]]]:
        """Counts per language and the latest ``limit`` messages, newest first."""
        with self._lock:
            items = list(self._items)[-limit:] if limit > 0 else []
            return dict(self._counts), items[::-1]


def ticker_names(companies: Mapping[str, str]) -> dict[str, str]:
    """Ticker -> the company's display name: the longest name that maps to it
    (``600519.SH`` -> ``贵州茅台``, not the short form ``茅台``)."""
    from finance_monitor.tickers import normalize_ticker

    names: dict[str, str] = {}
    for name, ticker in companies.items():
        symbol = normalize_ticker(ticker)
        if symbol is not None and len(name) > len(names.get(symbol, "")):
            names[symbol] = name
    return names
