"""Customer endpoints: start a session, send a message, history, feedback, hand-off."""

from __future__ import annotations

import functools
import time
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from customer_service.api.deps import (
    ChatContext,
    ChatDep,
    RateLimitDep,
    RuntimeDep,
    ServicesDep,
    get_chat_context,
)
from customer_service.api.schemas import (
    MAX_ID,
    ChatRequest,
    ChatResponse,
    FeedbackRequest,
    HandoffRequest,
    MessageOut,
    SessionId,
    SessionOut,
    StartSessionRequest,
    StartSessionResponse,
    is_blank,
)
from customer_service.dialogue import BOT_TEXTS, EN_TEXTS, AnswerKind
from customer_service.storage import StoredMessage
from keel_service.fast_routes import find_route, install_fast_json_route

router = APIRouter(tags=["chat"])

GREETING = EN_TEXTS.greeting


def message_out(message: StoredMessage) -> MessageOut:
    return MessageOut(
        id=message.id,
        role=message.role.value,
        text=message.text,
        kind=message.kind,
        intent=message.intent,
        confidence=message.confidence,
        citations=message.citations,
        rating=message.rating,
        created_at=message.created_at,
    )


@router.post("/sessions", response_model=StartSessionResponse, dependencies=[RateLimitDep])
def start_session(
    services: ServicesDep, body: StartSessionRequest | None = None
) -> StartSessionResponse:
    """Start a conversation; the greeting is in the requested language when it is served,
    else in the default one."""
    languages = services.dialogue.languages
    language = body.language if body and body.language in languages else languages[0]
    conversation = services.dialogue.start(client_id="web")
    return StartSessionResponse(
        session_id=conversation.id,
        state=conversation.state.value,
        greeting=BOT_TEXTS[language].greeting,
        language=language,
        languages=languages,
    )


def json_response(model: BaseModel) -> Response:
    """``model`` as the JSON body FastAPI would send for it as a ``response_model``
    (pydantic's serializer, by alias), built on the handler's thread.

    A plain ``def`` endpoint that returns the model instead makes FastAPI validate it
    again on a second thread-pool hop and then serialise it on the event loop.
    """
    return Response(model.model_dump_json(by_alias=True), media_type="application/json")


@router.post("/chat", response_model=ChatResponse)
async def chat(body: ChatRequest, context: ChatDep) -> Response:
    """Send a customer message; returns the bot's answer (None while an agent has the chat)."""
    # The turn blocks (storage, maybe the encoder): it runs on keel_service's thread pool,
    # a cheaper hand-off than FastAPI's for a plain def endpoint, at most ``chat_threads``
    # turns at a time (keel_service.offload).
    runtime = context.runtime
    return await runtime.chat_lane.run(
        runtime.settings.chat_threads, functools.partial(answer_chat, body, context)
    )


async def chat_fast(body: ChatRequest, request: Request) -> Response:
    """``/chat`` for a well-formed JSON body, served by ``keel_service.fast_routes``: the
    same dependency and the same work as :func:`chat`."""
    return await chat(body, await get_chat_context(request))


def install_fast_path(app: FastAPI) -> None:
    """Answer well-formed ``/chat`` requests without FastAPI's per-request work (every
    other request, and the OpenAPI entry, stay with :func:`chat`'s route)."""
    install_fast_json_route(app, find_route(router.routes, "/chat"), ChatRequest, chat_fast)


def answer_chat(body: ChatRequest, context: ChatContext) -> Response:
    """``/chat``'s work, on a worker thread: checks, the dialogue turn, metrics, the JSON."""
    started = time.perf_counter()
    runtime, services = context
    limit = services.settings.max_message_chars
    if len(body.message) > limit:
        raise RequestValidationError(
            [
                {
                    "type": "string_too_long",
                    "loc": ("body", "message"),
                    "msg": f"message is {len(body.message)} characters long; the limit is {limit}",
                    "input": body.message[:50] + "...",
                    "ctx": {"max_length": limit},
                }
            ]
        )
    if is_blank(body.message):
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("body", "message"),
                    "msg": "message is blank",
                    "input": "",
                }
            ]
        )
    session_id = body.session_id or services.dialogue.start(client_id="api").id
    reply = services.dialogue.handle_message(session_id, body.message, body.language)
    metrics = runtime.metrics
    metrics.messages.labels(reply.kind.value).inc()
    if reply.intent:
        metrics.intents.labels(reply.intent).inc()
    if reply.confidence is not None:  # drift: the model's reading of this message
        metrics.intent_confidence.observe(reply.confidence)
        # the threshold of the pipeline that answered (each language has its own model)
        dialogue = services.dialogue
        served = reply.language in dialogue.languages
        intents = dialogue.pipeline(reply.language).intents if served else dialogue.intents
        if reply.confidence < intents.threshold:
            metrics.out_of_scope.inc()
    if reply.kind is AnswerKind.HANDOFF:
        metrics.handoffs.labels("bot").inc()
    if reply.generation is not None:
        metrics.generated_answers.labels(reply.generation.value).inc()
    metrics.chat_latency.observe(time.perf_counter() - started)
    answer = ChatResponse(
        session_id=reply.conversation_id,
        state=reply.state.value,
        kind=reply.kind.value,
        answer=reply.answer,
        intent=reply.intent,
        confidence=reply.confidence,
        citations=reply.citations,  # type: ignore[arg-type]
        options=reply.options,  # type: ignore[arg-type]
        resolved_query=reply.resolved_query,
        message_id=reply.message_id,
        user_message_id=reply.user_message_id,
        generated=reply.generated,
        grounding_failure=reply.grounding_failure,
        language=reply.language,
    )
    return json_response(answer)


@router.get("/sessions/{session_id}", response_model=SessionOut)
def session_history(
    session_id: SessionId,
    services: ServicesDep,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="only messages with a larger id")] = 0,
) -> SessionOut:
    """A conversation's state and messages (PII masked)."""
    conversation = services.store.get_conversation(session_id)
    history = services.store.history(session_id, after_id=after)
    return SessionOut(
        session_id=conversation.id,
        state=conversation.state.value,
        created_at=conversation.created_at,
        updated_at=conversation.updated_at,
        handoff_reason=conversation.handoff_reason,
        agent_name=conversation.agent_name,
        messages=[message_out(m) for m in history],
    )


@router.post("/sessions/{session_id}/feedback", status_code=204)
def give_feedback(
    session_id: SessionId, body: FeedbackRequest, services: ServicesDep, runtime: RuntimeDep
) -> None:
    """Thumbs up / down on a bot answer (a second vote replaces the first)."""
    services.store.set_feedback(
        session_id, body.message_id, 1 if body.rating == "up" else -1, body.comment
    )
    runtime.metrics.feedback.labels(body.rating).inc()


@router.post("/sessions/{session_id}/handoff", response_model=SessionOut)
def request_handoff(
    session_id: SessionId,
    services: ServicesDep,
    runtime: RuntimeDep,
    body: HandoffRequest | None = None,
) -> SessionOut:
    """ "Talk to a human": the conversation waits for an agent and the bot stops answering."""
    reason = body.reason if body else "customer_button"
    hint = body.language if body else None
    if services.dialogue.request_handoff(session_id, reason, hint) is not None:
        runtime.metrics.handoffs.labels("customer").inc()
    return session_history(session_id, services)
