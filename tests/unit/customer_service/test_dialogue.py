from collections.abc import Callable
from pathlib import Path

import pytest

from customer_service.dialogue import (
    FALLBACK_MESSAGE,
    AnswerKind,
    DialogueManager,
    DialoguePolicy,
    choose_option,
    is_follow_up,
)
from customer_service.engine import load_retriever
from customer_service.errors import InvalidStateError
from customer_service.intents import IntentModel
from customer_service.knowledge_base import KnowledgeBase
from customer_service.storage import ConversationState, ConversationStore, Role
from customer_service.templates import TemplateBook
from keel.inference import FakePredictor

Script = dict[str, dict[str, float]]


@pytest.fixture()
def build(
    tmp_path: Path,
    articles_dir: Path,
    templates: TemplateBook,
    make_intents: Callable[[Script], IntentModel],
) -> Callable[[Script], DialogueManager]:
    def make(script: Script) -> DialogueManager:
        embedder = FakePredictor(dim=32)
        kb = KnowledgeBase(tmp_path / "kb", load_retriever(tmp_path / "kb" / "index", embedder))
        kb.ingest(articles_dir)
        store = ConversationStore(f"sqlite:///{tmp_path / 'db.sqlite3'}")
        return DialogueManager(
            store, make_intents(script), kb, templates, DialoguePolicy(fallback_after=2)
        )

    return make


def test_confident_intent_gets_its_template(build: Callable[[Script], DialogueManager]) -> None:
    dm = build({"I lost my credit card": {"lost_or_stolen_card": 0.9}})
    conversation = dm.start("web")
    reply = dm.handle_message(conversation.id, "I lost my credit card")
    assert reply.kind is AnswerKind.TEMPLATE and reply.intent == "lost_or_stolen_card"
    assert "Freeze your credit card" in (reply.answer or "")
    assert reply.message_id is not None and reply.user_message_id is not None


def test_unsure_intent_gets_a_retrieval_answer_with_citations(
    build: Callable[[Script], DialogueManager],
) -> None:
    dm = build({"do you offer safe deposit boxes": {"top_up": 0.35}})
    reply = dm.handle_message(dm.start("web").id, "do you offer safe deposit boxes")
    assert reply.kind is AnswerKind.RETRIEVAL
    assert reply.citations[0]["doc_id"] == "vaults" and reply.citations[0]["number"] == 1
    assert "[1]" in (reply.answer or "")


def test_close_top_two_asks_and_the_choice_is_answered(
    build: Callable[[Script], DialogueManager],
) -> None:
    dm = build({"my card": {"lost_or_stolen_card": 0.3, "card_arrival": 0.25}})
    conversation = dm.start("web")
    reply = dm.handle_message(conversation.id, "my card")
    assert reply.kind is AnswerKind.CLARIFY
    assert [o["intent"] for o in reply.options] == ["lost_or_stolen_card", "card_arrival"]
    picked = dm.handle_message(conversation.id, "2")
    assert picked.kind is AnswerKind.TEMPLATE and picked.intent == "card_arrival"


def test_follow_up_is_read_with_the_previous_turn(
    build: Callable[[Script], DialogueManager],
) -> None:
    script = {
        "how do I send money abroad": {"send_money_abroad": 0.95},
        "how do I send money abroad and how long does that take?": {"transfer_time": 0.8},
    }
    dm = build(script)
    conversation = dm.start("web")
    dm.handle_message(conversation.id, "how do I send money abroad")
    reply = dm.handle_message(conversation.id, "and how long does that take?")
    assert reply.resolved_query == "how do I send money abroad and how long does that take?"
    assert reply.intent == "transfer_time" and reply.kind is AnswerKind.TEMPLATE


def test_repeated_low_confidence_hands_off_and_the_bot_goes_silent(
    build: Callable[[Script], DialogueManager],
) -> None:
    dm = build({})  # every text: flat probabilities, out of scope
    conversation = dm.start("web")
    first = dm.handle_message(conversation.id, "weather tomorrow")
    assert first.kind is AnswerKind.FALLBACK and first.answer == FALLBACK_MESSAGE
    second = dm.handle_message(conversation.id, "bake sourdough")
    assert second.kind is AnswerKind.HANDOFF and second.state is ConversationState.WAITING_FOR_AGENT
    silent = dm.handle_message(conversation.id, "hello?")
    assert silent.kind is AnswerKind.SILENT and silent.answer is None
    assert [c.id for c in dm.store.queue()] == [conversation.id]

    dm.agent_reply(conversation.id, "Sam", "Hi, Sam here.")
    assert dm.store.get_conversation(conversation.id).state is ConversationState.WITH_AGENT
    assert dm.handle_message(conversation.id, "thanks Sam").kind is AnswerKind.SILENT
    dm.hand_back(conversation.id)
    with pytest.raises(InvalidStateError):
        dm.hand_back(conversation.id)
    roles = [m.role for m in dm.store.history(conversation.id)]
    assert roles.count(Role.AGENT) == 1 and roles[-1] is Role.BOT
    assert dm.store.get_conversation(conversation.id).state is ConversationState.BOT


def test_handoff_intent_and_button(build: Callable[[Script], DialogueManager]) -> None:
    dm = build({"a human please": {"talk_to_human": 0.9}})
    conversation = dm.start("web")
    assert dm.handle_message(conversation.id, "a human please").kind is AnswerKind.HANDOFF
    other = dm.start("web")
    assert dm.request_handoff(other.id) is not None
    assert dm.request_handoff(other.id) is None  # already waiting: nothing new


def test_follow_up_detection_and_option_choice() -> None:
    assert is_follow_up("and how long does that take?")
    assert is_follow_up("what about abroad")
    assert not is_follow_up("how do I change my address after moving house last week")
    titles = {"a": "Lost or stolen card", "b": "Card not arrived"}
    assert choose_option("2", ["a", "b"], titles) == "b"
    assert choose_option("lost or stolen card", ["a", "b"], titles) == "a"
    assert choose_option("something else", ["a", "b"], titles) is None


def test_an_agent_takeover_during_a_bot_answer_is_not_undone(
    build: Callable[[Script], DialogueManager],
) -> None:
    dm = build({"I lost my credit card": {"lost_or_stolen_card": 0.9}})
    conversation = dm.start("web")
    classify = dm.intents
    took_over = []

    class AgentStepsIn:
        """The intent model, with an agent replying while the bot is deciding."""

        def __getattr__(self, name: str) -> object:
            return getattr(classify, name)

        def predict(self, text: str) -> object:
            if not took_over:
                took_over.append(dm.agent_reply(conversation.id, "Sam", "Sam here"))
            return classify.predict(text)

    dm.intents = AgentStepsIn()  # type: ignore[assignment]
    reply = dm.handle_message(conversation.id, "I lost my credit card")
    # The bot's write was refused; on the re-read the agent has the chat: silent.
    assert reply.kind is AnswerKind.SILENT and reply.state is ConversationState.WITH_AGENT
    stored = dm.store.get_conversation(conversation.id)
    assert stored.state is ConversationState.WITH_AGENT and stored.agent_name == "Sam"
    history = dm.store.history(conversation.id)
    assert [(m.role, m.text) for m in history] == [
        (Role.AGENT, "Sam here"),
        (Role.USER, "I lost my credit card"),
    ]
    assert [c.id for c in dm.store.queue()] == [conversation.id]


def test_concurrent_agent_replies_and_customer_messages_lose_nothing(
    build: Callable[[Script], DialogueManager],
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    dm = build({"I lost my credit card": {"lost_or_stolen_card": 0.9}})
    conversation = dm.start("web")
    with ThreadPoolExecutor(max_workers=8) as pool:
        agent = [pool.submit(dm.agent_reply, conversation.id, "Sam", f"a{i}") for i in range(20)]
        customer = [
            pool.submit(dm.handle_message, conversation.id, "I lost my credit card")
            for _ in range(20)
        ]
        for future in agent + customer:
            future.result()
    history = dm.store.history(conversation.id)
    texts = [m.text for m in history if m.role is Role.AGENT]
    assert sorted(texts) == sorted(f"a{i}" for i in range(20))  # each exactly once
    assert sum(m.role is Role.USER for m in history) == 20
    assert dm.store.get_conversation(conversation.id).state is ConversationState.WITH_AGENT


def test_a_second_turn_decides_on_the_remembered_row_without_reading_it(
    build: Callable[[Script], DialogueManager], monkeypatch: pytest.MonkeyPatch
) -> None:
    dm = build({"I lost my credit card": {"lost_or_stolen_card": 0.9}})
    conversation = dm.start("web")
    dm.handle_message(conversation.id, "I lost my credit card")
    reads: list[str] = []
    read = dm.store.get_conversation
    monkeypatch.setattr(
        dm.store, "get_conversation", lambda cid, *a, **k: reads.append(cid) or read(cid, *a, **k)
    )
    reply = dm.handle_message(conversation.id, "I lost my credit card")
    assert reply.kind is AnswerKind.TEMPLATE and reads == []
    assert dm.store.get_conversation(conversation.id).version == 2  # both turns written


def test_a_row_changed_by_another_worker_is_read_again_before_the_bot_answers(
    build: Callable[[Script], DialogueManager],
) -> None:
    script = {"I lost my credit card": {"lost_or_stolen_card": 0.9}}
    worker_a, worker_b = build(script), build(script)  # two processes on one database
    conversation = worker_a.start("web")
    worker_a.handle_message(conversation.id, "I lost my credit card")  # A remembers the row
    worker_b.agent_reply(conversation.id, "Sam", "Sam here")  # B: an agent takes over
    reply = worker_a.handle_message(conversation.id, "I lost my credit card")
    # A's remembered copy said the bot had the chat; its write was refused, and on the
    # row it read again the agent has it: the message is stored for the agent, no answer.
    assert reply.kind is AnswerKind.SILENT and reply.state is ConversationState.WITH_AGENT
    history = worker_a.store.history(conversation.id)
    assert [m.role for m in history] == [Role.USER, Role.BOT, Role.AGENT, Role.USER]
    assert worker_a.store.get_conversation(conversation.id).agent_name == "Sam"
