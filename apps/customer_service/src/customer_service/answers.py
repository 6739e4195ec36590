"""Composing a short extractive answer with numbered citations from retrieved passages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from customer_service.knowledge_base import RetrievedPassage

_WORD = re.compile(r"[a-z0-9]+")
# English sentences end in . ! ? before a space; Chinese ones in 。！？ with no space.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|(?<=[。！？；])\s*|\n+")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "don",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "please",
        "hi",
        "hello",
        "thanks",
        "thank",
        "want",
        "need",
        "like",
        "get",
        "got",
        "know",
        "tell",
        "help",
        "really",
        "much",
        "many",
        "also",
        "still",
    ]
)


# Question and politeness words that a help-centre passage does not repeat.
CHINESE_QUESTION_WORDS = frozenset(
    [
        *("怎么办", "为什么", "为何", "多少", "多久", "哪里", "哪儿", "哪些", "是否", "一下"),
        *("需要", "能不能", "可不可以", "有没有", "是不是", "帮", "帮我", "谢谢", "你好"),
        *("您好", "应该", "该", "办"),
    ]
)


def content_words(text: str) -> set[str]:
    """Lower-cased words of ``text`` without stop words, with a crude plural strip;
    Chinese runs give their jieba words (``keel.text.chinese_tokens``, the BM25 ones)."""
    words: set[str] = set()
    if _HAN.search(text):
        from keel.text import chinese_tokens, split_script_runs

        rest = []
        for is_han, run in split_script_runs(text):
            if is_han:
                words.update(w for w in chinese_tokens(run) if w not in CHINESE_QUESTION_WORDS)
            else:
                rest.append(run)
        text = " ".join(rest)
    for word in _WORD.findall(text.lower()):
        if word in STOPWORDS or len(word) < 2:
            continue
        if len(word) > 4 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        words.add(word)
    return words


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


@lru_cache(maxsize=8192)
def source_words(text: str) -> frozenset[str]:
    """:func:`content_words` of a help-centre text (a passage, its title, one of its
    sentences), kept: the knowledge base's texts come back query after query. Customer
    text is not cached (it seldom repeats, and nothing of it should linger)."""
    return frozenset(content_words(text))


@lru_cache(maxsize=2048)
def passage_sentences(text: str) -> tuple[str, ...]:
    """:func:`split_sentences` of a help-centre passage, kept for the same reason."""
    return tuple(split_sentences(text))


@dataclass(frozen=True)
class Citation:
    """A numbered source of an answer."""

    number: int
    doc_id: str
    title: str
    url: str
    passage_id: str
    start: int
    end: int
    snippet: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "doc_id": self.doc_id,
            "title": self.title,
            "url": self.url,
            "passage_id": self.passage_id,
            "start": self.start,
            "end": self.end,
            "snippet": self.snippet,
        }


def citation_for(passage: RetrievedPassage, number: int) -> Citation:
    """The citation ``[number]`` of a retrieved passage."""
    return Citation(
        number=number,
        doc_id=passage.doc_id,
        title=passage.title,
        url=passage.url,
        passage_id=passage.passage_id,
        start=passage.start,
        end=passage.end,
        snippet=passage.text[:240],
    )


@dataclass(frozen=True)
class ExtractiveAnswer:
    text: str
    citations: list[Citation]
    support: float  # share of the query's content words found in the cited sentences


def lexical_support(query: str, passages: list[RetrievedPassage]) -> float:
    """Share of the query's content words that occur in the passages (0 when none)."""
    wanted = content_words(query)
    if not wanted or not passages:
        return 0.0
    found: set[str] = set()
    for passage in passages:
        found |= source_words(passage.title + " " + passage.text)
    return len(wanted & found) / len(wanted)


def compose_extractive_answer(
    query: str, passages: list[RetrievedPassage], max_sentences: int = 2, max_sources: int = 2
) -> ExtractiveAnswer:
    """Pick the sentences of the best passages that share most words with the query.

    Sentences keep their passage's rank as a tie-breaker, and each cited passage gets a
    number ``[n]`` in order of first use.

    Args:
        query: the (context-resolved) customer question.
        passages: retrieved passages, best first.
        max_sentences: sentences in the answer.
        max_sources: passages the sentences may come from.

    Returns:
        The answer text with ``[n]`` markers, its citations and its lexical support.
    """
    wanted = content_words(query)
    candidates: list[tuple[float, int, int, str]] = []
    for rank, passage in enumerate(passages[:max_sources]):
        for position, sentence in enumerate(passage_sentences(passage.text)):
            overlap = len(wanted & source_words(sentence))
            # Earlier passages and earlier sentences win ties; the first sentence of the
            # best passage is always a candidate so every answer says something.
            score = overlap - 0.3 * rank - 0.01 * position
            candidates.append((score, rank, position, sentence))
    if not candidates:
        return ExtractiveAnswer("", [], 0.0)
    chosen = sorted(candidates, key=lambda c: -c[0])[:max_sentences]
    chosen.sort(key=lambda c: (c[1], c[2]))
    numbers: dict[int, int] = {}
    parts: list[str] = []
    chinese = all(_HAN.search(sentence) for _, _, _, sentence in chosen)
    for _, rank, _, sentence in chosen:
        number = numbers.setdefault(rank, len(numbers) + 1)
        parts.append(f"{sentence}[{number}]" if chinese else f"{sentence} [{number}]")
    citations = [
        citation_for(passages[rank], number)
        for rank, number in sorted(numbers.items(), key=lambda item: item[1])
    ]
    used = [passages[rank] for rank in numbers]
    text = ("" if chinese else " ").join(parts)
    return ExtractiveAnswer(text, citations, lexical_support(query, used))
