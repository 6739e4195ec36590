"""Splitting documents into passages with character offsets (for citations)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from customer_service.documents import Document

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class Passage:
    """A span ``text[start:end]`` of a document, the unit that is indexed and cited."""

    passage_id: str
    doc_id: str
    title: str
    url: str
    start: int
    end: int
    text: str

    @property
    def index_text(self) -> str:
        """What the retriever sees: the title gives a short passage its context."""
        return f"{self.title}\n{self.text}"

    def metadata(self) -> dict[str, str | int]:
        return {
            "doc_id": self.doc_id,
            "title": self.title,
            "url": self.url,
            "start": self.start,
            "end": self.end,
            "passage": self.text,
        }


def _paragraph_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    cursor = 0
    for match in _PARAGRAPH_BREAK.finditer(text):
        if text[cursor : match.start()].strip():
            spans.append((cursor, match.start()))
        cursor = match.end()
    if text[cursor:].strip():
        spans.append((cursor, len(text)))
    return spans


def split_passages(document: Document, max_chars: int = 400) -> list[Passage]:
    """Group consecutive paragraphs into passages of at most ``max_chars`` (a longer
    paragraph stays whole), keeping each passage's offsets into ``document.text``.

    Args:
        document: the document to split.
        max_chars: soft upper bound of a passage's length.

    Returns:
        Passages in document order, ids ``<doc_id>#<n>``.
    """
    groups: list[tuple[int, int]] = []
    for start, end in _paragraph_spans(document.text):
        if groups and end - groups[-1][0] <= max_chars:
            groups[-1] = (groups[-1][0], end)
        else:
            groups.append((start, end))
    return [
        Passage(
            passage_id=f"{document.doc_id}#{index}",
            doc_id=document.doc_id,
            title=document.title,
            url=document.url,
            start=start,
            end=end,
            text=document.text[start:end],
        )
        for index, (start, end) in enumerate(groups)
    ]
