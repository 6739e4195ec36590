"""Fixtures for the customer-service unit tests (pure logic, no model)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from customer_service.config import BUNDLED_DATA_DIR
from customer_service.intents import IntentModel
from customer_service.templates import TemplateBook


class ScriptedIntents:
    """Returns fixed probabilities per text (a stand-in for the encoder in dialogue tests)."""

    def __init__(self, labels: list[str], script: dict[str, dict[str, float]]) -> None:
        self.labels = labels
        self.script = script
        self.seen: list[str] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            self.seen.append(text)
            probs = self.script.get(text, {})
            row = np.full(len(self.labels), 0.0, dtype=np.float32)
            for label, p in probs.items():
                row[self.labels.index(label)] = p
            rest = 1.0 - row.sum()
            free = [i for i, v in enumerate(row) if v == 0.0]
            for i in free:
                row[i] = rest / len(free)
            rows.append(row)
        return np.stack(rows)


@pytest.fixture()
def templates() -> TemplateBook:
    return TemplateBook.load(BUNDLED_DATA_DIR / "templates.yaml")


@pytest.fixture()
def make_intents(templates: TemplateBook) -> Callable[[dict[str, dict[str, float]]], IntentModel]:
    labels = sorted(templates.templates)

    def build(script: dict[str, dict[str, float]]) -> IntentModel:
        return IntentModel(ScriptedIntents(labels, script), labels, threshold=0.3)

    return build


@pytest.fixture()
def articles_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "articles"
    (folder / "cards").mkdir(parents=True)
    (folder / "cards" / "lost-card.md").write_text(
        "# Lost card\n\nFreeze your card in the app under Cards.\n\n"
        "A replacement card arrives within 3 to 5 working days.\n"
    )
    (folder / "vaults.html").write_text(
        "<html><head><title>Safe deposit boxes</title></head><body><h1>Safe deposit boxes</h1>"
        "<p>We do not offer safe deposit boxes because we have no branches.</p></body></html>"
    )
    (folder / "cheques.txt").write_text(
        "Paying in cheques\n\nTake a photo of the cheque in the app to pay it in.\n"
    )
    return folder
