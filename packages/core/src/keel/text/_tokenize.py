"""Search tokens for BM25, by language: jieba for Chinese runs, word rules for the rest.

English text gives exactly the tokens it always did (lower-case words and numbers
without common stop words); Chinese runs are segmented with jieba's search mode,
which also emits the sub-words of long words (信用卡 -> 信用, 信用卡), so a query for
either finds the document. Punctuation never becomes a token.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from typing import Any

from keel.text._normalize import normalize_text
from keel.text._scripts import HAN_CHAR, split_script_runs

_ENGLISH_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
ENGLISH_STOPWORDS = frozenset(
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
# Function words and question words that occur in almost every Chinese query; BM25's
# IDF would weigh them down anyway, but in a short query they still add noise matches.
CHINESE_STOPWORDS = frozenset(
    [
        "的",
        "了",
        "吗",
        "呢",
        "吧",
        "啊",
        "呀",
        "是",
        "在",
        "和",
        "与",
        "及",
        "或",
        "我",
        "你",
        "您",
        "他",
        "她",
        "它",
        "我们",
        "你们",
        "他们",
        "这",
        "那",
        "这个",
        "那个",
        "就",
        "都",
        "也",
        "还",
        "有",
        "被",
        "把",
        "给",
        "对",
        "从",
        "请",
        "请问",
        "怎么",
        "怎样",
        "什么",
        "如何",
        "一个",
        "可以",
        "能",
        "会",
        "要",
        "想",
    ]
)

_jieba_lock = threading.Lock()
_jieba: Any = None


def _load_jieba() -> Any:
    """Import jieba once (its dictionary takes about a second to load)."""
    global _jieba
    with _jieba_lock:
        if _jieba is None:
            try:
                with warnings.catch_warnings():
                    # jieba 0.42 has invalid escape sequences in its regex literals.
                    warnings.simplefilter("ignore", (DeprecationWarning, SyntaxWarning))
                    import jieba
            except ImportError as exc:  # pragma: no cover - jieba is a core dependency
                raise ImportError(
                    "Chinese BM25 tokenisation needs jieba: pip install 'jieba>=0.42.1,<0.43'"
                ) from exc
            jieba.setLogLevel(logging.WARNING)  # no "Building prefix dict" banner
            jieba.initialize()
            _jieba = jieba
    return _jieba


def english_tokens(text: str) -> list[str]:
    """Lower-case word tokens without common English stop words (Keel's original rule)."""
    return [t for t in _ENGLISH_TOKEN.findall(text.lower()) if t not in ENGLISH_STOPWORDS]


def chinese_tokens(run: str) -> list[str]:
    """jieba search-mode tokens of a run of Han characters, stop words dropped."""
    words = _load_jieba().lcut_for_search(run)
    return [w for w in words if HAN_CHAR.search(w) and w not in CHINESE_STOPWORDS]


def search_tokens(text: str) -> list[str]:
    """BM25 tokens of ``text`` in any mix of Chinese and English.

    The text is NFKC-normalised (full-width ``ＡＴＭ`` matches ``ATM``), cut into
    runs of Han characters and runs of everything else; Han runs go through jieba,
    the rest through the English rule. Pure English text gives the same tokens as
    ``english_tokens``.
    """
    normalised = normalize_text(text, collapse_spaces=False)
    if not HAN_CHAR.search(normalised):
        return english_tokens(normalised)
    tokens: list[str] = []
    for is_han, run in split_script_runs(normalised):
        tokens.extend(chinese_tokens(run) if is_han else english_tokens(run))
    return tokens
