"""The languages the support bot speaks: which pipeline answers a message, and the
bot's own texts (greeting, clarifying question, fallback, hand-off) in each language.

One pipeline per language (intent model, knowledge base, templates): English keeps
MiniLM and the English help centre, Chinese runs on me5-small with the Chinese help
centre (``demo_data/zh``). A message goes to the pipeline of its language
(``keel.text.detect_language``, a script rule); a message whose language cannot be
told ("1", "OK?", "👍", a mixed one) stays in the conversation's language.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from customer_service.config import Settings
    from customer_service.documents import Document
    from customer_service.intents import IntentModel
    from customer_service.knowledge_base import KnowledgeBase
    from customer_service.templates import TemplateBook

SUPPORTED = ("en", "zh")
ZH_DATA_DIR = "zh"  # under the bundled demo_data folder


def parse_languages(value: str) -> list[str]:
    """``"en"``, ``"zh"``, ``"en,zh"`` (any case, spaces allowed) -> the list, in order.

    Raises:
        ValueError: empty, unknown or repeated language (pydantic turns it into a
            settings error naming ``languages``).
    """
    names = [part.strip().lower() for part in value.split(",")]
    if not any(names):
        raise ValueError("no language given; use en, zh or en,zh")
    for name in names:
        if name not in SUPPORTED:
            raise ValueError(f"unknown language {name!r}; use en, zh or en,zh")
    if len(set(names)) != len(names):
        raise ValueError(f"{value!r} names a language twice")
    return names


def text_language(text: str) -> str | None:
    """``"zh"``, ``"en"``, ``"mixed"`` or ``None`` (nothing to tell it by) for a text."""
    from keel.text import Language, detect_language

    detected = detect_language(text)
    if detected is Language.UNDETERMINED:
        return None
    return detected.value


def choose_language(
    text: str,
    enabled: Sequence[str],
    previous: Sequence[str] = (),
    hint: str | None = None,
) -> str:
    """The language whose pipeline answers ``text``.

    Args:
        text: the customer's message.
        enabled: the languages served, the default first.
        previous: the conversation's earlier customer messages, newest first.
        hint: the language the client shows (the chat page's), if any.

    Order: a single language serves everything; a Chinese or English message goes to
    its language when served; otherwise (a mixed message, digits, an emoji, or a
    language not served) the conversation's language (its newest message whose
    language can be told), then the hint, then, for a mixed message, Chinese (its Han
    characters are what the English model cannot read), then the default.
    """
    if len(enabled) == 1:
        return enabled[0]
    language = text_language(text)
    if language is not None and language in enabled:
        return language
    for earlier in previous:
        before = text_language(earlier)
        if before is not None and before in enabled:
            return before
    if hint is not None and hint in enabled:
        return hint
    if language == "mixed" and "zh" in enabled:
        return "zh"
    return enabled[0]


@dataclass(frozen=True)
class BotTexts:
    """What the bot says in one language outside templates and the knowledge base."""

    greeting: str
    handoff: str
    fallback: str
    handback: str
    clarify_prefix: str
    clarify_joiner: str
    clarify_suffix: str

    def clarify(self, titles: Sequence[str]) -> str:
        """The clarifying question offering ``titles`` as ``(1) ... (2) ...``."""
        options = self.clarify_joiner.join(
            f"({i}) {title}" for i, title in enumerate(titles, start=1)
        )
        return f"{self.clarify_prefix}{options}{self.clarify_suffix}"


@dataclass
class LanguagePipeline:
    """What answers the messages of one language."""

    language: str
    intents: IntentModel
    kb: KnowledgeBase
    templates: TemplateBook
    texts: BotTexts
    batcher: Any = None  # the intent model's micro-batcher (closed with the app)
    intent_artifacts: Any = None  # prepare.IntentArtifacts of the served intent model


ZH_TEXTS = BotTexts(
    greeting="您好，我是布兰博银行的智能助手。账户、银行卡、转账等问题都可以问我。",
    handoff="正在为您转接人工客服，请不要离开此对话，工作人员会在这里回复您。",
    fallback="抱歉，我在帮助中心没有找到这个问题的答案。您可以换个说法再问一次，或者点击“转人工”。",
    handback="您已回到智能助手。请问还有什么可以帮您？",
    clarify_prefix="为了确认一下，您是想问：",
    clarify_joiner=" 还是 ",
    clarify_suffix="？",
)

# A follow-up in Chinese starts with a connective ("那…", "还有…") or is short and
# points back ("这个要多久？").
_ZH_FOLLOW_UP_START = re.compile(r"^(那么|那|还有|另外|而且|也|如果|要是|然后|再问一下)")
_ZH_ANAPHORA = re.compile(r"(这个|那个|这些|那些|它|这样|同样|这张|那张|这笔|那笔)")


def is_follow_up_zh(text: str) -> bool:
    """Whether a Chinese message leans on the previous turn ("那要多久？")."""
    stripped = text.strip()
    if not stripped:
        return False
    if _ZH_FOLLOW_UP_START.match(stripped):
        return True
    return len(stripped) <= 12 and bool(_ZH_ANAPHORA.search(stripped))


_ZH_ORDINALS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4}
_ZH_CHOICE = re.compile(r"^(?:第)?([一二两三四1-4])(?:个|项|种)?$")


def zh_option_number(text: str) -> int | None:
    """The option number a Chinese reply picks ("第一个", "二", "第2项"), if any."""
    from keel.text import normalize_text

    match = _ZH_CHOICE.match(normalize_text(text).strip().rstrip("。.!！?？"))
    if match is None:
        return None
    value = match.group(1)
    return int(value) if value.isdigit() else _ZH_ORDINALS[value]


def language_settings(settings: Settings, language: str) -> Settings:
    """The settings of one language's pipeline.

    English is ``settings`` itself (its models, index and content files are where they
    always were). Chinese reads the ``zh_*`` content files (the bundled Chinese help
    centre by default), trains on ``zh_base_model`` and keeps its models and index in
    ``<state_dir>/zh/``; the database stays the app's one.
    """
    if language == "en":
        return settings
    if language != "zh":
        raise ValueError(f"unknown language {language!r}")
    from customer_service.config import BUNDLED_DATA_DIR

    bundled = BUNDLED_DATA_DIR / ZH_DATA_DIR
    return settings.model_copy(
        update={
            "state_dir": settings.state_dir / "zh",
            "articles_dir": settings.zh_articles_dir or bundled / "articles",
            "faq_file": settings.zh_faq_file or bundled / "faq.csv",
            "intents_file": settings.zh_intents_file or bundled / "intents.csv",
            "oos_file": settings.zh_oos_file or bundled / "out_of_scope.csv",
            "templates_file": settings.zh_templates_file or bundled / "templates.yaml",
            "intent_text_column": "text",
            "intent_label_column": "label",
            "base_model": settings.zh_base_model,
            "compress": settings.zh_compress,
        }
    )


DOC_ID_PREFIX = {"en": "", "zh": "zh-"}


def document_language(doc_id: str, title: str, text: str, enabled: Sequence[str]) -> str:
    """The knowledge base (language) a document belongs to.

    Documents of the Chinese help centre have ``zh-`` ids; any other document (the
    English files, or one added through the admin API) goes by its script: Chinese
    text to the Chinese knowledge base when Chinese is served, everything else to the
    default language's.
    """
    if "zh" in enabled and (
        doc_id.startswith(DOC_ID_PREFIX["zh"]) or text_language(f"{title}\n{text[:2000]}") == "zh"
    ):
        return "zh"
    if "en" in enabled:
        return "en"
    return enabled[0]


def language_documents(documents: Sequence[Document], language: str) -> list[Document]:
    """``documents`` of ``language``'s help centre with their ids (and URLs) prefixed, so
    the English and Chinese help centres share one database without clashing ids."""
    import dataclasses

    from customer_service.documents import document_url

    prefix = DOC_ID_PREFIX[language]
    if not prefix:
        return list(documents)
    return [
        dataclasses.replace(
            d,
            doc_id=prefix + d.doc_id,
            url=document_url(prefix + d.doc_id) if d.url == document_url(d.doc_id) else d.url,
        )
        for d in documents
    ]
