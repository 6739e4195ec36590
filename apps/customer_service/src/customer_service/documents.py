"""Reading help-centre content: Markdown / HTML / plain-text articles and FAQ files.

Each source becomes a :class:`Document` with plain text, a title and a URL; the
knowledge base splits documents into passages for retrieval.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from customer_service.errors import DocumentFormatError

ARTICLE_SUFFIXES = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".txt": "text",
}
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Document:
    """One knowledge-base document.

    Attributes:
        doc_id: stable id (slug of the file path, ``faq-<id>``, or given by an admin).
        title: human title, shown in citations.
        text: plain text; passage offsets index into it.
        url: link shown in citations (the app serves ``/kb/<doc_id>``).
        source: where it came from: a path relative to the articles folder, the FAQ
            file name, or ``"admin"``.
        format: ``markdown``, ``html``, ``text`` or ``faq``.
    """

    doc_id: str
    title: str
    text: str
    url: str
    source: str
    format: str

    @property
    def content_hash(self) -> str:
        """Hash of everything that changes the passages (ingesting an unchanged file is a no-op)."""
        payload = json.dumps([self.title, self.text, self.url], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class ChangeReport:
    """What an ingest (into the index) or a content sync (into the database) changed,
    by document id."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
        }


def slugify(value: str) -> str:
    """Lower-case ``value`` and keep ``a-z0-9`` runs joined by dashes."""
    slug = _SLUG.sub("-", value.lower()).strip("-")
    return slug or "doc"


def document_url(doc_id: str) -> str:
    """URL of the page where the app shows a document."""
    return f"/kb/{doc_id}"


class _HTMLText(HTMLParser):
    """Collects visible text and the <title>/<h1> of an HTML page."""

    _BLOCK = frozenset(
        {
            "p",
            "div",
            "li",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "br",
            "tr",
            "section",
            "article",
        }
    )
    _SKIP = frozenset({"script", "style", "head"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self.h1 = ""
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._stack.append(tag)
        if tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._stack:
            while self._stack and self._stack.pop() != tag:
                pass
        if tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if "title" in self._stack:
            self.title += data
            return
        if any(tag in self._SKIP for tag in self._stack):
            return
        if "h1" in self._stack:
            self.h1 += data
        self.parts.append(data)


def normalise_text(text: str) -> str:
    """Collapse runs of spaces and blank lines; strip each line."""
    lines = [
        re.sub(r"[ \t]+", " ", line).strip() for line in text.replace("\r\n", "\n").split("\n")
    ]
    joined = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", joined).strip()


def parse_markdown(raw: str) -> tuple[str, str]:
    """Return ``(title, text)`` of a Markdown article: title from the first ``#`` heading."""
    title = ""
    body_lines: list[str] = []
    for line in raw.replace("\r\n", "\n").split("\n"):
        heading = re.match(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if heading and not title and heading.group(1) == "#":
            title = heading.group(2).strip()
            continue
        if heading:
            body_lines.append(heading.group(2).strip())
            continue
        line = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", line)  # images -> alt text
        line = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", line)  # links -> link text
        line = re.sub(r"(\*\*|__|`)", "", line)
        line = re.sub(r"^\s*[-*+]\s+", "- ", line)
        body_lines.append(line)
    return title, normalise_text("\n".join(body_lines))


def parse_html(raw: str) -> tuple[str, str]:
    """Return ``(title, visible text)`` of an HTML article."""
    parser = _HTMLText()
    parser.feed(raw)
    parser.close()
    title = (parser.title or parser.h1).strip()
    text = normalise_text("".join(parser.parts))
    if parser.h1 and text.startswith(parser.h1.strip()):
        text = text[len(parser.h1.strip()) :].strip()
    return title, text


def parse_plain_text(raw: str) -> tuple[str, str]:
    """Return ``(title, text)`` of a plain-text article: the first line is the title."""
    text = normalise_text(raw)
    first, _, rest = text.partition("\n")
    return first.strip(), rest.strip()


def parse_article(raw: str, fmt: str) -> tuple[str, str]:
    """Parse an article body of format ``markdown``, ``html`` or ``text``."""
    parsers = {"markdown": parse_markdown, "html": parse_html, "text": parse_plain_text}
    if fmt not in parsers:
        raise DocumentFormatError(f"format={fmt!r}: use one of {sorted(parsers)}")
    return parsers[fmt](raw)


def load_article(path: Path, root: Path) -> Document:
    """Read one article file under ``root``.

    Raises:
        DocumentFormatError: unknown suffix, not UTF-8, no title or no text.
    """
    fmt = ARTICLE_SUFFIXES.get(path.suffix.lower())
    relative = path.relative_to(root).as_posix()
    if fmt is None:
        raise DocumentFormatError(f"unsupported suffix {path.suffix!r}", str(path))
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentFormatError(f"not UTF-8 ({exc.reason})", str(path)) from exc
    title, text = parse_article(raw, fmt)
    if not text:
        raise DocumentFormatError("article has no text", str(path), 1)
    doc_id = slugify(str(Path(relative).with_suffix("")))
    return Document(
        doc_id=doc_id,
        title=title or path.stem.replace("-", " ").replace("_", " ").capitalize(),
        text=text,
        url=document_url(doc_id),
        source=relative,
        format=fmt,
    )


def iter_article_files(root: Path) -> list[Path]:
    """Article files under ``root`` (recursive), sorted for a stable order."""
    return sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in ARTICLE_SUFFIXES
    )


def load_faq(path: Path) -> list[Document]:
    """Read FAQ pairs from a CSV (columns ``question``, ``answer``, optional ``id``, ``url``) or JSONL.

    Raises:
        DocumentFormatError: missing column or empty question/answer, naming file and line.
    """
    rows: list[tuple[int, dict[str, str]]] = []
    if path.suffix.lower() == ".jsonl":
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DocumentFormatError(f"invalid JSON ({exc.msg})", str(path), line_no) from exc
            if not isinstance(record, dict):
                raise DocumentFormatError("each line must be a JSON object", str(path), line_no)
            rows.append((line_no, {k: str(v) for k, v in record.items()}))
    else:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = {"question", "answer"} - set(reader.fieldnames or [])
            if missing:
                raise DocumentFormatError(f"missing column(s) {sorted(missing)}", str(path), 1)
            for line_no, record in enumerate(reader, start=2):
                rows.append((line_no, {k: (v or "") for k, v in record.items() if k}))
    documents: list[Document] = []
    for line_no, record in rows:
        question = (record.get("question") or "").strip()
        answer = (record.get("answer") or "").strip()
        if not question or not answer:
            field = "question" if not question else "answer"
            raise DocumentFormatError(f"empty {field}", str(path), line_no)
        doc_id = "faq-" + slugify(record.get("id") or question)[:60]
        documents.append(
            Document(
                doc_id=doc_id,
                title=question,
                text=answer,
                url=(record.get("url") or "").strip() or document_url(doc_id),
                source=path.name,
                format="faq",
            )
        )
    return documents
