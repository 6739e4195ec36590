"""The settings every app shares: keys, request limits, proxies, shutdown, retention."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from keel_service.db import DatabaseURLError, normalise_url, sqlite_url
from keel_service.errors import InsecureConfigError
from keel_service.security import KeyRing, Role

#: Keys that must never protect a real deployment (earlier releases defaulted to the first).
KNOWN_DEFAULT_KEYS = frozenset({"dev-key", "changeme", "change-me", "secret", "password"})
MIN_KEY_CHARS = 12


class ServiceSettings(BaseSettings):
    """Base of each app's ``Settings`` (each sets its own ``env_prefix``).

    Attributes:
        api_key: the admin key (header ``X-API-Key``); every state-changing endpoint needs
            it or a narrower role's key. No default: an app refuses to start without one.
        max_body_bytes: request bodies larger than this are refused with 413 before parsing.
        trusted_proxy_header: header that carries the client address when the request comes
            from a trusted proxy (for example ``X-Forwarded-For``); off by default.
        trusted_proxies: peer addresses whose ``trusted_proxy_header`` is believed.
        shutdown_timeout_s: how long a stopping server waits for requests in flight.
        retention_interval_s: how often the retention job runs.
        json_logs: log one JSON object per line (one per request from the access log).
        database_url: SQLAlchemy URL (``sqlite:///PATH`` or ``postgresql://…``); unset, each
            app uses a SQLite file in its state folder (:meth:`resolve_database_url`).
    """

    # hide_input_in_errors: a validation error must not echo a key or a database password.
    model_config = SettingsConfigDict(extra="ignore", hide_input_in_errors=True)

    api_key: SecretStr | None = None
    max_body_bytes: int = Field(default=1_000_000, ge=1_024, le=1_000_000_000)
    trusted_proxy_header: str | None = None
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    shutdown_timeout_s: float = Field(default=10.0, gt=0, le=600)
    retention_interval_s: float = Field(default=3600.0, gt=0)
    json_logs: bool = False
    database_url: str | None = None

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _usable_database_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            normalise_url(value)
        except DatabaseURLError as exc:
            raise ValueError(str(exc)) from None
        return value

    def resolve_database_url(self, default_file: Path) -> str:
        """``database_url``, else the SQLite file ``default_file``."""
        return self.database_url or sqlite_url(default_file)

    def role_keys(self) -> dict[Role, SecretStr | None]:
        """The key of each role; apps with more roles extend this."""
        return {Role.ADMIN: self.api_key}

    def keyring(self) -> KeyRing:
        """The keys this app accepts, by role."""
        return KeyRing(self.role_keys())

    def check_keys(self, env_prefix: str) -> None:
        """Refuse to serve with a missing, default or short key.

        Raises:
            InsecureConfigError: naming the environment variable and how to set it.
        """
        for role, key in self.role_keys().items():
            var = f"{env_prefix}{'API' if role is Role.ADMIN else role.value.upper()}_KEY"
            if key is None:
                if role is Role.ADMIN:
                    raise InsecureConfigError(
                        f"{var} is not set. Every state-changing endpoint needs a key: set it "
                        f"to a secret, for example `export {var}=$(python3 -c "
                        "'import secrets; print(secrets.token_urlsafe(24))')`"
                    )
                continue
            value = key.get_secret_value()
            if value.strip().lower() in KNOWN_DEFAULT_KEYS or len(value) < MIN_KEY_CHARS:
                raise InsecureConfigError(
                    f"{var} is a default or too short (under {MIN_KEY_CHARS} characters); "
                    f"set it to a secret, for example `export {var}=$(python3 -c "
                    "'import secrets; print(secrets.token_urlsafe(24))')`"
                )
