"""Ticker extraction from cashtags, company names and declared tickers."""

from __future__ import annotations

import pytest

from finance_monitor.errors import RuleConfigError
from finance_monitor.tickers import TickerExtractor, load_companies


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
