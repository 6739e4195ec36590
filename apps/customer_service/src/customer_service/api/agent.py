"""Agent endpoints: the hand-off queue, replying as a human, handing back to the bot."""

from __future__ import annotations

from fastapi import APIRouter

from customer_service.api.chat import message_out
from customer_service.api.deps import AgentKeyDep, RuntimeDep, ServicesDep
from customer_service.api.schemas import (
    AgentReplyRequest,
    HandoffTurn,
    MessageOut,
    QueueItem,
    SessionId,
)
from customer_service.handoffs import explain_handoff
from customer_service.storage import Role

router = APIRouter(prefix="/agent", tags=["agent"], dependencies=[AgentKeyDep])


@router.get("/queue", response_model=list[QueueItem])
def agent_queue(services: ServicesDep, runtime: RuntimeDep) -> list[QueueItem]:
    """Conversations waiting for an agent or with one, longest waiting first."""
    items = []
    for conversation in services.store.queue():
        last = services.store.recent_user_texts(conversation.id, 1)
        items.append(
            QueueItem(
                session_id=conversation.id,
                state=conversation.state.value,
                handoff_reason=conversation.handoff_reason,
                handoff_why=explain_handoff(
                    conversation.handoff_reason, conversation.handoff_evidence
                ),
                handoff_turns=[
                    HandoffTurn(**turn)
                    for turn in (conversation.handoff_evidence or {}).get("turns", [])
                ],
                waiting_since=conversation.handoff_at,
                agent_name=conversation.agent_name,
                last_customer_message=last[0] if last else None,
            )
        )
    runtime.metrics.queue_length.set(len(items))
    return items


@router.post("/sessions/{session_id}/reply", response_model=MessageOut)
def agent_reply(
    session_id: SessionId, body: AgentReplyRequest, services: ServicesDep
) -> MessageOut:
    """Reply to the customer as a human; the bot stays silent until hand-back."""
    message = services.dialogue.agent_reply(session_id, body.agent, body.message)
    assert message.role is Role.AGENT
    return message_out(message)


@router.post("/sessions/{session_id}/hand-back", response_model=MessageOut)
def hand_back(session_id: SessionId, services: ServicesDep) -> MessageOut:
    """Give the conversation back to the bot (409 if the bot already has it)."""
    return message_out(services.dialogue.hand_back(session_id))
