"""Retrieval answers with an answer generator: shown only when grounded (fake generator)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from customer_service.dialogue import AnswerKind, DialogueManager, DialoguePolicy, GenerationOutcome
from customer_service.engine import load_retriever
from customer_service.generation import AnswerGenerator
from customer_service.intents import IntentModel
from customer_service.knowledge_base import KnowledgeBase, RetrievedPassage
from customer_service.storage import ConversationStore, Role
from customer_service.templates import TemplateBook
from keel.inference import FakePredictor

Script = dict[str, dict[str, float]]
QUESTION = "do you offer safe deposit boxes"
SCRIPT: Script = {QUESTION: {"top_up": 0.35}, "I lost my credit card": {"lost_or_stolen_card": 0.9}}


class CannedGenerator:
    """Answers with a fixed sentence per call, citing the passage of ``doc_id`` by number."""

    def __init__(self, sentence: str, doc_id: str = "vaults") -> None:
        self.sentence = sentence
        self.doc_id = doc_id
        self.calls: list[tuple[str, list[str]]] = []

    def generate(self, question: str, passages: Sequence[RetrievedPassage]) -> str:
        self.calls.append((question, [p.doc_id for p in passages]))
        number = 1 + [p.doc_id for p in passages].index(self.doc_id)
        return self.sentence.format(n=number)


class BrokenGenerator:
    def generate(self, question: str, passages: Sequence[RetrievedPassage]) -> str:
        raise RuntimeError("out of memory")


@pytest.fixture()
def build(
    tmp_path: Path,
    articles_dir: Path,
    templates: TemplateBook,
    make_intents: Callable[[Script], IntentModel],
) -> Callable[[AnswerGenerator | None], DialogueManager]:
    def make(generator: AnswerGenerator | None) -> DialogueManager:
        kb = KnowledgeBase(
            tmp_path / "kb", load_retriever(tmp_path / "kb" / "index", FakePredictor(dim=32))
        )
        kb.ingest(articles_dir)
        store = ConversationStore(f"sqlite:///{tmp_path / 'db.sqlite3'}")
        policy = DialoguePolicy(generation_passages=2, grounding_min_overlap=0.7)
        return DialogueManager(store, make_intents(SCRIPT), kb, templates, policy, generator)

    return make


def stored_bot_text(dm: DialogueManager, conversation_id: str) -> str:
    return [m for m in dm.store.history(conversation_id) if m.role is Role.BOT][-1].text


def test_a_grounded_generated_answer_is_shown_with_its_citation(
    build: Callable[[AnswerGenerator | None], DialogueManager],
) -> None:
    generator = CannedGenerator("No, we do not offer safe deposit boxes [{n}].")
    dm = build(generator)
    conversation = dm.start("web")
    reply = dm.handle_message(conversation.id, QUESTION)
    assert reply.kind is AnswerKind.RETRIEVAL
    assert reply.generated and reply.generation is GenerationOutcome.SHOWN
    assert reply.answer == "No, we do not offer safe deposit boxes. [1]"
    assert [(c["number"], c["doc_id"]) for c in reply.citations] == [(1, "vaults")]
    assert reply.grounding_failure is None
    assert stored_bot_text(dm, conversation.id) == reply.answer
    question, given = generator.calls[0]
    assert question == QUESTION and len(given) == 2  # generation_passages


def test_an_ungrounded_generated_answer_falls_back_to_the_extractive_one(
    build: Callable[[AnswerGenerator | None], DialogueManager],
) -> None:
    plain = build(None)
    extractive = plain.handle_message(plain.start("web").id, QUESTION)
    generator = CannedGenerator("Our vault in London opens on Sundays at 10am [{n}].")
    dm = build(generator)
    conversation = dm.start("web")
    reply = dm.handle_message(conversation.id, QUESTION)
    assert reply.kind is AnswerKind.RETRIEVAL
    assert not reply.generated and reply.generation is GenerationOutcome.REJECTED
    assert reply.answer == extractive.answer and reply.citations == extractive.citations
    assert reply.grounding_failure is not None and "sentence 1" in reply.grounding_failure
    assert stored_bot_text(dm, conversation.id) == extractive.answer


def test_a_generator_error_is_logged_and_the_extractive_answer_shown(
    build: Callable[[AnswerGenerator | None], DialogueManager], caplog: pytest.LogCaptureFixture
) -> None:
    dm = build(BrokenGenerator())
    reply = dm.handle_message(dm.start("web").id, QUESTION)
    assert reply.kind is AnswerKind.RETRIEVAL and "[1]" in (reply.answer or "")
    assert not reply.generated and reply.generation is GenerationOutcome.FAILED
    assert reply.grounding_failure == "generation failed (RuntimeError; details in the server log)"
    assert "answer generation failed" in caplog.text and "out of memory" in caplog.text


def test_templates_are_never_generated(
    build: Callable[[AnswerGenerator | None], DialogueManager],
) -> None:
    generator = CannedGenerator("No, we do not offer safe deposit boxes [{n}].")
    dm = build(generator)
    reply = dm.handle_message(dm.start("web").id, "I lost my credit card")
    assert reply.kind is AnswerKind.TEMPLATE and reply.generation is None
    assert not reply.generated and generator.calls == []


def test_without_a_generator_nothing_is_attempted(
    build: Callable[[AnswerGenerator | None], DialogueManager],
) -> None:
    dm = build(None)
    reply = dm.handle_message(dm.start("web").id, QUESTION)
    assert reply.kind is AnswerKind.RETRIEVAL
    assert reply.generation is None and not reply.generated and reply.grounding_failure is None
