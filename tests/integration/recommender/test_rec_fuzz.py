"""Schemathesis against the recommender's OpenAPI schema: no input gives a server error."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel_service.servers import start_app_server
from tests.integration.recommender.rec_support import API_KEY, APP, copy_state, server_env
from tests.support.fuzz import explain, fuzz_for_server_errors

pytestmark = pytest.mark.integration
MIN_OPERATIONS = 5


def test_fuzzing_the_api_finds_no_server_error(rec_prepared: Path, tmp_path: Path) -> None:
    state = copy_state(rec_prepared, tmp_path / "state")  # the fuzzer changes the catalogue
    with start_app_server(APP, env=server_env(state), timeout_s=240) as url:
        result = fuzz_for_server_errors(url, API_KEY, tmp_path / "fuzz")
    assert result.returncode == 0, explain(result)
    assert result.operations >= MIN_OPERATIONS, explain(result)  # the fuzzer really ran
    assert result.failed_operations == []
