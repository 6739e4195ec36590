"""API keys with roles, as a FastAPI security scheme (so ``/docs`` shows it)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any

from fastapi import HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader
from pydantic import SecretStr

API_KEY_HEADER = "X-API-Key"


class Role(StrEnum):
    """What a key may do; ``admin`` may do everything a narrower role may."""

    AGENT = "agent"
    WRITER = "writer"
    ADMIN = "admin"


class KeyRing:
    """The keys an app accepts, by role. Comparison is constant-time on bytes."""

    def __init__(self, keys: Mapping[Role, SecretStr | None]) -> None:
        self._keys = {
            role: key.get_secret_value().encode("utf-8")
            for role, key in keys.items()
            if key is not None
        }

    def role_of(self, presented: str) -> Role | None:
        """The role of ``presented``, or None when it matches no key.

        Any string is accepted (Starlette decodes headers as Latin-1, so a non-ASCII key
        arrives as such characters); it is compared as UTF-8 bytes, never raising.
        """
        given = presented.encode("utf-8", "surrogatepass")
        found: Role | None = None
        for role, key in self._keys.items():
            # Compare with every key so the time does not reveal which one matched.
            if hmac.compare_digest(given, key) and found is None:
                found = role
        return found

    def allows(self, presented: str | None, role: Role) -> bool:
        """Whether ``presented`` grants ``role`` (the admin key grants every role)."""
        if presented is None:
            return False
        found = self.role_of(presented)
        return found is not None and (found is role or found is Role.ADMIN)


_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="API key; the admin key works wherever a narrower role's key does",
)


def keyring_of(request: Request) -> KeyRing:
    """The app's key ring (``create_app`` puts it on ``app.state.keyring``)."""
    ring: KeyRing = request.app.state.keyring
    return ring


def require_role(role: Role) -> Any:
    """A dependency that refuses the request unless its key grants ``role``.

    Missing or unknown key: 401. A valid key of a narrower role: 403.
    """

    def dependency(
        request: Request,
        key: Annotated[str | None, Security(_header)] = None,
    ) -> Role:
        ring = keyring_of(request)
        found = ring.role_of(key) if key else None
        if found is None:
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail=f"missing or wrong {API_KEY_HEADER} header",
                headers={"WWW-Authenticate": "ApiKey"},
            )
        if not ring.allows(key, role):
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=f"this key may not do that (needs the {role.value} role)",
            )
        return found

    dependency.__name__ = f"require_{role.value}_key"
    return Security(dependency)
