from pathlib import Path

import pytest

from customer_service.documents import (
    iter_article_files,
    load_article,
    load_faq,
    parse_html,
    parse_markdown,
)
from customer_service.errors import DocumentFormatError
from customer_service.passages import split_passages


def test_markdown_title_links_and_emphasis() -> None:
    title, text = parse_markdown(
        "# Fees\n\nSee **our** [price list](https://x.test).\n\n## Abroad\nFree."
    )
    assert title == "Fees"
    assert text == "See our price list.\n\nAbroad\nFree."


def test_html_keeps_visible_text_only() -> None:
    title, text = parse_html(
        "<html><head><title>T</title><style>p{}</style></head>"
        "<body><h1>T</h1><p>One &amp; two</p><script>alert(1)</script><p>Three</p></body></html>"
    )
    assert title == "T"
    assert text == "One & two\n\nThree"


def test_articles_of_every_format_load_with_ids_and_urls(articles_dir: Path) -> None:
    docs = {
        d.doc_id: d
        for d in (load_article(p, articles_dir) for p in iter_article_files(articles_dir))
    }
    assert set(docs) == {"cards-lost-card", "vaults", "cheques"}
    assert docs["cards-lost-card"].title == "Lost card"
    assert docs["vaults"].title == "Safe deposit boxes"
    assert docs["cheques"].title == "Paying in cheques"
    assert docs["vaults"].url == "/kb/vaults"


def test_empty_article_is_an_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "empty.md").write_text("# Only a title\n")
    with pytest.raises(DocumentFormatError, match=r"empty\.md:1: article has no text"):
        load_article(tmp_path / "empty.md", tmp_path)


def test_faq_csv_errors_name_file_and_line(tmp_path: Path) -> None:
    faq = tmp_path / "faq.csv"
    faq.write_text("question,answer\nWhat?,That.\nWhy?,\n")
    with pytest.raises(DocumentFormatError, match=r"faq\.csv:3: empty answer"):
        load_faq(faq)
    faq.write_text("q,a\nx,y\n")
    with pytest.raises(DocumentFormatError, match="missing column"):
        load_faq(faq)


def test_faq_jsonl(tmp_path: Path) -> None:
    faq = tmp_path / "faq.jsonl"
    faq.write_text('{"question": "Sort code?", "answer": "04-00-99", "id": "sort"}\n\n')
    (doc,) = load_faq(faq)
    assert (doc.doc_id, doc.title, doc.text, doc.format) == (
        "faq-sort",
        "Sort code?",
        "04-00-99",
        "faq",
    )
    faq.write_text("{not json\n")
    with pytest.raises(DocumentFormatError, match=r"faq\.jsonl:1: invalid JSON"):
        load_faq(faq)


def test_passage_offsets_point_into_the_document(articles_dir: Path) -> None:
    doc = load_article(articles_dir / "cards" / "lost-card.md", articles_dir)
    passages = split_passages(doc, max_chars=50)
    assert len(passages) == 2
    for passage in passages:
        assert doc.text[passage.start : passage.end] == passage.text
    assert passages[1].passage_id == "cards-lost-card#1"
    assert len(split_passages(doc, max_chars=1000)) == 1
