"""Language routing in the scorer: English texts keep the English heads, Chinese texts go
to the Chinese heads, every verdict and scored record carries its language."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from finance_monitor import chinese
from finance_monitor.chinese import load_demo_headlines_zh, split_rows
from finance_monitor.errors import InvalidMessageError, ModelPreparationError
from finance_monitor.feed import HeadlineFeed, ticker_names
from finance_monitor.messages import RawMessage, ScoredRecord
from finance_monitor.model_prep import load_demo_headlines
from finance_monitor.replay import demo_stream
from finance_monitor.scoring import (
    PendingMessage,
    ScoringModel,
    score_messages,
    score_texts,
    text_language,
    text_languages,
)
from finance_monitor.tickers import TickerExtractor, load_companies

TOPICS = ["Earnings", "Stock Movement"]
SENTIMENTS = ["negative", "neutral", "positive"]


class FixedPredictor:
    """Always the same verdict (topic ``topic``, sentiment ``sentiment``); records calls."""

    def __init__(self, topic: int, sentiment: int) -> None:
        self.topic, self.sentiment = topic, sentiment
        self.calls: list[list[str]] = []

    def classify_heads(self, texts: list[str]) -> dict[str, np.ndarray]:
        self.calls.append(list(texts))
        topic = np.full((len(texts), len(TOPICS)), 0.1, dtype=np.float32)
        topic[:, self.topic] = 0.9
        sentiment = np.full((len(texts), 3), 0.05, dtype=np.float32)
        sentiment[:, self.sentiment] = 0.9
        return {"topic": topic, "sentiment": sentiment}


def models() -> tuple[ScoringModel, FixedPredictor, FixedPredictor]:
    en, zh = FixedPredictor(0, 2), FixedPredictor(1, 0)
    model = ScoringModel(en, TOPICS, SENTIMENTS)
    model.chinese = ScoringModel(zh, TOPICS, SENTIMENTS)
    return model, en, zh


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Northwind Energy beats estimates as profit climbs 12%", "en"),
        ("青澜科技三季度净利润同比增长12%，超出市场预期", "zh"),
        ("宁德时代 Q3 净利润增长", "zh"),  # mixed text goes to the multilingual heads
        ("Kweichow Moutai 茅台 shares fell after the results on Monday", "en"),
        ("12345 ...", "en"),
        ("ＡＢＣ银行股价涨停", "zh"),  # full-width Latin letters
    ],
)
def test_text_language_by_script(text: str, lang: str) -> None:
    assert text_language(text) == lang


def test_an_english_batch_is_decided_by_one_scan() -> None:
    assert text_languages(["Acme beats estimates", "Fed holds rates"]) is None
    assert text_languages(["Café chain’s shares fall 3% — “a tough quarter”", "€ rises"]) is None
    assert text_languages(["Acme beats estimates", "澜汀银行股价跌停"]) == ["en", "zh"]


def test_english_batch_uses_only_the_english_heads() -> None:
    model, en, zh = models()
    verdicts = score_texts(model, ["Acme beats estimates", "Fed holds rates"])
    assert [v.lang for v in verdicts] == ["en", "en"]
    assert {v.topic for v in verdicts} == {"Earnings"}
    assert len(en.calls) == 1 and zh.calls == []


def test_mixed_batch_is_split_by_language_and_keeps_its_order() -> None:
    model, en, zh = models()
    texts = ["Acme beats estimates", "澜汀银行股价跌停", "Fed holds rates", "星衡半导体分红"]
    verdicts = score_texts(model, texts)
    assert [v.lang for v in verdicts] == ["en", "zh", "en", "zh"]
    assert [v.topic for v in verdicts] == ["Earnings", "Stock Movement"] * 2
    assert [v.sentiment for v in verdicts] == ["positive", "negative"] * 2
    # one encoder pass per language, each with only its own texts
    assert en.calls == [["Acme beats estimates", "Fed holds rates"]]
    assert zh.calls == [["澜汀银行股价跌停", "星衡半导体分红"]]


def test_without_chinese_heads_the_english_heads_score_everything() -> None:
    en = FixedPredictor(0, 2)
    model = ScoringModel(en, TOPICS, SENTIMENTS)
    verdicts = score_texts(model, ["Acme beats estimates", "澜汀银行股价跌停"])
    assert [v.lang for v in verdicts] == ["en", "zh"]
    assert en.calls == [["Acme beats estimates", "澜汀银行股价跌停"]]


def _pending(text: str, i: int = 0) -> PendingMessage:
    message = RawMessage(
        id=f"m-{i}",
        published_at=dt.datetime(2026, 1, 5, 9, 30, tzinfo=dt.UTC),
        source="wire",
        text=text,
    )
    return PendingMessage(message, 0, i, 0)


def test_a_chinese_headline_gets_topic_sentiment_tickers_and_language() -> None:
    model, _en, _zh = models()
    extractor = TickerExtractor(load_companies())
    records = score_messages(
        model,
        extractor,
        [_pending("澜汀银行(689102.SH)股价跌停，星衡半导体同步走弱", 0), _pending("Acme up", 1)],
    )
    zh = [r for r in records if r.id == "m-0"]
    assert [r.series for r in zh] == [
        "topic:Stock Movement",
        "ticker:689102.SH",
        "ticker:004101.SZ",
    ]
    assert {(r.lang, r.sentiment, r.topic) for r in zh} == {("zh", "negative", "Stock Movement")}
    assert zh[0].tickers == ["689102.SH", "004101.SZ"]
    (en,) = [r for r in records if r.id == "m-1"]
    assert en.lang == "en"


def test_scored_record_language_round_trips_and_is_validated() -> None:
    model, _en, _zh = models()
    (record, *_) = score_messages(model, TickerExtractor({}), [_pending("云岫医药新药获批上市")])
    value = record.to_json_bytes()
    assert "云岫医药".encode() in value  # UTF-8, not \\u escapes
    assert ScoredRecord.from_json_bytes(value).lang == "zh"
    payload = json.loads(value)
    del payload["lang"]  # a record written before the field existed
    assert ScoredRecord.from_json_bytes(json.dumps(payload).encode()).lang == "en"
    payload["lang"] = "fr"
    with pytest.raises(InvalidMessageError, match="lang"):
        ScoredRecord.from_json_bytes(json.dumps(payload).encode())


def test_chinese_demo_headlines_use_the_english_label_sets() -> None:
    rows = load_demo_headlines_zh()
    english = load_demo_headlines()
    assert {r["topic"] for r in rows} == {r["topic"] for r in english}
    assert {r["sentiment"] for r in rows} == set(SENTIMENTS)
    split = split_rows(rows)
    assert len(split.train) >= 250 and len(split.test) >= 100
    # the held-out rows come from templates never used for training
    assert not {r["text"] for r in split.train} & {r["text"] for r in split.test}
    per_cell = Counter((r["topic"], r["sentiment"]) for r in split.train)
    assert len(per_cell) == 30 and min(per_cell.values()) >= 4
    extractor = TickerExtractor(load_companies())
    for row in rows:
        assert extractor.extract(row["text"])[: len(row["tickers"])] == row["tickers"]


def test_demo_stream_mixes_chinese_headlines_only_when_asked() -> None:
    plain = list(demo_stream(start=0.0, spacing_s=1.0, count=200))
    assert {i.message["lang"] for i in plain} == {"en"}
    mixed = list(demo_stream(start=0.0, spacing_s=1.0, count=400, chinese_share=0.5))
    zh = [i for i in mixed if i.message["lang"] == "zh"]
    assert 120 < len(zh) < 280
    labels = {r["text"]: (r["topic"], r["sentiment"]) for r in load_demo_headlines_zh()}
    for item in zh:
        assert labels[item.message["text"]] == (item.topic, item.sentiment)
        assert text_language(item.message["text"]) == "zh"


def test_chinese_heads_must_predict_english_topics(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    english = ScoringModel(FixedPredictor(0, 2), TOPICS, SENTIMENTS)
    strange = ScoringModel(FixedPredictor(0, 2), ["Earnings", "Weather"], SENTIMENTS)
    monkeypatch.setattr(chinese, "load_scoring_model", lambda *_a, **_k: strange)
    with pytest.raises(ModelPreparationError, match="Weather"):
        chinese.load_chinese_model(tmp_path, english)
    fine = ScoringModel(FixedPredictor(0, 2), ["Earnings"], SENTIMENTS)
    monkeypatch.setattr(chinese, "load_scoring_model", lambda *_a, **_k: fine)
    assert chinese.load_chinese_model(tmp_path, english) is fine


def test_feed_keeps_the_newest_messages_and_counts_each_language() -> None:
    model, _en, _zh = models()
    feed = HeadlineFeed(size=3)
    texts = ["Acme up", "澜汀银行股价跌停", "Fed holds", "云岫医药新药获批", "Oil rises"]
    batch = [_pending(t, i) for i, t in enumerate(texts)]
    verdicts = score_texts(model, texts)
    feed.add((p.message, v, []) for p, v in zip(batch, verdicts, strict=True))
    counts, items = feed.snapshot()
    assert counts == {"en": 3, "zh": 2}
    assert [i["text"] for i in items] == ["Oil rises", "云岫医药新药获批", "Fed holds"]
    assert [i["lang"] for i in items] == ["en", "zh", "en"]
    assert feed.snapshot(1)[1][0]["id"] == "m-4"
    names = ticker_names(load_companies())
    assert names["600519.SH"] == "贵州茅台"  # the full name, not the alias 茅台
    assert names["689102.SH"] == "澜汀银行"


def test_headlines_endpoint_without_a_scorer_says_so(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from finance_monitor.config import Settings
    from finance_monitor.main import create_app

    settings = Settings(state_dir=tmp_path, api_key="test-admin-key-fm", run_workers=False)
    client = TestClient(create_app(settings))  # no lifespan: no models, no stages
    body = client.get("/api/headlines").json()
    assert body == {
        "available": False,
        "counts": {"en": 0, "zh": 0},
        "chinese_heads": False,
        "headlines": [],
    }
    assert client.get("/api/headlines?limit=0").status_code == 422


def test_replay_cli_takes_a_chinese_share_and_refuses_a_bad_one() -> None:
    from finance_monitor.cli import build_parser
    from finance_monitor.errors import FinanceMonitorError

    args = build_parser().parse_args(["replay", "--demo", "--chinese-share", "0.5"])
    assert args.chinese_share == 0.5
    assert build_parser().parse_args(["replay", "--demo"]).chinese_share is None
    with pytest.raises(FinanceMonitorError, match="chinese_share"):
        next(demo_stream(start=0.0, spacing_s=1.0, count=1, chinese_share=1.5))
