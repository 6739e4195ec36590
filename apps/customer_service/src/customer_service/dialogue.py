"""The dialogue manager: decides, per customer message, how the bot answers.

Policy, in order:

1. A conversation waiting for or with a human agent gets no bot answer (the message
   is stored for the agent).
2. An answer to a pending clarifying question picks one of the offered intents.
3. A follow-up ("and how long does that take?") is read together with the previous
   customer turn(s).
4. The two best intents close together -> a clarifying question.
5. A confident intent -> its template (with slots), a hand-off, or a retrieval answer.
6. Otherwise a retrieval answer with numbered citations when the knowledge base
   supports it; when it does not, a fallback, and after ``fallback_after`` fallbacks
   in a row the conversation is handed to a human.

A retrieval answer is extractive (sentences of the passages) unless an answer
generator is configured and its text passes the grounding check; only retrieval
answers are ever generated.
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from customer_service.answers import Citation, ExtractiveAnswer, compose_extractive_answer
from customer_service.errors import (
    ConversationConflictError,
    InvalidStateError,
    SessionNotFoundError,
)
from customer_service.generation import AnswerGenerator
from customer_service.grounding import check_grounding, render_grounded_answer
from customer_service.intents import IntentModel, IntentPrediction
from customer_service.knowledge_base import KnowledgeBase, RetrievedPassage
from customer_service.languages import (
    ZH_TEXTS,
    BotTexts,
    LanguagePipeline,
    choose_language,
    is_follow_up_zh,
    zh_option_number,
)
from customer_service.pii import mask_pii
from customer_service.storage import (
    MAX_ATTEMPTS,
    Conversation,
    ConversationState,
    ConversationStore,
    NewMessage,
    Role,
    StoredMessage,
    backoff,
)
from customer_service.templates import IntentAction, TemplateBook

log = logging.getLogger(__name__)


class AnswerKind(StrEnum):
    TEMPLATE = "template"
    RETRIEVAL = "retrieval"
    CLARIFY = "clarify"
    FALLBACK = "fallback"
    HANDOFF = "handoff"
    HANDBACK = "handback"
    SILENT = "silent"  # a human agent has the conversation


class GenerationOutcome(StrEnum):
    """What became of a generated answer (``None`` on a reply: none was attempted)."""

    SHOWN = "shown"  # passed the grounding check and replaced the extractive answer
    REJECTED = "rejected"  # failed the grounding check: the extractive answer was shown
    FAILED = "failed"  # the generator raised: the extractive answer was shown


@dataclass(frozen=True)
class DialoguePolicy:
    """Knobs of the dialogue manager (from the app settings)."""

    template_threshold: float = 0.5
    clarify_margin: float = 0.12
    clarify_min_probability: float = 0.2
    fallback_after: int = 2
    retrieval_k: int = 3
    history_turns: int = 1
    min_support_in_scope: float = 0.2
    min_support_out_of_scope: float = 0.5
    generation_passages: int = 3
    grounding_min_overlap: float = 0.7

    def __post_init__(self) -> None:
        for name in (
            "template_threshold",
            "clarify_min_probability",
            "min_support_in_scope",
            "min_support_out_of_scope",
            "grounding_min_overlap",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}={value!r}: must be within [0, 1]")
        if not 0.0 <= self.clarify_margin < 1.0:
            raise ValueError(f"clarify_margin={self.clarify_margin!r}: must be within [0, 1)")
        if self.fallback_after < 1:
            raise ValueError(f"fallback_after={self.fallback_after!r}: must be >= 1")
        if self.retrieval_k < 1:
            raise ValueError(f"retrieval_k={self.retrieval_k!r}: must be >= 1")
        if self.generation_passages < 1:
            raise ValueError(f"generation_passages={self.generation_passages!r}: must be >= 1")


@dataclass
class BotReply:
    """What ``/chat`` returns for one customer message."""

    conversation_id: str
    state: ConversationState
    kind: AnswerKind
    answer: str | None
    intent: str | None
    confidence: float | None
    citations: list[dict[str, Any]] = field(default_factory=list)
    options: list[dict[str, str]] = field(default_factory=list)
    resolved_query: str | None = None
    user_message_id: int | None = None
    message_id: int | None = None
    generated: bool = False  # the answer is the generator's text (grounded), not extractive
    generation: GenerationOutcome | None = None
    grounding_failure: str | None = None  # why a generated answer was not shown
    language: str = "en"  # the language of the pipeline that answered


HANDOFF_MESSAGE = (
    "I'm passing you to one of our support team. Please stay in this chat: "
    "a colleague will reply here."
)
FALLBACK_MESSAGE = (
    "Sorry, I couldn't find an answer to that in our help centre. Could you rephrase it, "
    "or press \u201ctalk to a human\u201d?"
)
HANDBACK_MESSAGE = "You're back with the virtual assistant. How else can I help?"
GREETING = (
    "Hi, I'm the Bramble Bank assistant. Ask me anything about your account, cards or payments."
)
EN_TEXTS = BotTexts(
    greeting=GREETING,
    handoff=HANDOFF_MESSAGE,
    fallback=FALLBACK_MESSAGE,
    handback=HANDBACK_MESSAGE,
    clarify_prefix="Just to be sure, do you mean: ",
    clarify_joiner=" or ",
    clarify_suffix="?",
)
BOT_TEXTS = {"en": EN_TEXTS, "zh": ZH_TEXTS}
#: Conversations whose last write (with the bot answering) each process remembers, so a
#: turn's first attempt skips reading the row (see ``Dialogue._recall``).
KNOWN_CONVERSATIONS = 4096

_FOLLOW_UP_START = re.compile(r"^(and|also|but|so|what about|how about|then|or)\b", re.I)
_ANAPHORA = re.compile(r"\b(that|it|this|those|these|them|there|one|same)\b", re.I)


def is_follow_up(text: str) -> bool:
    """Whether ``text`` leans on the previous turn ("and how long does that take?")."""
    words = text.split()
    if not words:
        return False
    if _FOLLOW_UP_START.match(text.strip()):
        return True
    return len(words) <= 8 and bool(_ANAPHORA.search(text))


def choose_option(text: str, options: list[str], titles: dict[str, str]) -> str | None:
    """The offered intent the customer picked by number, title or label, if any."""
    cleaned = text.strip().lower().rstrip(".!?")
    for index, intent in enumerate(options, start=1):
        title = titles.get(intent, intent).lower()
        if cleaned in {str(index), f"({index})", intent.lower(), title} or (
            len(cleaned) > 3 and (cleaned in title or title in cleaned)
        ):
            return intent
    return None


class DialogueManager:
    """Runs conversations: stores every turn and decides the bot's answers.

    Args:
        store: conversation repository.
        intents: intent model with its calibrated threshold.
        knowledge_base: passages for retrieval answers.
        templates: per-intent answer templates.
        policy: thresholds of the policy above.
        generator: writes retrieval answers (English only); ``None`` keeps them extractive.
        language: the language of ``intents``, ``knowledge_base`` and ``templates``
            (the default one).
        extra_languages: the pipelines of the other languages served; each message
            goes to the pipeline of its language (:func:`languages.choose_language`).
    """

    def __init__(
        self,
        store: ConversationStore,
        intents: IntentModel,
        knowledge_base: KnowledgeBase,
        templates: TemplateBook,
        policy: DialoguePolicy | None = None,
        generator: AnswerGenerator | None = None,
        *,
        language: str = "en",
        extra_languages: Sequence[LanguagePipeline] = (),
    ) -> None:
        self.language = language
        self.extra_languages = {p.language: p for p in extra_languages}
        self.store = store
        self.intents = intents
        self.kb = knowledge_base
        self.templates = templates
        self.policy = policy or DialoguePolicy()
        self.generator = generator
        self._known: OrderedDict[str, Conversation] = OrderedDict()
        self._known_lock = threading.Lock()

    def start(self, client_id: str) -> Conversation:
        return self.store.create_conversation(client_id)

    # languages ---------------------------------------------------------------
    @property
    def languages(self) -> list[str]:
        """The languages served, the default first."""
        return [self.language, *self.extra_languages]

    def pipeline(self, language: str) -> LanguagePipeline:
        """The pipeline of ``language`` (the default one is read at call time, so a
        model swapped in by ``reload_intent_model`` serves at once)."""
        if language == self.language:
            return LanguagePipeline(
                self.language, self.intents, self.kb, self.templates, BOT_TEXTS[self.language]
            )
        return self.extra_languages[language]

    def pipelines(self) -> list[LanguagePipeline]:
        """Every language's pipeline, the default first."""
        return [self.pipeline(language) for language in self.languages]

    def conversation_language(self, conversation_id: str, hint: str | None = None) -> str:
        """The language a conversation is held in (its customer's latest messages)."""
        if not self.extra_languages:
            return self.language
        previous = self.store.recent_user_texts(conversation_id, 3)[::-1]
        return choose_language("", self.languages, previous, hint)

    def _choose_pipeline(
        self, conversation: Conversation, text: str, hint: str | None
    ) -> LanguagePipeline:
        if not self.extra_languages:
            return self.pipeline(self.language)
        previous = self.store.recent_user_texts(conversation.id, 3)[::-1]
        return self.pipeline(choose_language(text, self.languages, previous, hint))

    # customer messages ----------------------------------------------------
    def handle_message(
        self, conversation_id: str, text: str, language_hint: str | None = None
    ) -> BotReply:
        """Store a customer message and the bot's answer (if the bot answers).

        With several languages served, the answer comes from the pipeline of the
        message's language; ``language_hint`` (the language the chat page shows)
        decides only when neither the message nor the conversation tells.

        The bot decides on the conversation as it read it, which takes a model call;
        an agent may take the conversation over meanwhile. The turn is then written
        with a compare-and-set, and on a conflict everything is decided again from the
        fresh row (now silent, if an agent has the chat), so no agent action is undone.

        Raises:
            SessionNotFoundError: no such conversation.
            ConversationConflictError: the conversation kept changing (409, retry).
        """
        masked = mask_pii(text.strip())
        known = self._recall(conversation_id)
        for attempt in range(MAX_ATTEMPTS):
            conversation = known or self.store.get_conversation(conversation_id)
            if conversation.state is not ConversationState.BOT:
                silent = self._store_for_agent(conversation_id, masked)
                if silent is not None:
                    return silent
                continue  # handed back to the bot meanwhile: answer as the bot
            pipeline = self._choose_pipeline(conversation, masked, language_hint)
            reply, bot = self._decide(conversation, masked, pipeline)
            reply.language = pipeline.language
            user = NewMessage(Role.USER, masked, intent=reply.intent, confidence=reply.confidence)
            try:
                stored = self.store.record_turn(conversation, [user, bot])
            except ConversationConflictError:
                self._forget(conversation_id)
                if known is None:
                    backoff(attempt)
                known = None  # a stale copy: read the row and decide again at once
                continue
            except SessionNotFoundError:
                self._forget(conversation_id)
                raise
            self._remember(conversation)
            reply.state = conversation.state
            reply.user_message_id, reply.message_id = stored[0].id, stored[1].id
            reply.citations = stored[1].citations
            return reply
        raise ConversationConflictError(
            f"conversation {conversation_id!r} kept changing; retry the message"
        )

    def _recall(self, conversation_id: str) -> Conversation | None:
        """A copy of the conversation as this process last wrote it with the bot
        answering, or ``None``.

        The first attempt of a turn decides on it instead of reading the row (one
        connection check-out and query fewer per turn). It is only ever used through the
        turn's compare-and-set on ``version``: if an agent, another worker or a purge
        changed the row since, the write fails, nothing is stored and the turn is decided
        again on the row it reads."""
        with self._known_lock:
            known = self._known.get(conversation_id)
            if known is None:
                return None
            self._known.move_to_end(conversation_id)
        # The turn mutates what it decides on; the remembered copy stays as stored. Its
        # only mutable field changed in place is the options list (evidence is replaced).
        fresh = copy.copy(known)
        fresh.pending_options = list(known.pending_options)
        return fresh

    def _remember(self, conversation: Conversation) -> None:
        """Keep ``conversation`` (just written) for the next turn, if the bot still has it."""
        if conversation.state is not ConversationState.BOT:
            self._forget(conversation.id)
            return
        with self._known_lock:
            self._known[conversation.id] = conversation
            self._known.move_to_end(conversation.id)
            while len(self._known) > KNOWN_CONVERSATIONS:
                self._known.popitem(last=False)

    def _forget(self, conversation_id: str) -> None:
        with self._known_lock:
            self._known.pop(conversation_id, None)

    def _store_for_agent(self, conversation_id: str, masked: str) -> BotReply | None:
        """Store a customer message of a conversation a human has; ``None`` (nothing
        stored) if the bot has it again."""

        def add(conversation: Conversation) -> list[NewMessage] | None:
            if conversation.state is ConversationState.BOT:
                return None
            return [NewMessage(Role.USER, masked)]

        conversation, stored = self.store.modify(conversation_id, add)
        if not stored:
            return None
        return BotReply(
            conversation.id,
            conversation.state,
            AnswerKind.SILENT,
            None,
            None,
            None,
            user_message_id=stored[0].id,
        )

    def _decide(
        self, conversation: Conversation, text: str, pipeline: LanguagePipeline | None = None
    ) -> tuple[BotReply, NewMessage]:
        pipeline = pipeline or self.pipeline(self.language)
        templates = pipeline.templates
        titles = {intent: templates.title(intent) for intent in conversation.pending_options}
        picked = (
            choose_option(text, conversation.pending_options, titles)
            if conversation.pending_options
            else None
        )
        if picked is None and conversation.pending_options and pipeline.language == "zh":
            number = zh_option_number(text)
            if number is not None and number <= len(conversation.pending_options):
                picked = conversation.pending_options[number - 1]
        conversation.pending_options = []
        if picked is not None:
            return self._answer_intent(conversation, picked, 1.0, text, None, pipeline)

        query = text
        resolved = None
        follows = is_follow_up_zh if pipeline.language == "zh" else is_follow_up
        follow_up = bool(self.policy.history_turns) and follows(text)
        if follow_up:
            previous = self.store.recent_user_texts(conversation.id, self.policy.history_turns)
            if previous:
                query = " ".join([*previous, text])
                resolved = query
        # One model for the whole message, even if a live upgrade swaps it meanwhile.
        intents = pipeline.intents
        prediction = intents.predict(query)
        top, second = prediction.top, prediction.second
        previous_intent = conversation.last_intent
        conversation.last_intent = top.label

        if self._should_clarify(prediction):
            conversation.pending_options = [top.label, second.label]
            options = [
                {"intent": label, "title": templates.title(label)}
                for label in conversation.pending_options
            ]
            answer = pipeline.texts.clarify([o["title"] for o in options])
            reply = BotReply(
                conversation.id,
                conversation.state,
                AnswerKind.CLARIFY,
                answer,
                top.label,
                top.probability,
                options=options,
                resolved_query=resolved,
            )
            return reply, NewMessage(
                Role.BOT, answer, AnswerKind.CLARIFY, top.label, top.probability
            )

        confident = top.probability >= max(self.policy.template_threshold, intents.threshold)
        # A follow-up on the topic that was just answered asks for something the
        # template did not say: answer it from the knowledge base with the context.
        repeats_topic = resolved is not None and top.label == previous_intent
        if confident and not repeats_topic:
            return self._answer_intent(
                conversation, top.label, top.probability, query, resolved, pipeline
            )
        return self._answer_from_knowledge_base(
            conversation,
            query,
            top.label,
            top.probability,
            resolved,
            in_scope=intents.in_scope(prediction),
            pipeline=pipeline,
        )

    def _should_clarify(self, prediction: IntentPrediction) -> bool:
        """Top two intents both plausible and too close to pick one."""
        top, second = prediction.top, prediction.second
        if not second.label or top.probability >= self.policy.template_threshold:
            return False
        close = top.probability - second.probability < self.policy.clarify_margin
        return close and second.probability >= self.policy.clarify_min_probability

    def _answer_intent(
        self,
        conversation: Conversation,
        intent: str,
        confidence: float,
        query: str,
        resolved: str | None,
        pipeline: LanguagePipeline | None = None,
    ) -> tuple[BotReply, NewMessage]:
        pipeline = pipeline or self.pipeline(self.language)
        template = pipeline.templates.get(intent)
        if template is not None and template.action is IntentAction.HANDOFF:
            return self._handoff(conversation, "customer_asked", intent, confidence, pipeline.texts)
        if template is not None and template.action is IntentAction.TEMPLATE:
            conversation.low_confidence_streak = 0
            answer = pipeline.templates.render(intent, query)
            reply = BotReply(
                conversation.id,
                conversation.state,
                AnswerKind.TEMPLATE,
                answer,
                intent,
                confidence,
                resolved_query=resolved,
            )
            return reply, NewMessage(Role.BOT, answer, AnswerKind.TEMPLATE, intent, confidence)
        # Same text as the one just classified: the encoder's cache makes retrieval free.
        return self._answer_from_knowledge_base(
            conversation, query, intent, confidence, resolved, in_scope=True, pipeline=pipeline
        )

    def _answer_from_knowledge_base(
        self,
        conversation: Conversation,
        query: str,
        intent: str,
        confidence: float,
        resolved: str | None,
        *,
        in_scope: bool,
        pipeline: LanguagePipeline | None = None,
    ) -> tuple[BotReply, NewMessage]:
        pipeline = pipeline or self.pipeline(self.language)
        passages = pipeline.kb.search(query, k=self.policy.retrieval_k)
        composed = compose_extractive_answer(query, passages)
        needed = (
            self.policy.min_support_in_scope if in_scope else self.policy.min_support_out_of_scope
        )
        supported = bool(composed.text) and composed.support >= needed
        if supported:
            conversation.low_confidence_streak = 0
            text, sources, outcome, failure = composed.text, composed.citations, None, None
            # SmolLM2 and the grounding check read English only.
            if self.generator is not None and pipeline.language == "en":
                text, sources, outcome, failure = self._generated_answer(
                    self.generator, query, passages, composed
                )
            citations = [c.as_dict() for c in sources]
            reply = BotReply(
                conversation.id,
                conversation.state,
                AnswerKind.RETRIEVAL,
                text,
                intent,
                confidence,
                citations=citations,
                resolved_query=resolved,
                generated=outcome is GenerationOutcome.SHOWN,
                generation=outcome,
                grounding_failure=failure,
            )
            # Only the text shown is stored.
            bot = NewMessage(Role.BOT, text, AnswerKind.RETRIEVAL, intent, confidence, citations)
            return reply, bot
        conversation.low_confidence_streak += 1
        if conversation.low_confidence_streak >= self.policy.fallback_after:
            return self._handoff(
                conversation, "repeated_low_confidence", intent, confidence, pipeline.texts
            )
        fallback = pipeline.texts.fallback
        reply = BotReply(
            conversation.id,
            conversation.state,
            AnswerKind.FALLBACK,
            fallback,
            intent,
            confidence,
            resolved_query=resolved,
        )
        return reply, NewMessage(Role.BOT, fallback, AnswerKind.FALLBACK, intent, confidence)

    def _generated_answer(
        self,
        generator: AnswerGenerator,
        query: str,
        passages: list[RetrievedPassage],
        extractive: ExtractiveAnswer,
    ) -> tuple[str, list[Citation], GenerationOutcome, str | None]:
        """The generated answer if it passes the grounding check, else the extractive one.

        Returns:
            ``(text, citations, outcome, reason the generated text was not shown)``.
        """
        given = passages[: self.policy.generation_passages]
        try:
            # The model sees the masked question; its text is masked too, like every
            # stored message, before it is checked and shown.
            generated = mask_pii(generator.generate(query, given))
        except Exception as exc:  # a broken generator must not break the chat
            log.error("answer generation failed, showing the extractive answer: %r", exc)
            reason = f"generation failed ({type(exc).__name__}; details in the server log)"
            return extractive.text, extractive.citations, GenerationOutcome.FAILED, reason
        result = check_grounding(generated, given, self.policy.grounding_min_overlap)
        if not result.grounded:
            log.info("generated answer rejected by the grounding check: %s", result.failure)
            reason = result.failure or "not grounded"
            return extractive.text, extractive.citations, GenerationOutcome.REJECTED, reason
        text, citations = render_grounded_answer(result, given)
        return text, citations, GenerationOutcome.SHOWN, None

    def _handoff(
        self,
        conversation: Conversation,
        reason: str,
        intent: str | None,
        confidence: float | None,
        texts: BotTexts = EN_TEXTS,
    ) -> tuple[BotReply, NewMessage]:
        conversation.state = ConversationState.WAITING_FOR_AGENT
        conversation.handoff_reason = reason
        conversation.handoff_at = time.time()
        conversation.handoff_count += 1
        conversation.low_confidence_streak = 0
        conversation.collect_handoff_evidence = True  # the store records the turns
        reply = BotReply(
            conversation.id,
            conversation.state,
            AnswerKind.HANDOFF,
            texts.handoff,
            intent,
            confidence,
        )
        return reply, NewMessage(Role.BOT, texts.handoff, AnswerKind.HANDOFF, intent, confidence)

    # hand-off ----------------------------------------------------------------
    def request_handoff(
        self,
        conversation_id: str,
        reason: str = "customer_button",
        language_hint: str | None = None,
    ) -> StoredMessage | None:
        """Put a conversation in the agent queue ("talk to a human"); idempotent."""
        texts = BOT_TEXTS[self.conversation_language(conversation_id, language_hint)]

        def hand_off(conversation: Conversation) -> list[NewMessage] | None:
            if conversation.state is not ConversationState.BOT:
                return None
            return [self._handoff(conversation, reason, None, None, texts)[1]]

        _, stored = self.store.modify(conversation_id, hand_off)
        return stored[0] if stored else None

    def agent_reply(self, conversation_id: str, agent_name: str, text: str) -> StoredMessage:
        """Store an agent's message; the conversation is then with the agent."""

        def take_over(conversation: Conversation) -> list[NewMessage]:
            if conversation.state is ConversationState.BOT:
                # An agent may step into a bot conversation from the queue page: that
                # is a hand-off too.
                conversation.handoff_count += 1
                conversation.handoff_reason = "agent_joined"
                conversation.handoff_at = time.time()
                conversation.collect_handoff_evidence = True
            conversation.state = ConversationState.WITH_AGENT
            conversation.agent_name = agent_name
            conversation.pending_options = []
            return [NewMessage(Role.AGENT, text, "agent")]

        return self.store.modify(conversation_id, take_over)[1][0]

    def hand_back(self, conversation_id: str) -> StoredMessage:
        """Return the conversation to the bot.

        Raises:
            InvalidStateError: the bot already has the conversation.
        """
        handback = BOT_TEXTS[self.conversation_language(conversation_id)].handback

        def give_back(conversation: Conversation) -> list[NewMessage]:
            if conversation.state is ConversationState.BOT:
                raise InvalidStateError(f"conversation {conversation_id!r} is already with the bot")
            conversation.state = ConversationState.BOT
            conversation.low_confidence_streak = 0
            conversation.pending_options = []
            return [NewMessage(Role.BOT, handback, AnswerKind.HANDBACK)]

        return self.store.modify(conversation_id, give_back)[1][0]
