from pathlib import Path

import pytest

from customer_service.errors import DocumentFormatError
from customer_service.templates import IntentAction, TemplateBook, extract_slots


def test_bundled_templates_load_and_render_with_slots(templates: TemplateBook) -> None:
    answer = templates.render("send_money_abroad", "I want to send €200 to Spain")
    assert "send €200 to Spain" in answer
    default = templates.render("send_money_abroad", "how do I send money abroad")
    assert "send money to another country" in default
    assert templates.get("talk_to_human").action is IntentAction.HANDOFF
    assert templates.get("fees_and_charges").action is IntentAction.RETRIEVAL
    assert "Bramble Bank" in templates.render("greeting", "hi")


def test_slot_extraction() -> None:
    assert extract_slots("my Credit card, 50 euros to France") == {
        "card_type": "credit",
        "amount": "50 euros",
        "currency": "euros",
        "country": "France",
    }


def test_template_with_a_slot_without_default_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("intents:\n  x:\n    answer: 'Hello {name}'\n")
    with pytest.raises(
        DocumentFormatError, match=r"intent 'x': slot\(s\) \['name'\] have no default"
    ):
        TemplateBook.load(path)


def test_unknown_action_and_bad_yaml_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("intents:\n  x:\n    action: dance\n")
    with pytest.raises(DocumentFormatError, match="action='dance'"):
        TemplateBook.load(path)
    path.write_text("intents: [unclosed\n")
    with pytest.raises(DocumentFormatError, match="invalid YAML"):
        TemplateBook.load(path)
