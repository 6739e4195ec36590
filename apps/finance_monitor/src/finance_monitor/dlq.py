"""Dead-letter envelopes: what a rejected record looks like on the DLQ topic.

The value is the record's original bytes when they fit; otherwise a truncated copy,
and the headers then carry the original size and SHA-256 so the record can still be
identified (and matched against the source topic).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# Well below the topic's 2 MB limit, leaving room for the headers and the batch overhead.
DEFAULT_MAX_VALUE_BYTES = 1_900_000
MAX_REASON_BYTES = 2000


@dataclass(frozen=True)
class DeadLetter:
    """A record ready to send to the DLQ topic."""

    value: bytes
    headers: list[tuple[str, bytes]]
    truncated: bool


def _reason_bytes(reason: str) -> bytes:
    # errors="replace": a reason quoting bad input must never fail to encode.
    data = reason.encode("utf-8", errors="replace")
    if len(data) <= MAX_REASON_BYTES:
        return data
    return data[:MAX_REASON_BYTES].decode("utf-8", errors="ignore").encode()


def dead_letter(
    value: bytes | None,
    *,
    reason: str,
    stage: str,
    topic: str,
    partition: int,
    offset: int,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
) -> DeadLetter:
    """Build the DLQ record of one rejected input record.

    Args:
        value: the original record value (``None`` for a tombstone).
        reason: why it was rejected (names the field); capped at 2000 bytes.
        stage: ``scorer`` or ``trend``.
        topic: source topic. partition / offset: where the record came from.
        max_value_bytes: longer values are cut to this many bytes.

    Returns:
        The value and headers (``dlq.reason``, ``dlq.stage``, ``dlq.source``,
        ``dlq.size``, ``dlq.sha256``, and ``dlq.truncated`` when the value was cut).
    """
    original = value if value is not None else b""
    truncated = len(original) > max_value_bytes
    headers = [
        ("dlq.reason", _reason_bytes(reason)),
        ("dlq.stage", stage.encode()),
        ("dlq.source", f"{topic}/{partition}/{offset}".encode()),
        ("dlq.size", str(len(original)).encode()),
        ("dlq.sha256", hashlib.sha256(original).hexdigest().encode()),
    ]
    if truncated:
        headers.append(("dlq.truncated", b"true"))
    return DeadLetter(original[:max_value_bytes], headers, truncated)
