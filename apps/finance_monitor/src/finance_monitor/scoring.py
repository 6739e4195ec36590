"""Scoring orchestration: one encoder pass for a batch, both heads, tickers, fan-out by series."""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np

from finance_monitor.messages import RawMessage, ScoredRecord, ticker_series, topic_series
from finance_monitor.tickers import TickerExtractor
from finance_monitor.windows import SENTIMENTS

TOPIC_HEAD = "topic"
SENTIMENT_HEAD = "sentiment"
RECORD_TEXT_CHARS = 400


class MultiHeadPredictor(Protocol):
    """The part of ``keel.inference.Predictor`` the scorer uses."""

    def classify_heads(self, texts: list[str]) -> dict[str, np.ndarray]: ...


@dataclass
class ScoringModel:
    """A predictor plus the label names of its topic and sentiment heads."""

    predictor: MultiHeadPredictor
    topic_labels: list[str]
    sentiment_labels: list[str]
    #: Heads for Chinese text (``finance_monitor.chinese``); None: English heads score all.
    chinese: ScoringModel | None = None
    #: The static tier's cascade as prepared (``keel.json`` ``config.static_tier``):
    #: enabled, thresholds, expected static share; None when the model has no tier.
    static_tier: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.sentiment_labels) - set(SENTIMENTS))
        if unknown:
            raise ValueError(f"sentiment head labels {unknown} are not in {SENTIMENTS}")


@dataclass(frozen=True)
class Scored:
    """The model's verdict on one message (before fan-out)."""

    topic: str
    topic_confidence: float
    sentiment: str
    sentiment_scores: dict[str, float]
    #: ``zh`` (Chinese or mixed text by script) or ``en`` (everything else).
    lang: str = "en"


# Han ideographs (CJK unified, extension A, compatibility): any of them makes a text a
# candidate for the Chinese heads.
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def text_language(text: str) -> str:
    """``zh`` when ``keel.text.detect_language`` says Chinese or mixed, else ``en``."""
    if _HAN.search(text) is None:
        return "en"
    from keel.text import Language, detect_language

    return "zh" if detect_language(text) in (Language.ZH, Language.MIXED) else "en"


def text_languages(texts: Sequence[str]) -> list[str] | None:
    """The language of each text, or None when no text has a Han character.

    The common case costs next to nothing: ``str.isascii`` is a flag lookup per text, and
    one regex scan over the joined non-ASCII texts settles the rest of an English batch;
    only a batch with Han characters is looked at text by text.
    """
    if all(map(str.isascii, texts)):
        return None
    if _HAN.search("\n".join(t for t in texts if not t.isascii())) is None:
        return None
    return [text_language(t) for t in texts]


def score_texts(model: ScoringModel, texts: list[str]) -> list[Scored]:
    """Classify a batch: English texts with the English heads, Chinese ones (when
    ``model.chinese`` is loaded) with the Chinese heads; one encoder pass per language."""
    if not texts:
        return []
    langs = text_languages(texts)
    if langs is None:
        return _classify(model, texts)
    chinese = [i for i, lang in enumerate(langs) if lang == "zh"]
    if model.chinese is None or not chinese:
        return _classify(model, texts, langs)
    if len(chinese) == len(texts):
        return _classify(model.chinese, texts, langs)
    english = [i for i, lang in enumerate(langs) if lang != "zh"]
    out: list[Scored | None] = [None] * len(texts)
    for heads, rows in ((model, english), (model.chinese, chinese)):
        verdicts = _classify(heads, [texts[i] for i in rows], [langs[i] for i in rows])
        for i, verdict in zip(rows, verdicts, strict=True):
            out[i] = verdict
    return cast("list[Scored]", out)


def head_accuracy(
    model: ScoringModel, texts: list[str], labels: list[str], head: str, batch_size: int = 256
) -> float:
    """Accuracy of one head (``topic`` or ``sentiment``) on ``texts``, scored the way the
    scorer scores: ``score_texts`` in batches of ``batch_size``."""
    predicted: list[str] = []
    for start in range(0, len(texts), batch_size):
        for verdict in score_texts(model, texts[start : start + batch_size]):
            predicted.append(verdict.topic if head == TOPIC_HEAD else verdict.sentiment)
    return float(np.mean([p == y for p, y in zip(predicted, labels, strict=True)]))


def _classify(
    model: ScoringModel, texts: list[str], langs: list[str] | None = None
) -> list[Scored]:
    """One ``classify_heads`` call (one encoder pass) for ``texts``, all with ``model``."""
    probs = model.predictor.classify_heads(texts)
    topic_p = np.asarray(probs[TOPIC_HEAD])
    sent_p = np.asarray(probs[SENTIMENT_HEAD])
    topic_idx = topic_p.argmax(axis=1)
    sent_idx = sent_p.argmax(axis=1)
    out = []
    for i in range(len(texts)):
        out.append(
            Scored(
                topic=model.topic_labels[int(topic_idx[i])],
                topic_confidence=round(float(topic_p[i, topic_idx[i]]), 4),
                sentiment=model.sentiment_labels[int(sent_idx[i])],
                sentiment_scores={
                    label: round(float(sent_p[i, j]), 4)
                    for j, label in enumerate(model.sentiment_labels)
                },
                lang=langs[i] if langs is not None else "en",
            )
        )
    return out


def tier_status(model: ScoringModel) -> dict[str, Any]:
    """The static tier as ``/healthz`` shows it: prepared thresholds and expected share,
    whether the cascade serves, and the share of texts it has answered so far."""
    tier = model.static_tier
    if not tier:
        return {"state": "absent"}
    predictor = model.predictor
    serving = hasattr(predictor, "static_share") and hasattr(predictor, "thresholds")
    out: dict[str, Any] = {
        "state": "on" if serving else "off",
        "thresholds": tier.get("thresholds", {}),
        "expected_static_share": tier.get("expected_static_share"),
    }
    if serving:
        out["static_texts"] = int(getattr(predictor, "static_rows", 0))
        out["transformer_texts"] = int(getattr(predictor, "fallback_rows", 0))
        out["static_share"] = round(float(getattr(predictor, "static_share", 0.0)), 4)
    elif tier.get("reason"):
        out["reason"] = tier["reason"]
    return out


def cache_key(text: str) -> str:
    """The text as the repeat cache keys it: runs of whitespace collapsed, ends stripped.

    The encoders' tokenizers split on whitespace, so two texts with the same key get the
    same tokens and the same verdict.
    """
    return " ".join(text.split())


class ScoreCache:
    """LRU of verdicts keyed on ``cache_key(text)``: news and social streams repeat.

    A hit skips the encoder and both heads. The verdict kept is the one of the text's
    first scoring (int8 dynamic quantization makes a verdict depend slightly on its
    batch-mates, so a repeat scored again could differ in the last digits).

    Args:
        capacity: most texts kept (0: no caching).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"capacity={capacity}: must be >= 0")
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[str, Scored] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def score(self, model: ScoringModel, texts: list[str]) -> list[Scored]:
        """``score_texts`` with repeats answered from the cache (and scored once per batch)."""
        if self.capacity == 0:
            self.misses += len(texts)
            return score_texts(model, texts)
        keys = [cache_key(t) for t in texts]
        out: list[Scored | None] = [None] * len(texts)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for i, key in enumerate(keys):
                hit = self._items.get(key)
                if hit is None:
                    missing.setdefault(key, []).append(i)
                else:
                    self._items.move_to_end(key)
                    out[i] = hit
        if missing:
            firsts = [texts[rows[0]] for rows in missing.values()]
            verdicts = score_texts(model, firsts)
            with self._lock:
                for (key, rows), verdict in zip(missing.items(), verdicts, strict=True):
                    for i in rows:
                        out[i] = verdict
                    self._items[key] = verdict
                    self._items.move_to_end(key)
                while len(self._items) > self.capacity:
                    self._items.popitem(last=False)
        # A miss is a text the encoder ran on; in-batch repeats of it count as hits.
        self.misses += len(missing)
        self.hits += len(texts) - len(missing)
        return cast("list[Scored]", out)


def enrich(
    message: RawMessage,
    scored: Scored,
    tickers: list[str],
    *,
    ingest_ts_ms: int,
    raw_partition: int = -1,
    raw_offset: int = -1,
    worker: str = "",
) -> list[ScoredRecord]:
    """One record per series of the message: its topic, then each ticker."""
    now_ms = int(time.time() * 1000)
    series = [topic_series(scored.topic)] + [ticker_series(t) for t in tickers]
    return [
        ScoredRecord(
            id=message.id,
            series=s,
            event_time=message.event_time,
            published_at=message.published_at.isoformat(),
            source=message.source,
            title=message.title,
            text=message.text[:RECORD_TEXT_CHARS],
            topic=scored.topic,
            topic_confidence=scored.topic_confidence,
            sentiment=scored.sentiment,
            sentiment_scores=scored.sentiment_scores,
            tickers=tickers,
            ingest_ts_ms=ingest_ts_ms,
            scored_ts_ms=now_ms,
            raw_partition=raw_partition,
            raw_offset=raw_offset,
            extra={"worker": worker} if worker else {},
            lang=scored.lang,
        )
        for s in series
    ]


@dataclass(frozen=True)
class PendingMessage:
    """A validated message with where it came from (partition, offset, broker timestamp)."""

    message: RawMessage
    partition: int
    offset: int
    timestamp_ms: int


def score_messages(
    model: ScoringModel,
    extractor: TickerExtractor,
    batch: Sequence[PendingMessage],
    worker: str = "",
) -> list[ScoredRecord]:
    """Score a batch and fan it out into scored records (pure apart from the model call)."""
    verdicts = score_texts(model, [p.message.scoring_text for p in batch])
    records: list[ScoredRecord] = []
    for pending, verdict in zip(batch, verdicts, strict=True):
        msg = pending.message
        tickers = extractor.extract(msg.scoring_text, msg.tickers)
        records.extend(
            enrich(
                msg,
                verdict,
                tickers,
                ingest_ts_ms=pending.timestamp_ms,
                raw_partition=pending.partition,
                raw_offset=pending.offset,
                worker=worker,
            )
        )
    return records


def head_labels(meta_heads: Mapping[str, Mapping[str, object]]) -> tuple[list[str], list[str]]:
    """Topic and sentiment label lists from an artifact's ``heads`` metadata.

    Raises:
        KeyError: a head is missing.
    """
    topic = list(meta_heads[TOPIC_HEAD]["labels"])  # type: ignore[call-overload]
    sentiment = list(meta_heads[SENTIMENT_HEAD]["labels"])  # type: ignore[call-overload]
    return topic, sentiment
