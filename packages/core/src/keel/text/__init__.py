"""Language-aware text processing: Unicode normalisation, script-based language
detection (zh / en / mixed) and BM25 search tokens (jieba for Chinese)."""

from keel.text._language import EN_MAX_SHARE, ZH_MIN_SHARE, Language, detect_language, han_share
from keel.text._normalize import normalize_text
from keel.text._scripts import split_script_runs
from keel.text._tokenize import (
    CHINESE_STOPWORDS,
    ENGLISH_STOPWORDS,
    chinese_tokens,
    english_tokens,
    search_tokens,
)

__all__ = [
    "CHINESE_STOPWORDS",
    "ENGLISH_STOPWORDS",
    "EN_MAX_SHARE",
    "ZH_MIN_SHARE",
    "Language",
    "chinese_tokens",
    "detect_language",
    "english_tokens",
    "han_share",
    "normalize_text",
    "search_tokens",
    "split_script_runs",
]
