"""Company / ticker extraction: cashtags (``$ACME``) plus a configurable company-name list."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path

import yaml

from finance_monitor.errors import RuleConfigError

CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?)\b")
TICKER_SHAPE = re.compile(r"^[A-Z]{1,6}(?:\.[A-Z]{1,2})?$")


class TickerExtractor:
    """Finds tickers in text from cashtags and from company names mapped to tickers.

    Args:
        companies: company name (as written in text) -> ticker. Names match whole
            words, case-insensitively.
        max_tickers: at most this many tickers are kept per message, in order of
            first appearance.
    """

    def __init__(self, companies: Mapping[str, str] | None = None, max_tickers: int = 5) -> None:
        self.companies = {name: ticker.upper() for name, ticker in (companies or {}).items()}
        for name, ticker in self.companies.items():
            if not TICKER_SHAPE.match(ticker):
                raise RuleConfigError(f"companies[{name!r}]", ticker, "not a ticker symbol")
        self.max_tickers = max_tickers
        names = sorted(self.companies, key=len, reverse=True)
        self._lookup = {name.lower(): ticker for name, ticker in self.companies.items()}
        self._names = (
            re.compile(r"\b(" + "|".join(re.escape(n) for n in names) + r")\b", re.IGNORECASE)
            if names
            else None
        )

    def extract(self, text: str, declared: Iterable[str] = ()) -> list[str]:
        """Tickers of one message: declared ones first, then cashtags, then company names."""
        found: list[str] = []
        for ticker in declared:
            found.append(ticker.strip().lstrip("$").upper())
        found.extend(m.group(1).upper() for m in CASHTAG.finditer(text))
        if self._names is not None:
            found.extend(self._lookup[m.group(1).lower()] for m in self._names.finditer(text))
        unique: list[str] = []
        for ticker in found:
            if ticker and TICKER_SHAPE.match(ticker) and ticker not in unique:
                unique.append(ticker)
        return unique[: self.max_tickers]


def load_companies(path: Path | None = None) -> dict[str, str]:
    """Read a ``name: TICKER`` YAML mapping (the bundled demo list when ``path`` is None).

    Raises:
        RuleConfigError: the file is not a mapping of strings.
    """
    if path is None:
        text = resources.files("finance_monitor").joinpath("demo_data/companies.yaml").read_text()
        where = "demo_data/companies.yaml"
    else:
        text = Path(path).read_text()
        where = str(path)
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise RuleConfigError("companies_file", where, "must be a YAML mapping of name: TICKER")
    return data
