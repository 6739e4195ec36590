"""The grounding check that decides whether a generated answer may be shown."""

from __future__ import annotations

from customer_service.grounding import check_grounding, render_grounded_answer
from customer_service.knowledge_base import RetrievedPassage


def passage(doc_id: str, title: str, text: str) -> RetrievedPassage:
    return RetrievedPassage(
        passage_id=f"{doc_id}#0",
        doc_id=doc_id,
        title=title,
        url=f"/kb/{doc_id}",
        start=0,
        end=len(text),
        text=text,
        score=0.5,
    )


PASSAGES = [
    passage(
        "lost-card",
        "Lost card",
        "Freeze your card in the app under Cards. A replacement card arrives within 3 to 5 "
        "working days.",
    ),
    passage("cheques", "Paying in cheques", "Take a photo of the cheque in the app to pay it in."),
]


def test_sentences_supported_by_their_cited_passage_pass() -> None:
    result = check_grounding(
        "A replacement card arrives within 3 to 5 working days [1]. "
        "Take a photo of the cheque in the app [2].",
        PASSAGES,
        min_overlap=0.7,
    )
    assert result.grounded and result.failure is None
    assert [s.passages for s in result.sentences] == [(0,), (1,)]
    assert all(s.support >= 0.7 for s in result.sentences)


def test_marker_after_the_full_stop_belongs_to_the_sentence_before() -> None:
    result = check_grounding(
        "Freeze your card in the app. [1] Then take a photo of the cheque. [2]",
        PASSAGES,
        min_overlap=0.7,
    )
    assert result.grounded
    assert [s.text for s in result.sentences] == [
        "Freeze your card in the app.",
        "Then take a photo of the cheque.",
    ]
    assert [s.passages for s in result.sentences] == [(0,), (1,)]


def test_a_made_up_sentence_is_rejected_and_named() -> None:
    result = check_grounding(
        "Freeze your card in the app [1]. We also send you a free gold bracelet by courier [1].",
        PASSAGES,
        min_overlap=0.7,
    )
    assert not result.grounded
    assert result.failure is not None and "sentence 2" in result.failure
    assert "gold bracelet" in result.failure and "passage [1]" in result.failure


def test_citing_the_wrong_passage_fails() -> None:
    result = check_grounding(
        "A replacement card arrives within 3 to 5 working days [2].", PASSAGES, min_overlap=0.7
    )
    assert not result.grounded and "passage [2]" in (result.failure or "")


def test_an_invalid_citation_number_fails() -> None:
    result = check_grounding("Freeze your card in the app [3].", PASSAGES, min_overlap=0.7)
    assert not result.grounded
    assert "cites [3], but only 2 passages" in (result.failure or "")


def test_a_number_missing_from_the_passage_fails_even_with_word_overlap() -> None:
    result = check_grounding(
        "A replacement card arrives within 10 working days [1].", PASSAGES, min_overlap=0.5
    )
    assert not result.grounded and 'number "10"' in (result.failure or "")


def test_an_uncited_sentence_gets_the_passage_that_supports_it() -> None:
    result = check_grounding("Take a photo of the cheque to pay it in.", PASSAGES, 0.7)
    assert result.grounded and result.sentences[0].passages == (1,)


def test_an_uncited_sentence_no_passage_supports_fails() -> None:
    result = check_grounding("Our branches open at nine on Saturdays.", PASSAGES, 0.7)
    assert not result.grounded and "any retrieved passage" in (result.failure or "")


def test_empty_text_and_statements_without_content_fail() -> None:
    assert check_grounding("  ", PASSAGES, 0.7).failure == "the generated text is empty"
    result = check_grounding("Freeze your card in the app [1]. It is!", PASSAGES, 0.7)
    assert not result.grounded and "no checkable statement" in (result.failure or "")


def test_threshold_zero_accepts_any_sentence_with_content_words() -> None:
    assert check_grounding("Bananas are yellow [1].", PASSAGES, min_overlap=0.0).grounded


def test_rendered_answer_renumbers_citations_by_first_use() -> None:
    result = check_grounding(
        "Take a photo of the cheque [2]. Freeze your card in the app [1].", PASSAGES, 0.7
    )
    text, citations = render_grounded_answer(result, PASSAGES)
    assert text == "Take a photo of the cheque. [1] Freeze your card in the app. [2]"
    assert [(c.number, c.doc_id) for c in citations] == [(1, "cheques"), (2, "lost-card")]


def test_list_numbers_and_repeated_sentences_are_not_statements() -> None:
    result = check_grounding(
        "1. Freeze your card in the app [1].\n2. Freeze your card in the app [1].",
        PASSAGES,
        min_overlap=0.7,
    )
    assert result.grounded
    assert [s.text for s in result.sentences] == ["Freeze your card in the app."]
