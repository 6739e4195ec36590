from customer_service.answers import compose_extractive_answer, content_words, lexical_support
from customer_service.knowledge_base import RetrievedPassage


def _passage(doc_id: str, text: str) -> RetrievedPassage:
    return RetrievedPassage(
        f"{doc_id}#0", doc_id, doc_id.title(), f"/kb/{doc_id}", 0, len(text), text, 1.0
    )


def test_answer_uses_the_sentences_that_match_and_numbers_their_sources() -> None:
    passages = [
        _passage(
            "transfers",
            "Payments in the UK arrive in 2 hours. International transfers take 1 to 4 working days.",
        ),
        _passage("fees", "International transfers cost 0.5%. Cards are free."),
    ]
    answer = compose_extractive_answer("how long do international transfers take", passages)
    assert answer.text.startswith("International transfers take 1 to 4 working days. [1]")
    assert answer.citations[0].doc_id == "transfers"
    assert [c.number for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    assert answer.support == 0.75  # "long" is in no passage


def test_no_passages_gives_an_empty_answer() -> None:
    answer = compose_extractive_answer("anything", [])
    assert answer.text == "" and answer.citations == [] and answer.support == 0.0


def test_lexical_support_ignores_stop_words() -> None:
    assert content_words("How do I bake the bread?") == {"bake", "bread"}
    assert lexical_support("bake bread", [_passage("cards", "Cards are free.")]) == 0.0
