"""Masking of personal data: card numbers, IBANs, e-mail addresses, phone numbers and
PRC resident ID numbers.

Every text goes through :func:`mask_pii` before it is stored, exported or logged.

Detection runs on a normalised copy of the text, so that the usual ways of writing the
same number all look alike: NFKC (full-width digits and punctuation become ASCII),
every Unicode decimal digit becomes its ASCII digit, invisible format characters
(zero-width spaces, soft hyphens, direction marks) are dropped, and any run of up to
three separators (spaces, dots, dashes of every kind, slashes, underscores) may sit
between digit groups. Each candidate is then checked (Luhn for cards, mod-97 and the
country's length for IBANs, ISO 7064 MOD 11-2 and the birth date for PRC ID numbers,
the ``phonenumbers`` metadata for phone numbers), so order numbers, amounts and dates
are kept. The masked spans are mapped back onto the original text: everything that is
not personal data is returned exactly as it came in.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable

import phonenumbers

CARD_MASK = "[CARD]"
EMAIL_MASK = "[EMAIL]"
PHONE_MASK = "[PHONE]"
IBAN_MASK = "[IBAN]"
ID_MASK = "[ID]"

# Regions whose national formats (no "+country code") are read as phone numbers:
# the bank's home market, North America and mainland China (the bilingual demo).
PHONE_REGIONS = ("GB", "US", "CN")
# Past this many digits in one text, phone numbers are not verified one by one (the
# matcher costs ~1 ms per candidate): every run of 7+ digits is masked as a phone
# number instead. Customer messages stay far below it; a 100 000-character wall of
# digits would otherwise cost seconds of CPU per request.
MAX_VERIFIED_DIGITS = 1000

# One to three separator characters between digit groups (after NFKC, which maps
# full-width forms and no-break spaces to their ASCII look-alikes).
_SEP_CHARS = r" \t./_\-\u2010-\u2015\u2212\u2043\u30fc\u00b7"
_SEP = f"[{_SEP_CHARS}]{{1,3}}"
_SEP_OPT = f"[{_SEP_CHARS}]{{0,3}}"

_EMAIL = re.compile(r"[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)*\.[^\W\d_]{2,}")
_DIGIT_RUN = re.compile(f"[0-9]+(?:{_SEP}[0-9]+)*")
_DIGIT_GROUP = re.compile(r"[0-9]+")
_PHONE_RUN = re.compile(f"\\+?{_DIGIT_RUN.pattern}")
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}")
_IBAN_TOKEN = re.compile(f"{_SEP_OPT}([A-Za-z0-9]+)")
_PRC_ID = re.compile(
    r"(?<![0-9A-Za-z])[0-9](?:" + _SEP_OPT + r"[0-9]){16}" + _SEP_OPT + r"[0-9Xx](?![0-9A-Za-z])"
)
_CN_MOBILE = re.compile(
    r"(?<![0-9+])(?:(?:\+|00)86" + _SEP_OPT + r")?1[3-9](?:" + _SEP_OPT + r"[0-9]){9}(?![0-9])"
)
_ANY_DIGIT = re.compile(r"[0-9]")
_ANY_UNICODE_DIGIT = re.compile(r"\d")  # str patterns: every Unicode decimal digit (Nd)
_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]")

# Lengths of the IBANs of the countries that issue them (SWIFT IBAN registry).
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
_LUHN_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # digit -> digit sum of twice the digit
_PRC_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_PRC_ID_CHECK = "10X98765432"

Span = tuple[int, int, str]


# checksums ------------------------------------------------------------------------
def luhn_valid(digits: str) -> bool:
    """Whether a string of ASCII digits passes the Luhn check (card numbers)."""
    odd = sum(map(int, digits[-1::-2]))
    even = sum(_LUHN_DOUBLED[int(char)] for char in digits[-2::-2])
    return (odd + even) % 10 == 0


def iban_valid(iban: str) -> bool:
    """Whether ``iban`` (any case, no separators) has its country's length and mod-97 = 1."""
    iban = iban.upper()
    if _IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isascii() or not iban.isalnum():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def prc_id_valid(number: str) -> bool:
    """Whether an 18-character PRC resident ID number has a valid ISO 7064 MOD 11-2
    check character and a plausible birth date (characters 7-14, ``YYYYMMDD``)."""
    number = number.upper()
    if len(number) != 18 or not number[:17].isdigit():
        return False
    year, month, day = int(number[6:10]), int(number[10:12]), int(number[12:14])
    if not (1900 <= year <= 2099 and 1 <= month <= 12 and 1 <= day <= 31):
        return False
    total = sum(int(char) * weight for char, weight in zip(number, _PRC_ID_WEIGHTS, strict=False))
    return _PRC_ID_CHECK[total % 11] == number[17]


# detectors: each returns non-overlapping (start, end, mask) spans of the flat text ---
def _emails(text: str) -> list[Span]:
    if "@" not in text:
        return []
    return [(m.start(), m.end(), EMAIL_MASK) for m in _EMAIL.finditer(text)]


def _ibans(text: str) -> list[Span]:
    spans: list[Span] = []
    for start in _IBAN_START.finditer(text):
        if spans and start.start() < spans[-1][1]:
            continue
        length = _IBAN_LENGTHS.get(start.group(0)[:2].upper())
        if length is None:
            continue
        compact, end = start.group(0), start.end()
        # Grow token by token (any grouping, any separator) up to the country's length.
        while len(compact) < length:
            token = _IBAN_TOKEN.match(text, end)
            if token is None:
                break
            compact, end = compact + token.group(1), token.end()
        if len(compact) == length and iban_valid(compact):
            spans.append((start.start(), end, IBAN_MASK))
    return spans


def _prc_ids(text: str) -> list[Span]:
    return [
        (m.start(), m.end(), ID_MASK)
        for m in _PRC_ID.finditer(text)
        if prc_id_valid(_NOT_ALNUM.sub("", m.group(0)))
    ]


class _LuhnSums:
    """Luhn checks of any slice of a digit string in O(1) (prefix sums per parity), so
    that trying every window of a long run of digit groups stays linear."""

    def __init__(self, digits: str) -> None:
        # plain[p][i] / doubled[p][i]: sum over positions j < i with j % 2 == p of the
        # digit / of its Luhn-doubled value.
        self.plain = ([0], [0])
        self.doubled = ([0], [0])
        for position, char in enumerate(digits):
            value, parity = int(char), position % 2
            for p in (0, 1):
                self.plain[p].append(self.plain[p][-1] + (value if p == parity else 0))
                self.doubled[p].append(
                    self.doubled[p][-1] + (_LUHN_DOUBLED[value] if p == parity else 0)
                )

    def valid(self, start: int, end: int) -> bool:
        """Whether ``digits[start:end]`` passes Luhn: the last digit is kept, every
        second one from it leftwards doubled."""
        kept = (end - 1) % 2
        total = (
            self.plain[kept][end]
            - self.plain[kept][start]
            + self.doubled[1 - kept][end]
            - self.doubled[1 - kept][start]
        )
        return total % 10 == 0


def _cards(text: str) -> list[Span]:
    """13-19 digits over consecutive digit groups that pass the Luhn check."""
    spans: list[Span] = []
    for run in _DIGIT_RUN.finditer(text):
        groups = [(g.start(), g.end()) for g in _DIGIT_GROUP.finditer(text, run.start(), run.end())]
        # Digit offsets of each group's end within the run's digits.
        ends, total = [], 0
        for first, last in groups:
            total += last - first
            ends.append(total)
        if total < 13:
            continue
        luhn = _LuhnSums("".join(text[first:last] for first, last in groups))
        index = 0
        while index < len(groups):
            best, begin = None, ends[index - 1] if index else 0
            for last in range(index, len(groups)):
                length = ends[last] - begin
                if length > 19:
                    break
                if length >= 13 and luhn.valid(begin, ends[last]):
                    best = last  # keep growing: the longest valid window wins
            if best is None:
                index += 1
                continue
            spans.append((groups[index][0], groups[best][1], CARD_MASK))
            index = best + 1
    return spans


def _cn_mobiles(text: str) -> list[Span]:
    return [(m.start(), m.end(), PHONE_MASK) for m in _CN_MOBILE.finditer(text)]


def _plausible_phone(match: phonenumbers.PhoneNumberMatch) -> bool:
    """A match of the ``phonenumbers`` matcher that is worth masking.

    International numbers (``+`` or ``00``) need 8-15 digits and a possible length;
    national ones 7-12 digits and either a valid number of the region or 10+ digits
    (numbers in reserved ranges, like UK drama numbers, are still someone's data).
    Longer digit runs are references or accounts, left to the card and IBAN checks.
    """
    raw = match.raw_string.lstrip()
    digits = sum(char.isdigit() for char in raw)
    if raw.startswith(("+", "00")):
        return 8 <= digits <= 15 and phonenumbers.is_possible_number(match.number)
    return 7 <= digits <= 12 and (digits >= 10 or phonenumbers.is_valid_number(match.number))


def _phones(text: str) -> list[Span]:
    digits = len(_ANY_DIGIT.findall(text))
    if digits < 7:
        return []
    if digits > MAX_VERIFIED_DIGITS:
        return [
            (run.start(), run.end(), PHONE_MASK)
            for run in _PHONE_RUN.finditer(text)
            if len(_ANY_DIGIT.findall(run.group(0))) >= 7
        ]
    found: list[tuple[int, int]] = []
    for region in PHONE_REGIONS:
        matcher = phonenumbers.PhoneNumberMatcher(
            text, region, leniency=phonenumbers.Leniency.POSSIBLE
        )
        found.extend((m.start, m.end) for m in matcher if _plausible_phone(m))
    merged: list[Span] = []
    for start, end in sorted(found):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]), PHONE_MASK)
        else:
            merged.append((start, end, PHONE_MASK))
    return merged


# Most specific first: an IBAN or an ID number holds digit runs a later detector
# would otherwise take for a card or a phone number.
_DETECTORS: tuple[Callable[[str], list[Span]], ...] = (
    _emails,
    _ibans,
    _prc_ids,
    _cards,
    _cn_mobiles,
    _phones,
)


# normalisation with a way back to the original text ---------------------------------
def _normalise_char(char: str) -> str:
    if unicodedata.category(char) == "Cf":
        return ""  # zero-width spaces and the like, used to split numbers invisibly
    folded = unicodedata.normalize("NFKC", char)
    return "".join(
        str(unicodedata.digit(c)) if unicodedata.category(c) == "Nd" else c for c in folded
    )


class _Document:
    """The text being masked: a flat normalised string for the detectors, and for each
    piece of it the span of the original text it came from."""

    def __init__(self, text: str) -> None:
        self.original = text
        # ASCII text is its own normal form: work on the string directly.
        self.ascii = text.isascii()
        self.text = text
        # (flat text, original start, original end, is a mask) per piece.
        self.pieces: list[tuple[str, int, int, bool]] = []
        if not self.ascii:
            # ASCII characters are their own normal form (most of a mixed text).
            self.pieces = [
                (c if c.isascii() else _normalise_char(c), i, i + 1, False)
                for i, c in enumerate(text)
            ]
            self.text = "".join(piece[0] for piece in self.pieces)

    def replace(self, spans: list[Span]) -> None:
        """Replace flat-text spans (sorted, non-overlapping) by their masks."""
        if self.ascii:
            parts, last = [], 0
            for start, end, mask in spans:
                parts.extend((self.text[last:start], mask))
                last = end
            self.text = "".join([*parts, self.text[last:]])
            return
        owner: list[int] = []  # piece index of every flat character
        for index, piece in enumerate(self.pieces):
            owner.extend([index] * len(piece[0]))
        pieces, next_piece = [], 0
        for start, end, mask in spans:
            first, last = owner[start], owner[end - 1]
            if first < next_piece:
                continue  # inside a piece already replaced
            pieces.extend(self.pieces[next_piece:first])
            pieces.append((mask, self.pieces[first][1], self.pieces[last][2], True))
            next_piece = last + 1
        pieces.extend(self.pieces[next_piece:])
        self.pieces = pieces
        self.text = "".join(piece[0] for piece in pieces)

    def render(self) -> str:
        if self.ascii:
            return self.text
        return "".join(
            piece[0] if piece[3] else self.original[piece[1] : piece[2]] for piece in self.pieces
        )


def _may_hold_pii(text: str) -> bool:
    """Whether any detector could match: an ``@`` or a digit, after normalisation.

    Every detector needs one of them. For non-ASCII text the check runs on the whole
    string's NFKC form (fullwidth and other compatibility forms fold to ``@`` and digits;
    ``\\d`` matches every Unicode decimal digit), so most text, Chinese included, skips
    the character-by-character normalisation of :class:`_Document`.
    """
    if text.isascii():
        return "@" in text or _ANY_DIGIT.search(text) is not None
    folded = unicodedata.normalize("NFKC", text)
    return "@" in folded or _ANY_UNICODE_DIGIT.search(folded) is not None


def mask_pii(text: str) -> str:
    """Replace personal data with placeholders.

    Args:
        text: any user, agent or bot text.

    Returns:
        The text with ``[CARD]``, ``[IBAN]``, ``[EMAIL]``, ``[PHONE]`` and ``[ID]`` in
        place of card numbers (Luhn), IBANs (mod-97), e-mail addresses, phone numbers
        (``phonenumbers``; mainland mobiles with or without +86) and PRC resident ID
        numbers (MOD 11-2). Amounts, dates, order numbers and short numbers are kept,
        and so is every character outside a masked span.
    """
    if not text or not _may_hold_pii(text):
        return text  # nothing any detector could match
    document = _Document(text)
    for detect in _DETECTORS:
        spans = detect(document.text)
        if spans:
            document.replace(spans)
    return document.render()


class PiiMaskingFilter(logging.Filter):
    """A logging filter that masks personal data in every record it sees.

    Installed on handlers (not loggers) so that records propagated from any logger,
    uvicorn's access log included, are masked before they are written.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's to report
            return True
        masked = mask_pii(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text: the traceback is rendered once, masked.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_pii(record.exc_text)
        return True


def install_log_masking(logger_names: tuple[str, ...] = ("", "uvicorn", "uvicorn.access")) -> None:
    """Add :class:`PiiMaskingFilter` to every handler of the named loggers (idempotent)."""
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, PiiMaskingFilter) for f in handler.filters):
                handler.addFilter(PiiMaskingFilter())
