"""Prompt building and output trimming of the answer generator (no model is loaded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from customer_service.config import Settings
from customer_service.errors import GeneratorUnavailableError
from customer_service.generation import (
    SmolLMGenerator,
    build_messages,
    trim_to_complete_sentences,
)
from customer_service.knowledge_base import RetrievedPassage
from customer_service.runtime import load_generator


def test_prompt_numbers_the_passages_from_one() -> None:
    passages = [
        RetrievedPassage("a#0", "a", "Lost card", "/kb/a", 0, 10, "Freeze it.\n\nNow.", 0.9),
        RetrievedPassage("b#0", "b", "Cheques", "/kb/b", 0, 10, "Take a photo.", 0.5),
    ]
    messages = build_messages("  how do I pay in a cheque? ", passages)
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    assert "[1] Lost card: Freeze it. Now.\n[2] Cheques: Take a photo." in user
    assert user.endswith("Question: how do I pay in a cheque?")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("It takes 3 days [1]. You can also", "It takes 3 days [1]."),
        ("It takes 3 days. [1] You can", "It takes 3 days. [1]"),
        ("It takes 3 days [1].", "It takes 3 days [1]."),
        ("no full stop at all", "no full stop at all"),
    ],
)
def test_a_sentence_cut_by_the_token_limit_is_dropped(text: str, expected: str) -> None:
    assert trim_to_complete_sentences(text) == expected


def test_generation_is_off_by_default(tmp_path: Path) -> None:
    assert load_generator(Settings(state_dir=tmp_path)) == (None, "off")


def test_a_generator_that_does_not_load_leaves_extractive_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> SmolLMGenerator:
        raise GeneratorUnavailableError("SmolLM2 is not installed")

    monkeypatch.setattr(SmolLMGenerator, "load", broken)
    generator, status = load_generator(Settings(state_dir=tmp_path, generation=True))
    assert generator is None and status == "unavailable: SmolLM2 is not installed"
    assert "generated answers are OFF" in caplog.text


def test_generation_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="grounding_min_overlap"):
        Settings(grounding_min_overlap=1.5)
    with pytest.raises(ValueError, match="generation_max_new_tokens"):
        Settings(generation_max_new_tokens=0)


def test_only_the_first_paragraph_is_kept() -> None:
    assert trim_to_complete_sentences("It takes 3 days [1].\n\n1. Next: a list") == (
        "It takes 3 days [1]."
    )
