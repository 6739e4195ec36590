"""Schemathesis against the support bot's OpenAPI schema: no input gives a server error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from keel_service.servers import start_app_server
from tests.integration.customer_service.cs_support import API_KEY, APP, server_env
from tests.support.fuzz import explain, fuzz_for_server_errors

pytestmark = pytest.mark.integration
MIN_OPERATIONS = 5


def test_fuzzing_the_api_finds_no_server_error(cs_state_dir: Path, tmp_path: Path) -> None:
    # A private copy: the fuzzer writes and deletes documents with the admin key.
    state = shutil.copytree(cs_state_dir, tmp_path / "state")
    with start_app_server(APP, env=server_env(state), timeout_s=240) as url:
        # /admin/retrain and /admin/reindex rebuild models and indexes on every call
        # (tens of seconds each); their bodies are empty, so there is nothing to fuzz.
        result = fuzz_for_server_errors(
            url, API_KEY, tmp_path / "fuzz", exclude_paths=["/admin/retrain", "/admin/reindex"]
        )
    assert result.returncode == 0, explain(result)
    assert result.operations >= MIN_OPERATIONS, explain(result)  # the fuzzer really ran
    assert result.failed_operations == []
