"""keel_service: the web plumbing every Keel app shares, and nothing app-specific.

Settings base with secret keys, API-key security with roles, readiness/liveness,
error-to-HTTP mapping, request limits, periodic jobs and server spawning. The engine
(``keel``) stays free of FastAPI; this package is where the apps' web layer meets.
"""

from keel_service.app import NO_OPENTELEMETRY, app_metrics, configure_app, run_server, serve
from keel_service.budget import Budget, budget_argument
from keel_service.errors import (
    InsecureConfigError,
    ServiceError,
    install_error_handlers,
    install_validation_handler,
    printable,
    validation_detail,
)
from keel_service.health import Readiness, Status, health_router, public_error
from keel_service.jobs import PeriodicJob
from keel_service.limits import BodySizeLimitMiddleware, ClientIdentifier, RateLimiter
from keel_service.observability import REQUEST_ID_HEADER, JsonFormatter, metrics_response
from keel_service.security import API_KEY_HEADER, KeyRing, Role, require_role
from keel_service.settings import ServiceSettings

__all__ = [
    "API_KEY_HEADER",
    "NO_OPENTELEMETRY",
    "REQUEST_ID_HEADER",
    "BodySizeLimitMiddleware",
    "Budget",
    "ClientIdentifier",
    "InsecureConfigError",
    "JsonFormatter",
    "KeyRing",
    "PeriodicJob",
    "RateLimiter",
    "Readiness",
    "Role",
    "ServiceError",
    "ServiceSettings",
    "Status",
    "app_metrics",
    "budget_argument",
    "configure_app",
    "health_router",
    "install_error_handlers",
    "install_validation_handler",
    "metrics_response",
    "printable",
    "public_error",
    "require_role",
    "run_server",
    "serve",
    "validation_detail",
]
