"""Company / ticker extraction: cashtags (``$ACME``), A-share codes (``600519.SH``,
``SH600519``) and company names (English and Chinese) from a configurable list."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path

import yaml

from finance_monitor.errors import RuleConfigError

CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?)\b")
US_TICKER = re.compile(r"^[A-Z]{1,6}(?:\.[A-Z]{1,2})?$")
A_SHARE = re.compile(r"^(\d{6})\.(SH|SZ|BJ)$")
# Kept for callers that validate a symbol's shape: any ticker Keel can emit.
TICKER_SHAPE = re.compile(r"^(?:[A-Z]{1,6}(?:\.[A-Z]{1,2})?|\d{6}\.(?:SH|SZ|BJ))$")

# ``600519.SH`` (``.SS`` is Yahoo's spelling of Shanghai) and ``SH600519`` / ``sh600519``.
# ASCII look-arounds instead of ``\b``: Chinese characters count as word characters, so
# ``\b`` would miss a code written right after one (``茅台600519.SH``).
_CODE_SUFFIX = re.compile(r"(?<![0-9A-Za-z.])(\d{6})\.(SH|SS|SZ|BJ)(?![0-9A-Za-z])", re.IGNORECASE)
_CODE_PREFIX = re.compile(r"(?<![0-9A-Za-z.])(SH|SZ|BJ)(\d{6})(?![0-9A-Za-z])", re.IGNORECASE)
# Which code blocks each exchange lists (stocks: A and B shares). Shanghai: main board
# 600/601/603/605, STAR 688/689, B shares 900. Shenzhen: main board 000-004, ChiNext
# 300/301, B shares 200. Beijing: 43/83/87 and the 920 block it moved codes to.
_EXCHANGE_PREFIXES = {
    "SH": ("600", "601", "603", "605", "688", "689", "900"),
    "SZ": ("000", "001", "002", "003", "004", "300", "301", "200"),
    "BJ": ("43", "83", "87", "920"),
}
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def normalize_ticker(symbol: str) -> str | None:
    """The canonical form of a ticker, or None when it is not one.

    US-style symbols come back upper-cased (``acme`` -> ``ACME``); A-share codes as
    ``CODE.EXCHANGE`` (``sh600519``, ``600519.ss`` -> ``600519.SH``) when the code's
    prefix belongs to that exchange (``600519.SZ`` is None).
    """
    text = unicodedata.normalize("NFKC", symbol).strip().lstrip("$").upper()
    prefixed = re.fullmatch(r"(SH|SZ|BJ)(\d{6})", text)
    if prefixed:
        text = f"{prefixed.group(2)}.{prefixed.group(1)}"
    text = re.sub(r"\.SS$", ".SH", text)
    match = A_SHARE.match(text)
    if match:
        return text if is_valid_a_share(match.group(1), match.group(2)) else None
    return text if US_TICKER.match(text) else None


def is_valid_a_share(code: str, exchange: str) -> bool:
    """Whether a 6-digit ``code`` is in a block that ``exchange`` (SH, SZ, BJ) lists."""
    prefixes = _EXCHANGE_PREFIXES.get(exchange.upper())
    return bool(prefixes) and len(code) == 6 and code.isdigit() and code.startswith(prefixes)


def find_a_share_codes(text: str) -> list[str]:
    """A-share codes written in ``text``, canonical (``600519.SH``), in order of position.

    Full-width digits and letters count (NFKC); codes outside their exchange's blocks
    (``600519.SZ``) are dropped. Bare 6-digit numbers are not codes: without a suffix
    the exchange is ambiguous (``000001`` is both Ping An Bank and the SSE index).
    """
    text = unicodedata.normalize("NFKC", text)
    found = [(m.start(), f"{m.group(1)}.{m.group(2)}") for m in _CODE_SUFFIX.finditer(text)]
    found += [(m.start(), f"{m.group(2)}.{m.group(1)}") for m in _CODE_PREFIX.finditer(text)]
    codes = []
    for _, raw in sorted(found):
        code = normalize_ticker(raw)
        if code is not None:
            codes.append(code)
    return codes


class TickerExtractor:
    """Finds tickers in text: cashtags, A-share codes and company names mapped to tickers.

    Args:
        companies: company name (as written in text) -> ticker (``ACME``, or an A-share
            code such as ``600519.SH``). Latin-script names match whole words,
            case-insensitively; names with Chinese characters match anywhere (Chinese
            has no spaces), the longest name first (``中国平安`` before ``平安``).
        max_tickers: at most this many tickers are kept per message, in order of
            first appearance.

    Raises:
        RuleConfigError: a company maps to something that is not a valid ticker.
    """

    def __init__(self, companies: Mapping[str, str] | None = None, max_tickers: int = 5) -> None:
        self.companies: dict[str, str] = {}
        for name, ticker in (companies or {}).items():
            canonical = normalize_ticker(ticker) if isinstance(ticker, str) else None
            if canonical is None:
                raise RuleConfigError(f"companies[{name!r}]", ticker, "not a ticker symbol")
            self.companies[unicodedata.normalize("NFKC", name).strip()] = canonical
        self.max_tickers = max_tickers
        self._lookup = {name.lower(): ticker for name, ticker in self.companies.items()}
        latin = sorted((n for n in self.companies if not _HAN.search(n)), key=len, reverse=True)
        han = sorted((n for n in self.companies if _HAN.search(n)), key=len, reverse=True)
        self._names = (
            re.compile(r"\b(" + "|".join(re.escape(n) for n in latin) + r")\b", re.IGNORECASE)
            if latin
            else None
        )
        # Alternatives are tried in order, so longest-first gives the longest match.
        self._han_names = (
            re.compile("(" + "|".join(re.escape(n) for n in han) + ")", re.IGNORECASE)
            if han
            else None
        )

    def extract(self, text: str, declared: Iterable[str] = ()) -> list[str]:
        """Tickers of one message: declared ones first, then cashtags and A-share codes,
        then company names (each group in order of appearance)."""
        found: list[str | None] = [normalize_ticker(t) for t in declared]
        found.extend(m.group(1).upper() for m in CASHTAG.finditer(text))
        found.extend(find_a_share_codes(text))
        normalized = unicodedata.normalize("NFKC", text)
        names: list[tuple[int, str]] = []
        for pattern in (self._names, self._han_names):
            if pattern is not None:
                names.extend(
                    (m.start(), self._lookup[m.group(1).lower()])
                    for m in pattern.finditer(normalized)
                )
        found.extend(ticker for _, ticker in sorted(names))
        unique: list[str] = []
        for ticker in found:
            if ticker and TICKER_SHAPE.match(ticker) and ticker not in unique:
                unique.append(ticker)
        return unique[: self.max_tickers]


def _read_mapping(text: str, where: str) -> dict[str, str]:
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise RuleConfigError("companies_file", where, "must be a YAML mapping of name: TICKER")
    return data


def load_companies(path: Path | None = None) -> dict[str, str]:
    """Read a ``name: TICKER`` YAML mapping.

    With ``path`` None: the bundled demo list (fictional English companies) together
    with the bundled A-share dictionary (``demo_data/companies_zh.yaml``: Chinese short
    names -> ``600519.SH``-style codes).

    Raises:
        RuleConfigError: the file is not a mapping of strings.
    """
    if path is not None:
        return _read_mapping(Path(path).read_text(encoding="utf-8"), str(path))
    bundled: dict[str, str] = {}
    for name in ("companies.yaml", "companies_zh.yaml"):
        text = resources.files("finance_monitor").joinpath(f"demo_data/{name}").read_text("utf-8")
        bundled.update(_read_mapping(text, f"demo_data/{name}"))
    return bundled
