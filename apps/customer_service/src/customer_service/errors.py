"""The app's exception family: one root, turned into HTTP responses only in ``api/``."""

from __future__ import annotations


class CustomerServiceError(Exception):
    """Root of every error raised by the customer-service app."""


class SessionNotFoundError(CustomerServiceError, LookupError):
    """No conversation with this id."""


class MessageNotFoundError(CustomerServiceError, LookupError):
    """No bot message with this id in the conversation."""


class DocumentNotFoundError(CustomerServiceError, LookupError):
    """No knowledge-base document with this id."""


class InvalidStateError(CustomerServiceError):
    """The conversation is not in a state that allows the requested action."""


class ConversationConflictError(InvalidStateError):
    """The conversation changed between reading and writing it (compare-and-set refused)."""


class DocumentFormatError(CustomerServiceError, ValueError):
    """A knowledge-base file or FAQ row cannot be read; names the file and line."""

    def __init__(self, reason: str, path: str | None = None, line: int | None = None) -> None:
        self.reason = reason
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = path + (f":{line}" if line is not None else "") + ": "
        super().__init__(where + reason)


class NotReadyError(CustomerServiceError):
    """Models or indexes are not loaded yet."""


class GeneratorUnavailableError(CustomerServiceError):
    """The answer generator (SmolLM2) is not installed or does not load."""
