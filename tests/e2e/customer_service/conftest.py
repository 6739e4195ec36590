"""A real customer-service server for the browser tests (models prepared once per session)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def cs_url(cs_state_dir: Path) -> Iterator[str]:
    from keel_service.servers import start_app_server
    from tests.integration.customer_service.cs_support import APP, server_env

    with start_app_server(APP, env=server_env(cs_state_dir), timeout_s=180) as url:
        yield url
