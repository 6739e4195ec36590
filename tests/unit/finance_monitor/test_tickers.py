"""Ticker extraction from cashtags, company names and declared tickers."""

from __future__ import annotations

import pytest

from finance_monitor.errors import RuleConfigError
from finance_monitor.tickers import (
    TickerExtractor,
    is_valid_a_share,
    load_companies,
    normalize_ticker,
)


def test_cashtags_names_and_declared_tickers_are_merged_without_duplicates() -> None:
    extractor = TickerExtractor({"Northwind Energy": "NWE", "Harbor Bancorp": "HRBR"})
    text = "$VEXA and northwind energy rally; $NWE up, Harbor Bancorp flat, price $5"
    assert extractor.extract(text, declared=["qln"]) == ["QLN", "VEXA", "NWE", "HRBR"]


def test_dollar_amounts_and_embedded_dollars_are_not_tickers() -> None:
    extractor = TickerExtractor()
    assert extractor.extract("Costs rose by $5 million; a$BC is not a tag") == []


def test_max_tickers_caps_the_list() -> None:
    extractor = TickerExtractor(max_tickers=2)
    assert extractor.extract("$AA $BB $CC") == ["AA", "BB"]


def test_invalid_ticker_in_company_list_is_rejected() -> None:
    with pytest.raises(RuleConfigError, match="not a ticker"):
        TickerExtractor({"Acme": "acme corp"})


def test_bundled_company_list_loads() -> None:
    companies = load_companies()
    assert companies["Northwind Energy"] == "NWE"


# -- A-share codes and Chinese company names ------------------------------------------


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("600519.SH", "600519.SH"),
        ("600519.sh", "600519.SH"),
        ("600519.SS", "600519.SH"),
        ("SH600519", "600519.SH"),
        ("sh600519", "600519.SH"),
        ("000001.SZ", "000001.SZ"),
        ("sz300750", "300750.SZ"),
        ("688981.SH", "688981.SH"),
        ("830799.BJ", "830799.BJ"),
        ("BJ430047", "430047.BJ"),
        ("６００５１９．ＳＨ", "600519.SH"),  # full-width, as typed with a Chinese IME
    ],
)
def test_a_share_code_forms_are_found_and_canonical(written: str, canonical: str) -> None:
    assert TickerExtractor().extract(f"消息：{written}今日涨停") == [canonical]


@pytest.mark.parametrize(
    "text",
    [
        "600519.SZ jumps",  # a Shanghai code with the Shenzhen suffix
        "000001.SH index",  # Shenzhen block on Shanghai: the SSE index, not a stock
        "830799.SZ",
        "123456.SH",
        "sh12345",  # five digits
        "1600519.SH",  # part of a longer number
        "orders up 600519 units",  # bare six digits: exchange unknown
        "XSH600519",  # glued to other letters
    ],
)
def test_invalid_or_ambiguous_codes_are_not_tickers(text: str) -> None:
    assert TickerExtractor().extract(text) == []


@pytest.mark.parametrize(
    ("code", "exchange", "valid"),
    [
        ("600519", "SH", True),
        ("605499", "SH", True),
        ("900901", "SH", True),
        ("002594", "SZ", True),
        ("301236", "SZ", True),
        ("200002", "SZ", True),
        ("920118", "BJ", True),
        ("870199", "BJ", True),
        ("300750", "SH", False),
        ("600519", "BJ", False),
        ("60051", "SH", False),
        ("600519", "HK", False),
    ],
)
def test_exchange_prefix_rules(code: str, exchange: str, valid: bool) -> None:
    assert is_valid_a_share(code, exchange) is valid


def test_chinese_company_names_from_the_bundled_dictionary() -> None:
    extractor = TickerExtractor(load_companies())
    headline = "贵州茅台一季度净利润增长，宁德时代与比亚迪电池订单创新高"
    assert extractor.extract(headline) == ["600519.SH", "300750.SZ", "002594.SZ"]


def test_longest_chinese_name_wins() -> None:
    extractor = TickerExtractor(
        {"中国平安": "601318.SH", "平安银行": "000001.SZ", "平安": "601318.SH"}
    )
    assert extractor.extract("平安银行发布年报") == ["000001.SZ"]
    assert extractor.extract("中国平安回购股份") == ["601318.SH"]


def test_codes_names_and_cashtags_mix_in_one_headline() -> None:
    extractor = TickerExtractor({**load_companies(), "Vexa Motors": "VEXA"})
    text = "招商银行(600036.SH)与 Vexa Motors 合作，$NWE 上涨，sz000858 五粮液走强"
    assert extractor.extract(text, declared=["sh601318"]) == [
        "601318.SH",
        "NWE",
        "600036.SH",
        "000858.SZ",
        "VEXA",
    ]


def test_english_names_still_match_whole_words_only() -> None:
    extractor = TickerExtractor(load_companies())
    assert extractor.extract("Northwind Energy rallies") == ["NWE"]
    assert extractor.extract("Northwind Energyx rallies") == []


def test_a_share_dictionary_entry_with_a_wrong_exchange_is_rejected() -> None:
    with pytest.raises(RuleConfigError, match="not a ticker"):
        TickerExtractor({"贵州茅台": "600519.SZ"})


def test_bundled_dictionary_has_valid_a_share_codes() -> None:
    companies = load_companies()
    assert companies["贵州茅台"] == "600519.SH"
    zh = {name: code for name, code in companies.items() if "." in code and code[0].isdigit()}
    assert len(zh) >= 20
    assert all(normalize_ticker(code) == code for code in zh.values())


def test_declared_invalid_a_share_code_is_dropped() -> None:
    assert TickerExtractor().extract("text", declared=["600519.SZ", "acme"]) == ["ACME"]
