"""The grounding check of a generated answer: every sentence must be backed by a passage.

A generated sentence passes when enough of its content words (and every number in it)
occur in the passage(s) it cites with ``[n]``; a sentence that cites nothing is checked
against each retrieved passage and gets the best one as its citation. One failing
sentence rejects the whole generated answer, and the failure says which sentence and why,
so the caller can show the extractive answer instead and log the reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from customer_service.answers import (
    Citation,
    citation_for,
    content_words,
    source_words,
    split_sentences,
)
from customer_service.knowledge_base import RetrievedPassage

_MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
# "... working days. [1] Next ..." -> "... working days [1]. Next ...": a marker written
# after the full stop belongs to the sentence before it.
_MARKERS_AFTER_END = re.compile(r"([.!?])((?:\s*\[\d+(?:\s*,\s*\d+)*\])+)")
_NUMBER = re.compile(r"\d+")
_LIST_ITEM = re.compile(r"(?m)^\s*(?:\d+[.)]|[-*\u2022])\s+")
# Words a model uses to talk about its sources rather than about the topic.
_SOURCE_WORDS = frozenset(["passage", "according", "source", "article"])


@dataclass(frozen=True)
class GroundedSentence:
    """A generated sentence without its markers, and the passages that support it."""

    text: str
    passages: tuple[int, ...]  # indexes into the retrieved passages, in citation order
    support: float  # share of the sentence's content words found in those passages


@dataclass(frozen=True)
class GroundingResult:
    """Outcome of ``check_grounding``: the supported sentences, or why the text failed."""

    sentences: list[GroundedSentence]
    failure: str | None = None

    @property
    def grounded(self) -> bool:
        return self.failure is None and bool(self.sentences)


def _numbers(text: str) -> set[str]:
    return set(_NUMBER.findall(text))


def _split_generated(text: str) -> list[tuple[str, list[int]]]:
    """Sentences of generated text as ``(text without markers, cited numbers)``."""
    text = _LIST_ITEM.sub("", text.strip())  # "1. " of a list item is not a statement
    text = _MARKERS_AFTER_END.sub(lambda m: m.group(2) + m.group(1), text)
    sentences: list[tuple[str, list[int]]] = []
    seen: set[str] = set()
    for raw in split_sentences(text):
        numbers = [int(n) for group in _MARKER.findall(raw) for n in group.split(",")]
        plain = _MARKER.sub(" ", raw)
        plain = re.sub(r"\s+([.,;:!?])", r"\1", re.sub(r"\s+", " ", plain)).strip()
        if plain.lower() in seen:  # a small model repeats itself: say it once
            continue
        seen.add(plain.lower())
        if plain or numbers:
            sentences.append((plain, numbers))
    return sentences


def _support(claim: set[str], numbers: set[str], passage_text: str) -> tuple[float, set[str]]:
    """Share of ``claim`` words found in the passage, and the numbers it lacks."""
    words = source_words(passage_text)
    share = len(claim & words) / len(claim) if claim else 0.0
    return share, numbers - _numbers(passage_text)


def check_grounding(
    generated: str, passages: Sequence[RetrievedPassage], min_overlap: float
) -> GroundingResult:
    """Check that each sentence of ``generated`` is supported by a retrieved passage.

    Args:
        generated: the model's answer; ``[n]`` cites the n-th of ``passages`` (from 1).
        passages: the passages the model was given, in prompt order.
        min_overlap: share of a sentence's content words that must occur in the
            passage(s) it cites (or, when it cites none, in one retrieved passage).

    Returns:
        The sentences with their supporting passages, or ``failure`` naming the first
        sentence that is not supported (invalid citation, too little overlap, a number
        the passage does not contain, or no content words at all).
    """
    sentences = _split_generated(generated)
    if not sentences:
        return GroundingResult([], "the generated text is empty")
    checked: list[GroundedSentence] = []
    for position, (text, cited) in enumerate(sentences, start=1):
        label = f'sentence {position} "{text}"'
        invalid = [n for n in cited if not 1 <= n <= len(passages)]
        if invalid:
            return GroundingResult(
                checked,
                f"{label} cites [{invalid[0]}], but only {len(passages)} passages were given",
            )
        claim = content_words(text) - _SOURCE_WORDS
        if not claim:
            return GroundingResult(checked, f"{label} makes no checkable statement")
        numbers = _numbers(text)
        if cited:
            indexes = tuple(dict.fromkeys(n - 1 for n in cited))
            source = " ".join(passages[i].title + " " + passages[i].text for i in indexes)
            share, missing = _support(claim, numbers, source)
            where = "the passages it cites" if len(indexes) > 1 else f"passage [{cited[0]}]"
        else:
            scored = [
                (*_support(claim, numbers, p.title + " " + p.text), i)
                for i, p in enumerate(passages)
            ]
            if not scored:
                return GroundingResult(checked, f"{label}: no passages to check it against")
            # Best passage: no missing numbers first, then the largest overlap.
            share, missing, best = max(scored, key=lambda s: (not s[1], s[0], -s[2]))
            indexes = (best,)
            where = "any retrieved passage"
        if missing:
            return GroundingResult(
                checked, f'{label} has the number "{sorted(missing)[0]}", not found in {where}'
            )
        if share < min_overlap:
            return GroundingResult(
                checked,
                f"{label}: {share:.0%} of its content words are in {where} "
                f"(needs {min_overlap:.0%})",
            )
        checked.append(GroundedSentence(text, indexes, share))
    return GroundingResult(checked)


def render_grounded_answer(
    result: GroundingResult, passages: Sequence[RetrievedPassage]
) -> tuple[str, list[Citation]]:
    """The answer text with ``[n]`` after each sentence, renumbered by first use, and its
    citations (the same shape as the extractive answer's)."""
    numbers: dict[int, int] = {}
    parts: list[str] = []
    for sentence in result.sentences:
        marks = "".join(f"[{numbers.setdefault(i, len(numbers) + 1)}]" for i in sentence.passages)
        parts.append(f"{sentence.text} {marks}")
    citations = [citation_for(passages[i], number) for i, number in numbers.items()]
    return " ".join(parts), citations
