"""Why a conversation was handed to an agent, in words for the agent page."""

from __future__ import annotations

from typing import Any

_REASONS = {
    "customer_asked": "The customer asked for a person",
    "customer_button": "The customer pressed \u201ctalk to a human\u201d",
    "agent_joined": "An agent stepped in from the queue",
}
_LOW_CONFIDENCE_ANSWERS = {"fallback", "handoff"}


def explain_handoff(reason: str | None, evidence: dict[str, Any] | None) -> str | None:
    """One line saying why the bot handed over, from the reason code and its evidence.

    Args:
        reason: the conversation's ``handoff_reason`` (``None``: never handed over).
        evidence: the stored evidence (``{"reason", "turns"}``), if any.

    Returns:
        For example "The bot could not answer confidently 2 times in a row (last
        intent card_arrival at 31%)", or ``None`` without a hand-off.
    """
    if reason is None:
        return None
    turns = list((evidence or {}).get("turns") or [])
    last = turns[-1] if turns else None
    detail = ""
    if last is not None and last.get("intent"):
        confidence = last.get("confidence")
        detail = f"intent {last['intent']}" + (
            f" at {confidence:.0%}" if isinstance(confidence, int | float) else ""
        )
    if reason == "repeated_low_confidence":
        streak = 0
        for turn in reversed(turns):
            if turn.get("answer") not in _LOW_CONFIDENCE_ANSWERS:
                break
            streak += 1
        times = f" {streak} times in a row" if streak > 1 else ""
        line = f"The bot could not answer confidently{times}"
        return f"{line} (last {detail})" if detail else line
    line = _REASONS.get(reason, f"Handed over ({reason})")
    if reason == "customer_asked" and detail:
        return f"{line} ({detail})"
    return line
