"""Shared fixtures: one real Kafka broker and one real PostgreSQL per test session (each
started lazily, by the project's own scripts), and a database URL on either back end."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import keel_service.heap

# Apps built in this process (TestClient) must not freeze its heap: every test's app
# would stay frozen, with its cycles never collected. Servers the tests start as
# processes freeze theirs as in production.
keel_service.heap.freeze_enabled = False

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_LOCAL = REPO_ROOT / "scripts" / "kafka_local.py"
POSTGRES_LOCAL = REPO_ROOT / "scripts" / "postgres_local.py"
ALERTMANAGER_LOCAL = REPO_ROOT / "scripts" / "alertmanager_local.py"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# Parallel runs (`make test` runs pytest-xdist with `--dist loadgroup`): each worker is a
# separate session with its own broker, PostgreSQL, Alertmanager and prepared states, so
# every test of one app's integration and e2e folders goes to one worker as one group and
# the app's models are prepared once, not once per worker. Unit tests are spread one by
# one; the demo's test is a group of its own (it starts its own broker and apps). The
# groups are made here from the test paths: pytest-xdist's `xdist_group` marker no longer
# groups anything under pytest 9 (xdist renames the test ids through an attribute that
# pytest 9 stopped reading).
_XDIST_GROUPS = {
    "customer_service": "customer_service",
    "recommender": "recommender",
    "finance_monitor": "finance_monitor",
    "platform": "finance_monitor",  # the Kafka broker's test: the finance group's broker
    "demo": "demo",
}


def xdist_group_of(nodeid: str) -> str | None:
    """The worker group of a test id: its app for ``tests/{integration,e2e}/<app>/...``,
    else None (the test is scheduled on its own)."""
    parts = nodeid.split("::", 1)[0].split("/")
    if len(parts) >= 4 and parts[0] == "tests" and parts[1] in ("integration", "e2e"):
        return _XDIST_GROUPS.get(parts[2])
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """With ``--dist loadgroup``: xdist's scope scheduler, the scopes being the app groups
    above (each test outside them its own scope)."""
    if config.getoption("dist", None) != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class AppGroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            group = xdist_group_of(nodeid)
            return f"group:{group}" if group else nodeid

    return AppGroupScheduling(config, log)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real Apache Kafka broker for the whole test session.

    Uses ``KAFKA_BOOTSTRAP_SERVERS`` when set; otherwise starts a single-node KRaft
    broker with ``scripts/kafka-local`` in a temporary folder and stops it at the end.
    """
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    state_dir = tmp_path_factory.mktemp("kafka")
    started = subprocess.run(
        [sys.executable, str(KAFKA_LOCAL), "start", "--dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if started.returncode != 0:
        pytest.fail(f"kafka-local start failed:\n{started.stdout}{started.stderr}")
    address = started.stdout.strip().splitlines()[-1]
    try:
        yield address
    finally:
        subprocess.run(
            [sys.executable, str(KAFKA_LOCAL), "stop", "--dir", str(state_dir)],
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SQLAlchemy URL of a real PostgreSQL for the whole session.

    Uses ``KEEL_POSTGRES_URL`` when set; otherwise starts Debian's PostgreSQL with
    ``scripts/postgres-local`` in a temporary folder and deletes it at the end.
    """
    external = os.environ.get("KEEL_POSTGRES_URL")
    if external:
        yield external
        return
    state_dir = tmp_path_factory.mktemp("postgres")
    started = subprocess.run(
        [sys.executable, str(POSTGRES_LOCAL), "start", "--dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if started.returncode != 0:
        pytest.fail(f"postgres-local start failed:\n{started.stdout}{started.stderr}")
    url = started.stdout.strip().splitlines()[-1]
    try:
        yield url
    finally:
        subprocess.run(
            [sys.executable, str(POSTGRES_LOCAL), "destroy", "--dir", str(state_dir)],
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture()
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    with fresh_postgres_database(postgres_server) as url:
        yield url


@pytest.fixture(scope="module")
def postgres_module_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database shared by one module's tests (dropped afterwards):
    for servers started once per module."""
    with fresh_postgres_database(postgres_server) as url:
        yield url


@contextmanager
def fresh_postgres_database(postgres_server: str) -> Iterator[str]:
    """Create an empty database on the server, yield its URL, drop it afterwards."""
    import sqlalchemy as sa

    name = f"keel_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = (
        sa.engine.make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    )
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL on each back end in turn: embedded SQLite, then a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{(tmp_path / 'test.sqlite3').resolve()}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(scope="session")
def alertmanager_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a real Prometheus Alertmanager for the whole session.

    Uses ``KEEL_ALERTMANAGER_URL`` when set; otherwise starts Debian's
    ``prometheus-alertmanager`` with ``scripts/alertmanager-local`` in a temporary folder
    (the repository's deploy/alertmanager/alertmanager.yml) and stops it at the end.
    """
    external = os.environ.get("KEEL_ALERTMANAGER_URL")
    if external:
        yield external.rstrip("/")
        return
    state_dir = tmp_path_factory.mktemp("alertmanager")
    started = subprocess.run(
        [sys.executable, str(ALERTMANAGER_LOCAL), "start", "--dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if started.returncode != 0:
        pytest.fail(f"alertmanager-local start failed:\n{started.stdout}{started.stderr}")
    url = started.stdout.strip().splitlines()[-1]
    try:
        yield url
    finally:
        subprocess.run(
            [sys.executable, str(ALERTMANAGER_LOCAL), "stop", "--dir", str(state_dir)],
            capture_output=True,
            text=True,
            timeout=60,
        )


# The apps' prepared models, once per session and shared by the integration and e2e tests
# (each folder's conftest used to prepare its own: the finance models were trained twice).


@pytest.fixture(scope="session")
def cs_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Support bot: intent model + KB index prepared once per session from the demo data."""
    from tests.integration.customer_service.cs_support import prepare_state

    return prepare_state(tmp_path_factory.getbasetemp() / "customer-service-state")


@pytest.fixture(scope="session")
def cs_server_state(cs_state_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """State folder of the shared support-bot server (``cs_url``): a copy of the prepared
    one with its own database and knowledge-base index, the models linked."""
    from tests.integration.customer_service.cs_support import copy_state

    return copy_state(cs_state_dir, tmp_path_factory.mktemp("cs-server") / "state")


@pytest.fixture(scope="session")
def cs_url(cs_server_state: Path) -> Iterator[str]:
    """Base URL of one real support-bot server (uvicorn subprocess) for the whole session:
    the tests that share it each start their own conversations."""
    from keel_service.servers import start_app_server
    from tests.integration.customer_service.cs_support import APP, server_env

    with start_app_server(APP, env=server_env(cs_server_state), timeout_s=180) as url:
        yield url


@pytest.fixture(scope="session")
def cs_bilingual_url(cs_state_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A support-bot server speaking English and Chinese (``KEEL_CS_LANGUAGES=en,zh``) for
    the Chinese integration and e2e tests: the session's prepared state plus the Chinese
    pipeline (me5-small, prepared once), on its own copy with its own database."""
    from keel_service.servers import start_app_server
    from tests.integration.customer_service.cs_support import APP, bilingual_state, server_env

    state = bilingual_state(cs_state_dir, tmp_path_factory.mktemp("cs-bilingual") / "state")
    env = server_env(state, KEEL_CS_LANGUAGES="en,zh")
    with start_app_server(APP, env=env, timeout_s=600) as url:
        yield url


@pytest.fixture(scope="session")
def rec_prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Recommender: state dir prepared once per session from the bundled demo data."""
    from tests.integration.recommender.rec_support import prepare_state

    return prepare_state(tmp_path_factory.getbasetemp() / "recommender-state")


@pytest.fixture(scope="session")
def fm_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Finance monitor: models trained once per session (small budget, demo headlines)."""
    from tests.integration.finance_monitor.fm_support import prepare_test_models

    return prepare_test_models(tmp_path_factory.mktemp("fm-models"))
