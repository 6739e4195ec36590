"""Masking of personal data (card numbers, e-mail addresses, phone numbers).

Every text goes through :func:`mask_pii` before it is stored or logged.
"""

from __future__ import annotations

import re

CARD_MASK = "[CARD]"
EMAIL_MASK = "[EMAIL]"
PHONE_MASK = "[PHONE]"
IBAN_MASK = "[IBAN]"

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
# 13-19 digits, optionally grouped by spaces or dashes (card numbers).
_CARD_CANDIDATE = re.compile(r"(?<![\d])(?:\d[ \-]?){12,18}\d(?![\d])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
# Phone numbers: optional +country code, 7-15 digits with spaces, dots, dashes, brackets.
_PHONE = re.compile(r"(?<![\w])(?:\+\d{1,3}[ .\-]?)?(?:\(?\d{2,5}\)?[ .\-]?){2,5}\d{2,5}(?![\w])")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    # Long digit runs that are not valid card numbers may still be phone numbers
    # or account numbers; mask them as cards only when the checksum fits or they
    # are 15+ digits (too long for a phone number).
    if _luhn_valid(digits) or len(digits) >= 16:
        return CARD_MASK
    return match.group(0)


def _mask_phone(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if 7 <= len(digits) <= 15:
        return PHONE_MASK
    return match.group(0)


def mask_pii(text: str) -> str:
    """Replace card numbers, IBANs, e-mail addresses and phone numbers with placeholders.

    Args:
        text: any user, agent or bot text.

    Returns:
        The text with ``[CARD]``, ``[IBAN]``, ``[EMAIL]`` and ``[PHONE]`` in place of
        the personal data. Amounts, dates and short numbers are kept.
    """
    masked = _EMAIL.sub(EMAIL_MASK, text)
    masked = _IBAN.sub(IBAN_MASK, masked)
    masked = _CARD_CANDIDATE.sub(_mask_card, masked)
    masked = _PHONE.sub(_mask_phone, masked)
    return masked
