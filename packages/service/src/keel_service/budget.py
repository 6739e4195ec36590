"""The one training-budget vocabulary of every app's ``prepare`` (and its settings)."""

from __future__ import annotations

import argparse
from enum import StrEnum

#: Names earlier releases used, still accepted: ``head`` (support bot) and ``small``
#: (finance monitor) were the fast tier.
LEGACY_ALIASES = {"head": "fast", "small": "fast"}


class Budget(StrEnum):
    """How hard ``prepare`` trains: ``fast`` (frozen encoder, seconds to minutes) or
    ``full`` (fine-tuning, the production recipe)."""

    FAST = "fast"
    FULL = "full"

    @classmethod
    def _missing_(cls, value: object) -> Budget | None:
        if isinstance(value, str):
            alias = LEGACY_ALIASES.get(value.strip().lower())
            if alias is not None:
                return cls(alias)
        return None


def budget_argument(text: str) -> Budget:
    """``argparse`` type: a budget name (or a legacy alias), else a clear usage error."""
    try:
        return Budget(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid budget {text!r}: use {' or '.join(b.value for b in Budget)}"
        ) from None
