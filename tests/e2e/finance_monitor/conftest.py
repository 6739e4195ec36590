"""Session fixture: the finance monitor's models, trained once on the bundled demo data."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def fm_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Models prepared once per session (small budget, demo headlines)."""
    from tests.integration.finance_monitor.fm_support import prepare_test_models

    return prepare_test_models(tmp_path_factory.mktemp("fm-models"))
