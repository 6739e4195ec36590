"""Unicode normalisation shared by language detection, BM25 and the apps."""

from __future__ import annotations

import re
import unicodedata

# C0/C1 control characters except tab, newline and carriage return (turned into spaces).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[\s\u200b\ufeff]+")


def normalize_text(text: str, *, collapse_spaces: bool = True) -> str:
    """NFKC-normalise ``text``: full-width letters, digits and punctuation become their
    half-width forms (``ＡＢＣ１２３，`` -> ``ABC123,``), the ideographic space becomes a
    space, ligatures are split; control characters are removed.

    Chinese punctuation that has no half-width twin (``。``, ``、``, ``《》``) is kept.

    Args:
        text: any string.
        collapse_spaces: also turn every run of white space (zero-width spaces
            included) into one space and strip the ends.

    Returns:
        The normalised string.
    """
    out = _CONTROL.sub("", unicodedata.normalize("NFKC", text))
    if collapse_spaces:
        out = _SPACES.sub(" ", out).strip()
    return out
