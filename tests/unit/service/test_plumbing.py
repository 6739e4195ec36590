"""keel_service: keys with roles, body limit, client identity, readiness, errors, jobs."""

from __future__ import annotations

import threading
from typing import Annotated

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel, SecretStr
from pydantic_settings import SettingsConfigDict

from keel_service import (
    ClientIdentifier,
    InsecureConfigError,
    PeriodicJob,
    Readiness,
    Role,
    ServiceSettings,
    Status,
    configure_app,
    health_router,
    install_error_handlers,
    public_error,
    require_role,
)

ADMIN = "admin-key-0123456789"
AGENT = "agent-key-0123456789"


class _Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KEEL_TEST_", extra="ignore")
    agent_key: SecretStr | None = None

    def role_keys(self) -> dict[Role, SecretStr | None]:
        return {Role.ADMIN: self.api_key, Role.AGENT: self.agent_key}


class _AppError(Exception):
    pass


class _Missing(_AppError):
    pass


class _Broken(_AppError):
    pass


class _Body(BaseModel):
    text: str


def _app(settings: _Settings | None = None, ready: Status = Status.OK) -> FastAPI:
    settings = settings or _Settings(
        api_key=SecretStr(ADMIN), agent_key=SecretStr(AGENT), max_body_bytes=2048
    )
    app = FastAPI()
    configure_app(app, settings, env_prefix="KEEL_TEST_")
    install_error_handlers(app, [(_Missing, 404), (_Broken, 500)], root=_AppError)

    @app.post("/admin/thing", dependencies=[require_role(Role.ADMIN)])
    def admin_thing(body: _Body) -> dict[str, int]:
        return {"chars": len(body.text)}

    @app.post("/agent/thing")
    def agent_thing(role: Annotated[Role, require_role(Role.AGENT)]) -> dict[str, str]:
        return {"role": role.value}

    @app.get("/missing")
    def missing() -> None:
        raise _Missing("no such thing: 42")

    @app.get("/broken")
    def broken() -> None:
        raise _Broken("password=hunter2 at postgres://user:pw@db")

    @app.get("/who")
    def who(request: Request) -> dict[str, str]:
        return {"client": request.app.state.client_id(request)}

    app.include_router(
        health_router(lambda _r: Readiness(ready, reasons=[] if ready is Status.OK else ["x"]))
    )
    return app


def test_admin_key_opens_everything_agent_key_only_agent_routes() -> None:
    client = TestClient(_app())
    assert (
        client.post("/admin/thing", json={"text": "a"}, headers={"X-API-Key": ADMIN}).status_code
        == 200
    )
    assert client.post("/agent/thing", headers={"X-API-Key": ADMIN}).json() == {"role": "admin"}
    assert client.post("/agent/thing", headers={"X-API-Key": AGENT}).json() == {"role": "agent"}
    forbidden = client.post("/admin/thing", json={"text": "a"}, headers={"X-API-Key": AGENT})
    assert forbidden.status_code == 403
    assert "admin" in forbidden.json()["detail"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": ""}, {"X-API-Key": "wrong"}, {"X-API-Key": ADMIN + " "}],
)
def test_missing_or_wrong_key_is_401(headers: dict[str, str]) -> None:
    response = TestClient(_app()).post("/admin/thing", json={"text": "a"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "ApiKey"


def test_non_ascii_key_is_401_not_500() -> None:
    client = TestClient(_app(), raise_server_exceptions=False)
    raw = [(b"x-api-key", "clé-ключ-鍵".encode()), (b"content-type", b"application/json")]
    response = client.post("/admin/thing", content=b'{"text": "a"}', headers=raw)
    assert response.status_code == 401
    latin = [(b"x-api-key", "sch\xf6n".encode("latin-1"))]
    assert client.post("/agent/thing", headers=latin).status_code == 401


def test_openapi_documents_the_key_scheme() -> None:
    schema = TestClient(_app()).get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert any(s["type"] == "apiKey" and s["name"] == "X-API-Key" for s in schemes.values())


def test_oversized_body_is_413_before_parsing() -> None:
    client = TestClient(_app())
    big = b'{"text": "' + b"x" * 5000 + b'"}'
    declared = client.post(
        "/admin/thing",
        content=big,
        headers={"X-API-Key": ADMIN, "content-type": "application/json"},
    )
    assert declared.status_code == 413

    def chunks():  # no Content-Length: counted while it streams
        for _ in range(10):
            yield b"x" * 1000

    streamed = client.post(
        "/admin/thing",
        content=chunks(),
        headers={"X-API-Key": ADMIN, "content-type": "application/json"},
    )
    assert streamed.status_code == 413
    small = client.post("/admin/thing", json={"text": "fits"}, headers={"X-API-Key": ADMIN})
    assert small.status_code == 200


def test_5xx_never_carries_exception_text_4xx_does() -> None:
    client = TestClient(_app(), raise_server_exceptions=False)
    broken = client.get("/broken")
    assert broken.status_code == 500
    assert "hunter2" not in broken.text and "postgres" not in broken.text
    missing = client.get("/missing")
    assert missing.status_code == 404 and "42" in missing.json()["detail"]


def test_readiness_and_liveness() -> None:
    ok = TestClient(_app())
    assert ok.get("/livez").json() == {"status": "alive"}
    assert ok.get("/readyz").status_code == 200
    assert ok.get("/healthz").json()["status"] == "ok"
    degraded = TestClient(_app(ready=Status.DEGRADED))
    response = degraded.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "degraded", "reasons": ["x"]}
    assert degraded.get("/livez").status_code == 200


def test_public_error_names_the_type_only() -> None:
    text = public_error("start-up failed", RuntimeError("token=abc123 at http://h/x"))
    assert "RuntimeError" in text and "abc123" not in text and "http" not in text


@pytest.mark.parametrize("key", [None, "dev-key", "DEV-KEY", "short"])
def test_default_missing_or_short_keys_refuse_to_start(key: str | None) -> None:
    settings = _Settings(api_key=SecretStr(key) if key is not None else None)
    with pytest.raises(InsecureConfigError, match="KEEL_TEST_API_KEY") as caught:
        _app(settings)
    assert "secrets.token_urlsafe" in str(caught.value)  # says how to set one


def test_a_weak_optional_role_key_is_refused_too() -> None:
    settings = _Settings(api_key=SecretStr(ADMIN), agent_key=SecretStr("dev-key"))
    with pytest.raises(InsecureConfigError, match="KEEL_TEST_AGENT_KEY"):
        _app(settings)


def test_client_id_uses_proxy_header_only_from_trusted_peers() -> None:
    scope_from = {"type": "http", "headers": [(b"x-forwarded-for", b"203.0.113.7, 10.0.0.1")]}
    trusted = ClientIdentifier("X-Forwarded-For", ["127.0.0.1"])
    assert trusted(Request({**scope_from, "client": ("127.0.0.1", 1)})) == "203.0.113.7"
    assert trusted(Request({**scope_from, "client": ("198.51.100.2", 1)})) == "198.51.100.2"
    off = ClientIdentifier(None, ["127.0.0.1"])
    assert off(Request({**scope_from, "client": ("127.0.0.1", 1)})) == "127.0.0.1"
    garbage = {"type": "http", "headers": [(b"x-forwarded-for", b"not-an-ip")]}
    assert trusted(Request({**garbage, "client": ("127.0.0.1", 1)})) == "127.0.0.1"


def test_periodic_job_survives_failures() -> None:
    calls: list[int] = []
    done = threading.Event()

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first run fails")
        done.set()

    job = PeriodicJob("test", 0.01, flaky)
    job.start()
    try:
        assert done.wait(60)
    finally:
        job.stop()
    assert job.failures == 1 and job.runs >= 1
    with pytest.raises(ValueError):
        PeriodicJob("bad", 0, flaky)


def test_request_ids_json_access_log_and_route_metrics(caplog: pytest.LogCaptureFixture) -> None:
    import json
    import logging

    from keel_service import JsonFormatter, app_metrics

    app = _app()

    @app.get("/metrics")
    def metrics(request: Request):  # type: ignore[no-untyped-def]
        return app_metrics(request, None, lambda _r: Readiness(Status.DEGRADED))

    client = TestClient(app)
    with caplog.at_level(logging.INFO, logger="keel.access"):
        kept = client.get("/missing", headers={"X-Request-ID": "abc-123"})
        fresh = client.get("/missing", headers={"X-Request-ID": "bad id with spaces"})
    assert kept.headers["x-request-id"] == "abc-123"
    assert fresh.headers["x-request-id"] != "bad id with spaces"
    assert len(fresh.headers["x-request-id"]) == 32
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.msg == "request"]
    assert lines[0] | {"latency_ms": 0} == {
        "ts": lines[0]["ts"],
        "level": "info",
        "logger": "keel.access",
        "msg": "request",
        "route": "/missing",
        "method": "GET",
        "status": 404,
        "latency_ms": 0,
        "request_id": "abc-123",
    }
    text = client.get("/metrics").text
    assert 'http_requests_total{method="GET",route="/missing",status="404"} 2.0' in text
    assert 'http_request_duration_seconds_count{method="GET",route="/missing"} 2.0' in text
    client.get("/no/such/path/42")
    assert 'route="unmatched"' in client.get("/metrics").text  # no per-path label explosion
    assert "keel_ready 0.0" in text  # the readiness check said degraded


def test_an_unavailable_database_is_503_with_retry_after_and_no_text() -> None:
    import sqlalchemy as sa

    app = _app()

    @app.get("/db")
    def db() -> None:
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("password=hunter2 locked"))

    response = TestClient(app, raise_server_exceptions=False).get("/db")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert "hunter2" not in response.text
