"""keel.text: normalisation, script-based language detection, jieba BM25 tokens, and
Chinese / mixed retrieval through keel.retrieval's BM25 index."""

from __future__ import annotations

import re

import pytest

from keel.retrieval import BM25Index, tokenize
from keel.text import (
    Language,
    detect_language,
    english_tokens,
    normalize_text,
    search_tokens,
    split_script_runs,
)

# The rule BM25 used before Chinese support, kept here to prove English is unchanged.
_OLD_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_OLD_STOPWORDS = set(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "so",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "will",
        "with",
        "you",
        "your",
    ]
)


def test_normalize_full_width_to_half_width() -> None:
    assert normalize_text("ＡＢＣ１２３，ｘｙｚ！") == "ABC123,xyz!"
    assert normalize_text("信用卡\u3000被拒") == "信用卡 被拒"  # ideographic space
    assert normalize_text("a\x00b\u200b  c\n") == "ab c"
    assert normalize_text("句号。保留") == "句号。保留"  # no half-width twin: kept


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我的信用卡被拒了，怎么办？", Language.ZH),
        ("我的iPhone坏了", Language.ZH),
        ("How do I reset my PIN?", Language.EN),
        ("Bonjour, je voudrais ouvrir un compte", Language.EN),  # Latin script
        ("Visit 北京 today", Language.MIXED),
        ("12345 !!!", Language.UNDETERMINED),
        ("", Language.UNDETERMINED),
    ],
)
def test_detect_language_by_script(text: str, expected: Language) -> None:
    assert detect_language(text) == expected
    assert detect_language(text) == expected.value  # a StrEnum: compares with "zh"


def test_script_runs_rejoin_to_the_text() -> None:
    text = "沪深300指数上涨, Apple发布iPhone"
    runs = split_script_runs(text)
    assert "".join(run for _, run in runs) == text
    assert [run for is_han, run in runs if is_han] == ["沪深", "指数上涨", "发布"]


def test_chinese_tokens_use_jieba_search_mode_and_drop_punctuation() -> None:
    tokens = search_tokens("我的信用卡被拒了，怎么办？")
    assert "信用卡" in tokens and "信用" in tokens  # search mode adds the sub-word
    assert not {",", "，", "?", "？", "的", "了"} & set(tokens)


def test_mixed_text_tokens_cover_both_scripts() -> None:
    tokens = search_tokens("ＡＴＭ取款失败 card declined")
    assert tokens[:1] == ["atm"]  # full-width letters normalised, lower-cased
    assert {"取款", "失败", "card", "declined"} <= set(tokens)


@pytest.mark.parametrize(
    "text",
    [
        "How do I reset my PIN? It's the 2nd time!",
        "Refund of order #1234 - the card's been charged twice",
        "don't CHANGE   the\tlimit...",
    ],
)
def test_english_tokens_unchanged(text: str) -> None:
    old = [t for t in _OLD_TOKEN.findall(text.lower()) if t not in _OLD_STOPWORDS]
    assert tokenize(text) == search_tokens(text) == english_tokens(text) == old


_ARTICLES = {
    "card-declined": "信用卡被拒怎么办：请先确认卡片是否过期、额度是否用完，再联系客服。",
    "reset-password": "忘记登录密码时，可在登录页点击“忘记密码”，通过手机验证码重置密码。",
    "transfer-limit": "每日转账限额为五万元，如需提高限额，请携带身份证到网点办理。",
    "lost-card": "银行卡丢失后请立即挂失，可拨打客服热线或在手机银行中操作。",
    "en-refund": "How to get a refund: open the order and press the refund button.",
}


@pytest.fixture(scope="module")
def bilingual_index() -> BM25Index:
    index = BM25Index()
    index.add(list(_ARTICLES), list(_ARTICLES.values()))
    return index


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("我的信用卡被拒了", "card-declined"),
        ("密码忘了怎么重置？", "reset-password"),
        ("转账限额能提高吗", "transfer-limit"),
        ("银行卡丢了", "lost-card"),
        ("ＡＴＭ卡丢失 lost card", "lost-card"),  # mixed zh / en query
        ("refund my order", "en-refund"),
    ],
)
def test_bm25_finds_the_right_article(
    bilingual_index: BM25Index, query: str, expected: str
) -> None:
    hits = bilingual_index.search(query, k=3)
    assert hits and hits[0].id == expected


def test_bm25_chinese_index_round_trips(bilingual_index: BM25Index, tmp_path) -> None:  # type: ignore[no-untyped-def]
    bilingual_index.save(tmp_path)
    loaded = BM25Index.load(tmp_path)
    assert loaded.search("信用卡", k=1)[0].id == "card-declined"
