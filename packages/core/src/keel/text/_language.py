"""Language detection by script: Chinese, English (Latin script), mixed or undetermined.

A script rule rather than a statistical language identifier, because what the engine
must decide is how to tokenise and which texts a Chinese or an English model serves,
and for zh/en that follows from the script alone. It is deterministic, instant, has
no model file and no dependency, and it cannot be fooled by short texts the way
n-gram identifiers are ("OK", "iPhone 15"). What it does not do: tell French from
English (any Latin-script text is ``"en"``) or Japanese from Chinese (kanji are Han).
"""

from __future__ import annotations

from enum import StrEnum

from keel.text._normalize import normalize_text
from keel.text._scripts import HAN_CHAR, LATIN_WORD

# A Han character carries about as much as a Latin word, so the share compares
# characters with words: "我的iPhone坏了" is 4 Han characters and 1 word (0.8, Chinese).
ZH_MIN_SHARE = 0.6
EN_MAX_SHARE = 0.2


class Language(StrEnum):
    """Result of ``detect_language``."""

    ZH = "zh"
    EN = "en"
    MIXED = "mixed"
    UNDETERMINED = "und"


def han_share(text: str) -> float | None:
    """Han characters / (Han characters + Latin-script words), or None when there are
    neither (digits, punctuation, emoji, other scripts only)."""
    normalised = normalize_text(text)
    han = len(HAN_CHAR.findall(normalised))
    words = len(LATIN_WORD.findall(normalised))
    if han + words == 0:
        return None
    return han / (han + words)


def detect_language(text: str) -> Language:
    """The language of ``text`` by script.

    Returns:
        ``Language.ZH`` when Han characters make at least 60% of the Han characters +
        Latin words, ``Language.EN`` when they make at most 20%, ``Language.MIXED``
        in between, ``Language.UNDETERMINED`` when there is neither (``"12345"``,
        ``"🙂"``, Cyrillic). Compare with the string values (``"zh"``, ``"en"``,
        ``"mixed"``, ``"und"``).
    """
    share = han_share(text)
    if share is None:
        return Language.UNDETERMINED
    if share >= ZH_MIN_SHARE:
        return Language.ZH
    if share <= EN_MAX_SHARE:
        return Language.EN
    return Language.MIXED
