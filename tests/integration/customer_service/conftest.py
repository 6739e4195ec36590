"""Fixtures: the customer-service models prepared once per session and a running server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


@pytest.fixture(scope="module")
def cs_url(cs_state_dir: Path) -> Iterator[str]:
    """Base URL of a real customer-service server (uvicorn subprocess)."""
    from keel_service.servers import start_app_server
    from tests.integration.customer_service.cs_support import APP, server_env

    with start_app_server(APP, env=server_env(cs_state_dir), timeout_s=180) as url:
        yield url


@pytest.fixture()
def client(cs_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cs_url, timeout=30) as http:
        yield http
