"""Keel finance monitor: Kafka-streaming topic + sentiment tagging, trend windows and alerts."""

from finance_monitor.errors import (
    FinanceMonitorError,
    InvalidMessageError,
    ModelPreparationError,
    RuleConfigError,
)

__all__ = [
    "FinanceMonitorError",
    "InvalidMessageError",
    "ModelPreparationError",
    "RuleConfigError",
]
