"""Fixtures: a client of the session's support-bot server (``cs_url``, tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest


@pytest.fixture()
def client(cs_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cs_url, timeout=30) as http:
        yield http
