"""Schemathesis against the finance monitor's OpenAPI schema: no input gives a server error."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel_service.servers import start_app_server
from tests.integration.finance_monitor.fm_support import API_KEY, fm_env
from tests.support.fuzz import explain, fuzz_for_server_errors

pytestmark = pytest.mark.integration
MIN_OPERATIONS = 5


def test_fuzzing_the_api_finds_no_server_error(
    kafka_bootstrap: str, fm_models_dir: Path, tmp_path: Path
) -> None:
    env = fm_env(kafka_bootstrap, tmp_path / "state", fm_models_dir)
    with start_app_server("finance_monitor.main:create_app", env=env, timeout_s=300) as url:
        # The SSE stream never ends by design; the fuzzer cannot read it to completion.
        result = fuzz_for_server_errors(
            url, API_KEY, tmp_path / "fuzz", exclude_paths=["/api/stream"]
        )
    assert result.returncode == 0, explain(result)
    assert result.operations >= MIN_OPERATIONS, explain(result)  # the fuzzer really ran
    assert result.failed_operations == []
