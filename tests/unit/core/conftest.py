"""Shared fixtures of the core engine's unit tests: the base encoder is loaded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.data import LabelledTexts

_INTENTS = {
    "card_declined": [
        "my card was declined at the shop",
        "why was my card payment refused",
        "the terminal rejected my card",
        "card payment did not go through",
        "my card keeps getting declined",
        "payment refused on my debit card",
    ],
    "refund": [
        "I want a refund for this order",
        "please give me my money back",
        "how do I get a refund",
        "refund the amount to my account",
        "I am still waiting for my refund",
        "can I return this and get refunded",
    ],
    "change_pin": [
        "how do I change my pin",
        "I forgot my pin number",
        "reset the pin of my card",
        "I want a new pin code",
        "where can I update my pin",
        "change pin on my debit card",
    ],
}


def tiny_intents_data() -> LabelledTexts:
    """18 short banking queries over three intents (6 each)."""
    texts = [t for rows in _INTENTS.values() for t in rows]
    labels = [label for label, rows in _INTENTS.items() for _ in rows]
    return LabelledTexts(texts, labels, "tiny-intents")


@pytest.fixture(scope="session")
def base_encoder_path() -> Path:
    """Folder of the packaged MiniLM encoder."""
    from keel.models import model_path

    return model_path("minilm")


@pytest.fixture(scope="session")
def base_encoder():  # type: ignore[no-untyped-def]
    """The packaged MiniLM as a ``SentenceTransformer``, loaded once per test session.

    Do not train it in place: tests that fine-tune load their own copy.
    """
    import torch

    from keel.models import load_sentence_encoder

    torch.set_num_threads(1)
    return load_sentence_encoder("minilm")


@pytest.fixture()
def tiny_intents() -> LabelledTexts:
    """18 labelled banking queries, three intents."""
    return tiny_intents_data()


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved ``head``-strategy classifier artifact trained on ``tiny_intents`` (once)."""
    from keel.training import ClassifierConfig, train_classifier

    config = ClassifierConfig(strategy="head", show_progress=False, num_threads=1)
    model = train_classifier(tiny_intents_data(), config)
    return model.save(tmp_path_factory.mktemp("tiny-classifier"))
