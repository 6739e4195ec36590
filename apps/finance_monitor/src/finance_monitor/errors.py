"""The finance monitor's exception family: one root, ``FinanceMonitorError``."""

from __future__ import annotations


class FinanceMonitorError(Exception):
    """Root of every error raised by the finance monitor."""


class InvalidMessageError(FinanceMonitorError, ValueError):
    """A raw stream message failed validation; ``reason`` says why (goes to the DLQ)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class RuleConfigError(FinanceMonitorError, ValueError):
    """An alert rule or silence definition is invalid; names the field and the value."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}={value!r}: {reason}")


class ModelPreparationError(FinanceMonitorError):
    """Training, compressing or loading the scoring models failed."""


class NotFoundError(FinanceMonitorError, LookupError):
    """A requested alert, rule or silence does not exist."""
