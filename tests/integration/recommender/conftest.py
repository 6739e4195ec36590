"""Fixtures: recommender models prepared once per session and a running server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


@pytest.fixture(scope="module")
def rec_url(rec_prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a real recommender server (uvicorn subprocess) on a private state copy."""
    from keel_service.servers import start_app_server
    from tests.integration.recommender.rec_support import APP, copy_state, server_env

    state = copy_state(rec_prepared, tmp_path_factory.mktemp("rec") / "state")
    with start_app_server(APP, env=server_env(state), timeout_s=240) as url:
        yield url


@pytest.fixture()
def client(rec_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=rec_url, timeout=60) as http:
        yield http
