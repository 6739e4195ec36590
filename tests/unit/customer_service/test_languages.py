"""Chinese and English in the support bot: settings, routing, the Chinese help centre,
Chinese answers and a dialogue with one pipeline per language (no model: scripted
intents and a fake encoder; BM25 with jieba is real)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from customer_service.answers import compose_extractive_answer, content_words, split_sentences
from customer_service.config import BUNDLED_DATA_DIR, Settings
from customer_service.dialogue import (
    EN_TEXTS,
    FALLBACK_MESSAGE,
    AnswerKind,
    DialogueManager,
    DialoguePolicy,
)
from customer_service.documents import Document, document_url
from customer_service.engine import load_retriever, load_texts
from customer_service.intents import IntentModel
from customer_service.knowledge_base import KnowledgeBase
from customer_service.languages import (
    ZH_TEXTS,
    LanguagePipeline,
    choose_language,
    document_language,
    is_follow_up_zh,
    language_documents,
    language_settings,
    parse_languages,
    zh_option_number,
)
from customer_service.pipelines import KnowledgeBaseRouter
from customer_service.prepare import file_documents, load_content_documents
from customer_service.storage import ConversationStore
from customer_service.templates import TemplateBook
from keel.data import load_labelled
from keel.inference import FakePredictor
from tests.unit.customer_service.conftest import ScriptedIntents

ZH_DIR = BUNDLED_DATA_DIR / "zh"

# ------------------------------------------------------------------------------ settings


def test_languages_setting_is_parsed_and_checked() -> None:
    assert parse_languages(" EN , zh") == ["en", "zh"]
    assert Settings(languages="zh,en").language_list == ["zh", "en"]
    assert Settings().language_list == ["en"]  # the default: English only
    for bad in ("fr", "en,en", "", "en,"):
        with pytest.raises(ValidationError) as error:
            Settings(languages=bad)
        assert error.value.errors()[0]["loc"] == ("languages",)


def test_language_settings_point_chinese_at_its_own_files_and_folders(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, languages="en,zh", budget="head")
    assert language_settings(settings, "en") is settings
    zh = language_settings(settings, "zh")
    assert zh.state_dir == tmp_path / "zh" and zh.base_model == "me5-small"
    assert zh.content_path("intents.csv") == ZH_DIR / "intents.csv"
    assert zh.content_path("articles") == ZH_DIR / "articles"
    assert zh.compress is False  # zh_compress: off by default
    assert settings.content_path("intents.csv") == BUNDLED_DATA_DIR / "intents.csv"


# ------------------------------------------------------------------------------ routing


@pytest.mark.parametrize(
    ("text", "previous", "hint", "expected"),
    [
        ("我的银行卡丢了", [], None, "zh"),
        ("I lost my card", [], "zh", "en"),  # the message's language wins over the page's
        ("我的Visa卡被拒了", [], None, "zh"),  # mostly Han: Chinese
        ("1", ["我的卡"], None, "zh"),  # a clarifying answer stays in the conversation
        ("1", ["my card"], "zh", "en"),
        ("👍", [], "zh", "zh"),  # nothing to tell: the page's language
        ("123456", [], None, "en"),  # nothing at all: the default
        ("How do I 激活 my card", [], None, "zh"),  # mixed, no context: Chinese reads Han
        ("How do I 激活 my card", ["hello"], None, "en"),  # mixed: the conversation's
    ],
)
def test_choose_language(text: str, previous: list[str], hint: str | None, expected: str) -> None:
    assert choose_language(text, ["en", "zh"], previous, hint) == expected


def test_a_single_language_serves_everything() -> None:
    assert choose_language("我的银行卡丢了", ["en"]) == "en"
    assert choose_language("I lost my card", ["zh"]) == "zh"


def test_chinese_follow_ups_and_option_numbers() -> None:
    assert is_follow_up_zh("那要多久？") and is_follow_up_zh("还有手续费吗")
    assert is_follow_up_zh("这个收费吗")
    assert not is_follow_up_zh("我想给在美国的家人转钱，需要什么信息")
    assert [zh_option_number(t) for t in ("第一个", "二", "第2项", "２", "转账")] == [
        1,
        2,
        2,
        2,
        None,
    ]


# --------------------------------------------------------------------- zh help centre


def test_the_chinese_help_centre_covers_the_english_intents() -> None:
    english = load_labelled(BUNDLED_DATA_DIR / "intents.csv", text_col="text", label_col="label")
    chinese = load_labelled(ZH_DIR / "intents.csv", text_col="text", label_col="label")
    assert set(chinese.labels) == set(english.labels)
    counts = {label: list(chinese.labels).count(label) for label in set(chinese.labels)}
    assert min(counts.values()) >= 10
    assert all(choose_language(text, ["en", "zh"]) == "zh" for text in chinese.texts)
    templates = TemplateBook.load(ZH_DIR / "templates.yaml", "zh")
    assert set(templates.templates) == set(english.labels)
    assert all(
        choose_language(templates.title(i), ["en", "zh"]) == "zh" for i in templates.templates
    )
    oos = load_texts(ZH_DIR / "out_of_scope.csv")
    assert len(oos) >= 30 and not set(oos) & set(chinese.texts)


def test_chinese_templates_fill_chinese_slots() -> None:
    templates = TemplateBook.load(ZH_DIR / "templates.yaml", "zh")
    answer = templates.render("send_money_abroad", "我想汇500美元到美国")
    assert answer.startswith("向美国汇款500美元")
    assert "信用卡" in templates.render("lost_or_stolen_card", "我的信用卡被偷了")
    assert "{" not in templates.render("top_up", "怎么充值")


def test_chinese_documents_get_prefixed_ids_and_go_to_the_chinese_base(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, languages="en,zh")
    documents = load_content_documents(settings)
    chinese = [d for d in documents if d.doc_id.startswith("zh-")]
    english = [d for d in documents if not d.doc_id.startswith("zh-")]
    assert len(chinese) >= 25 and len(english) >= 50
    assert len({d.doc_id for d in documents}) == len(documents)  # no clash
    assert "zh-cards-lost-or-stolen-card" in {d.doc_id for d in chinese}
    assert all(d.url == document_url(d.doc_id) for d in chinese)
    enabled = ["en", "zh"]
    assert all(document_language(d.doc_id, d.title, d.text, enabled) == "zh" for d in chinese)
    assert all(document_language(d.doc_id, d.title, d.text, enabled) == "en" for d in english)
    # English only: no Chinese documents are seeded.
    assert not [d for d in load_content_documents(Settings()) if d.doc_id.startswith("zh-")]
    # Chinese only: no English ones.
    zh_only = load_content_documents(Settings(languages="zh"))
    assert zh_only and all(d.doc_id.startswith("zh-") for d in zh_only)


# --------------------------------------------------------------------- Chinese answers


def test_chinese_sentences_and_content_words() -> None:
    text = "如果找不到银行卡，请立即冻结。冻结即时生效！挂失后我们会寄出新卡。"
    assert split_sentences(text) == [
        "如果找不到银行卡，请立即冻结。",
        "冻结即时生效！",
        "挂失后我们会寄出新卡。",
    ]
    words = content_words("我的银行卡丢了怎么办？ATM cards")
    assert {"银行卡", "atm", "card"} <= words
    assert not words & {"我", "的", "了", "怎么办"}
    # English is unchanged.
    assert content_words("Where are my cards?") == {"card"}


@pytest.fixture()
def zh_kb(tmp_path: Path) -> KnowledgeBase:
    """The bundled Chinese help centre in a knowledge base (fake vectors, real jieba BM25)."""
    settings = language_settings(Settings(state_dir=tmp_path, languages="zh"), "zh")
    kb = KnowledgeBase(
        tmp_path / "kb-zh", load_retriever(tmp_path / "kb-zh" / "index", FakePredictor(dim=16))
    )
    kb.apply_changes(language_documents(file_documents(settings), "zh"), [])
    return kb


def test_jieba_bm25_finds_the_chinese_article_and_the_answer_cites_it(zh_kb: KnowledgeBase) -> None:
    from keel.retrieval import SearchMode

    zh_kb.retriever.mode = SearchMode.BM25  # type: ignore[attr-defined]
    for question, doc_id in [
        ("透支的年利率是多少", "zh-savings-overdrafts"),
        ("境外取现要收多少手续费", "zh-payments-fees-and-charges"),
        ("取款机吞卡了", "zh-help-cash-machines"),
    ]:
        passages = zh_kb.search(question, k=3)
        assert passages[0].doc_id == doc_id, (question, [p.doc_id for p in passages])
        answer = compose_extractive_answer(question, passages)
        assert answer.citations[0].doc_id == doc_id and "[1]" in answer.text
        assert answer.support >= 0.2 and " [" not in answer.text


# ----------------------------------------------------------- one pipeline per language

Script = dict[str, dict[str, float]]


@pytest.fixture()
def bilingual(
    tmp_path: Path,
    articles_dir: Path,
    templates: TemplateBook,
    make_intents: Callable[[Script], IntentModel],
    zh_kb: KnowledgeBase,
) -> Callable[[Script, Script], DialogueManager]:
    def make(english: Script, chinese: Script) -> DialogueManager:
        kb = KnowledgeBase(
            tmp_path / "kb", load_retriever(tmp_path / "kb" / "index", FakePredictor(dim=32))
        )
        kb.ingest(articles_dir)
        store = ConversationStore(f"sqlite:///{tmp_path / 'db.sqlite3'}")
        zh_templates = TemplateBook.load(ZH_DIR / "templates.yaml", "zh")
        labels = sorted(zh_templates.templates)
        zh = LanguagePipeline(
            "zh",
            IntentModel(ScriptedIntents(labels, chinese), labels, threshold=0.3),
            zh_kb,
            zh_templates,
            ZH_TEXTS,
        )
        return DialogueManager(
            store,
            make_intents(english),
            kb,
            templates,
            DialoguePolicy(fallback_after=2),
            extra_languages=[zh],
        )

    return make


def test_each_message_is_answered_by_its_language(
    bilingual: Callable[[Script, Script], DialogueManager],
) -> None:
    dm = bilingual(
        {"I lost my credit card": {"lost_or_stolen_card": 0.9}},
        {"我的信用卡丢了": {"lost_or_stolen_card": 0.9}, "透支的年利率是多少": {"overdraft": 0.9}},
    )
    assert dm.languages == ["en", "zh"]
    conversation = dm.start("web")
    zh = dm.handle_message(conversation.id, "我的信用卡丢了")
    assert zh.language == "zh" and zh.kind is AnswerKind.TEMPLATE
    assert "冻结您的信用卡" in (zh.answer or "")
    retrieval = dm.handle_message(conversation.id, "透支的年利率是多少")
    assert retrieval.kind is AnswerKind.RETRIEVAL and retrieval.language == "zh"
    assert retrieval.citations[0]["doc_id"] == "zh-savings-overdrafts"
    en = dm.handle_message(conversation.id, "I lost my credit card")
    assert en.language == "en" and "Freeze your credit card" in (en.answer or "")


def test_clarify_fallback_and_handoff_speak_chinese(
    bilingual: Callable[[Script, Script], DialogueManager],
) -> None:
    dm = bilingual({}, {"卡": {"lost_or_stolen_card": 0.3, "card_arrival": 0.25}})
    conversation = dm.start("web")
    ask = dm.handle_message(conversation.id, "卡")
    assert ask.kind is AnswerKind.CLARIFY and ask.language == "zh"
    assert ask.answer == "为了确认一下，您是想问：(1) 银行卡丢失或被盗 还是 (2) 新卡未收到？"
    picked = dm.handle_message(conversation.id, "第二个")  # Chinese ordinal
    assert picked.intent == "card_arrival" and picked.kind is AnswerKind.TEMPLATE
    assert picked.language == "zh"

    lost = dm.start("web")
    first = dm.handle_message(lost.id, "明天天气怎么样")
    assert first.kind is AnswerKind.FALLBACK and first.answer == ZH_TEXTS.fallback
    second = dm.handle_message(lost.id, "推荐一部电影")
    assert second.kind is AnswerKind.HANDOFF and second.answer == ZH_TEXTS.handoff
    dm.agent_reply(lost.id, "小王", "您好，我是小王。")
    handback = dm.hand_back(lost.id)
    assert handback.text == ZH_TEXTS.handback

    button = dm.start("web")
    message = dm.request_handoff(button.id, language_hint="zh")
    assert message is not None and message.text == ZH_TEXTS.handoff
    english = dm.start("web")
    dm.handle_message(english.id, "weather tomorrow")
    message = dm.request_handoff(english.id, language_hint="zh")  # the conversation's language wins
    assert message is not None and message.text == EN_TEXTS.handoff
    assert dm.handle_message(dm.start("web").id, "bake bread").answer == FALLBACK_MESSAGE


def test_router_sends_documents_and_searches_to_their_language(
    tmp_path: Path, zh_kb: KnowledgeBase
) -> None:
    en_kb = KnowledgeBase(
        tmp_path / "kb-en", load_retriever(tmp_path / "kb-en" / "index", FakePredictor(dim=16))
    )
    router = KnowledgeBaseRouter({"en": en_kb, "zh": zh_kb})
    chinese_count = len(zh_kb)
    english = Document(
        "vaults",
        "Safe deposit boxes",
        "We do not offer safe deposit boxes.",
        "/kb/vaults",
        "admin",
        "text",
    )
    chinese = Document(
        "holidays", "节假日服务", "节假日期间在线客服照常服务。", "/kb/holidays", "admin", "text"
    )
    report = router.apply_changes([english, chinese], [])
    assert sorted(report.added) == ["holidays", "vaults"]
    assert en_kb.get("vaults").title == "Safe deposit boxes" and len(en_kb) == 1
    assert zh_kb.get("holidays").title == "节假日服务" and len(zh_kb) == chinese_count + 1
    assert router.get("holidays").doc_id == "holidays" and len(router) == len(en_kb) + len(zh_kb)
    assert router.search("safe deposit boxes", k=1)[0].doc_id == "vaults"
    assert router.search("节假日客服", k=3)[0].doc_id.startswith(("holidays", "zh-"))
    # An admin rewrites the English document in Chinese: it moves to the Chinese base.
    moved = Document("vaults", "保管箱", "我们不提供保管箱服务。", "/kb/vaults", "admin", "text")
    router.apply_changes([moved], [])
    assert len(en_kb) == 0 and zh_kb.get("vaults").title == "保管箱"
    router.apply_changes([], ["vaults"])
    assert "vaults" not in {d.doc_id for d in router.documents()}
    # The first sync of a replica (complete) keeps each base to its own documents.
    router.apply_changes([english], [], complete=True)
    assert len(en_kb) == 1 and len(zh_kb) == 0
