"""Kept for older imports: the server helpers live in ``keel_service.servers``."""

from keel_service.servers import (
    ServerStartError,
    free_port,
    start_app_server,
    stop_process_group,
)

__all__ = ["ServerStartError", "free_port", "start_app_server", "stop_process_group"]
