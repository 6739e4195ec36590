"""Script runs: which stretches of a text are Chinese ideographs and which are not."""

from __future__ import annotations

import re

# CJK Unified Ideographs, Extension A, compatibility ideographs, Extensions B-F and the
# compatibility supplement: the characters Chinese text is written in.
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
HAN_RUN = re.compile(f"[{HAN}]+")
HAN_CHAR = re.compile(f"[{HAN}]")
LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u024f]+")


def split_script_runs(text: str) -> list[tuple[bool, str]]:
    """Cut ``text`` into alternating runs: ``(True, han_run)`` / ``(False, other_run)``.

    Concatenating the runs gives ``text`` back.
    """
    runs: list[tuple[bool, str]] = []
    position = 0
    for match in HAN_RUN.finditer(text):
        if match.start() > position:
            runs.append((False, text[position : match.start()]))
        runs.append((True, match.group()))
        position = match.end()
    if position < len(text):
        runs.append((False, text[position:]))
    return runs
