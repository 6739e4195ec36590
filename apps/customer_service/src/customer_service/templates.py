"""Per-intent answer templates (YAML) with slots filled from the customer's message.

File layout::

    bank_name: Bramble Bank          # global slots, usable in every template
    intents:
      card_lost:
        title: Lost or stolen card   # shown in clarifying questions
        answer: "Freeze your {card_type} card ..."
        slots: {card_type: debit}    # defaults; extracted values win
      fees:
        title: Fees and charges
        answer: retrieval            # answer from the knowledge base instead
      talk_to_human:
        title: Talk to a person
        action: handoff
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from customer_service.errors import DocumentFormatError


class IntentAction(StrEnum):
    TEMPLATE = "template"
    RETRIEVAL = "retrieval"
    HANDOFF = "handoff"


@dataclass(frozen=True)
class IntentTemplate:
    intent: str
    title: str
    action: IntentAction
    answer: str = ""
    slots: dict[str, str] = field(default_factory=dict)


_SLOT_EXTRACTORS: dict[str, re.Pattern[str]] = {
    "amount": re.compile(
        r"(?:[£$€]\s?\d[\d,]*(?:\.\d{1,2})?|\d[\d,]*(?:\.\d{1,2})?\s?(?:pounds|dollars|euros|gbp|usd|eur))",
        re.I,
    ),
    "card_type": re.compile(r"\b(debit|credit|virtual|business)\b", re.I),
    "currency": re.compile(r"\b(euros?|dollars?|pounds?|yen|francs?|EUR|USD|GBP|JPY|CHF)\b"),
    "country": re.compile(
        r"\b(France|Spain|Germany|Italy|Portugal|Ireland|Poland|the US|the USA|America|Canada|India|Japan|Australia|Nigeria|Kenya|Mexico|Brazil)\b",
        re.I,
    ),
}


# The same slots in Chinese messages ("汇500美元到美国", "我的信用卡").
_ZH_SLOT_EXTRACTORS: dict[str, re.Pattern[str]] = {
    "amount": re.compile(
        r"(?:[¥￥$€£]\s?\d[\d,]*(?:\.\d{1,2})?|\d[\d,]*(?:\.\d{1,2})?\s?(?:万元|元|块钱|块|美元|欧元|英镑|日元|港币|人民币))"
    ),
    "card_type": re.compile(r"(借记卡|信用卡|虚拟卡|储蓄卡|商务卡)"),
    "currency": re.compile(r"(人民币|美元|欧元|英镑|日元|港币|澳元|加元)"),
    "country": re.compile(
        r"(美国|英国|法国|德国|意大利|西班牙|日本|韩国|新加坡|澳大利亚|加拿大|新西兰|香港|澳门|台湾|马来西亚|泰国|印度|欧洲)"
    ),
}


def extract_slots(text: str, language: str = "en") -> dict[str, str]:
    """Slot values found in ``text`` (amount, card type, currency, country); ``language``
    ``"zh"`` reads Chinese messages."""
    found: dict[str, str] = {}
    extractors = _ZH_SLOT_EXTRACTORS if language == "zh" else _SLOT_EXTRACTORS
    for name, pattern in extractors.items():
        match = pattern.search(text)
        if match:
            value = match.group(0).strip()
            found[name] = value.lower() if name == "card_type" else value
    return found


class TemplateBook:
    """All intent templates of the app, looked up by intent."""

    def __init__(
        self,
        templates: dict[str, IntentTemplate],
        global_slots: dict[str, str],
        language: str = "en",
    ) -> None:
        self.templates = templates
        self.global_slots = global_slots
        self.language = language

    @classmethod
    def load(cls, path: Path, language: str = "en") -> TemplateBook:
        """Read and check a templates YAML file.

        Raises:
            DocumentFormatError: bad YAML, unknown action, template without answer or
                with a slot that has no default (names the file and the intent).
        """
        try:
            raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            raise DocumentFormatError(
                f"invalid YAML: {exc}", str(path), None if line is None else line + 1
            ) from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("intents"), dict):
            raise DocumentFormatError("expected a mapping with an 'intents' mapping", str(path))
        global_slots = {k: str(v) for k, v in raw.items() if k != "intents"}
        templates: dict[str, IntentTemplate] = {}
        for intent, spec in raw["intents"].items():
            if not isinstance(spec, dict):
                raise DocumentFormatError(f"intent {intent!r}: expected a mapping", str(path))
            answer = str(spec.get("answer", "")).strip()
            action_name = spec.get("action") or (
                IntentAction.RETRIEVAL if answer == "retrieval" else IntentAction.TEMPLATE
            )
            try:
                action = IntentAction(action_name)
            except ValueError as exc:
                raise DocumentFormatError(
                    f"intent {intent!r}: action={action_name!r}, use one of {[a.value for a in IntentAction]}",
                    str(path),
                ) from exc
            slots = {k: str(v) for k, v in (spec.get("slots") or {}).items()}
            if action is IntentAction.TEMPLATE:
                if not answer or answer == "retrieval":
                    raise DocumentFormatError(
                        f"intent {intent!r}: template has no answer", str(path)
                    )
                names = {n for _, n, _, _ in string.Formatter().parse(answer) if n}
                missing = names - set(slots) - set(global_slots) - set(_SLOT_EXTRACTORS)
                missing |= {
                    n
                    for n in names & set(_SLOT_EXTRACTORS)
                    if n not in slots and n not in global_slots
                }
                if missing:
                    raise DocumentFormatError(
                        f"intent {intent!r}: slot(s) {sorted(missing)} have no default", str(path)
                    )
            templates[intent] = IntentTemplate(
                intent=intent,
                title=str(spec.get("title") or intent.replace("_", " ").capitalize()),
                action=action,
                answer=answer if action is IntentAction.TEMPLATE else "",
                slots=slots,
            )
        return cls(templates, global_slots, language)

    def get(self, intent: str) -> IntentTemplate | None:
        return self.templates.get(intent)

    def title(self, intent: str) -> str:
        template = self.templates.get(intent)
        return template.title if template else intent.replace("_", " ").capitalize()

    def render(self, intent: str, message: str) -> str:
        """Fill the template of ``intent`` with slots from ``message``, its defaults and the globals.

        Raises:
            KeyError: ``intent`` has no template answer.
        """
        template = self.templates[intent]
        if template.action is not IntentAction.TEMPLATE:
            raise KeyError(intent)
        values = {**self.global_slots, **template.slots, **extract_slots(message, self.language)}
        return template.answer.format_map(values)
