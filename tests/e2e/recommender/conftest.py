"""Fixtures: a recommender server for the browser tests (models prepared once)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def rec_url(rec_prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server for the browser tests (they only add their own items and events)."""
    from keel_service.servers import start_app_server
    from tests.integration.recommender.rec_support import APP, copy_state, server_env

    state = copy_state(rec_prepared, tmp_path_factory.mktemp("rec-e2e") / "state")
    with start_app_server(APP, env=server_env(state), timeout_s=240) as url:
        yield url
