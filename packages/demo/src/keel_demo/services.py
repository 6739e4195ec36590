"""The demo's services: how to prepare, start and check each app."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Page:
    label: str
    path: str


@dataclass(frozen=True)
class AppService:
    """One Keel app as the demo runs it (console script + uvicorn factory)."""

    name: str
    title: str
    summary: str
    cli: str  # console script with `prepare` (and, for the finance monitor, `replay`)
    factory: str  # uvicorn --factory import string
    env_prefix: str  # pydantic-settings prefix of the app's Settings
    port_offset: int
    pages: tuple[Page, ...] = field(default_factory=tuple)
    key_names: tuple[str, ...] = ("API",)  # <prefix><NAME>_KEY settings the app reads
    # Settings the demo gives the app unless the environment sets them.
    defaults: tuple[tuple[str, str], ...] = ()

    def key_vars(self) -> tuple[str, ...]:
        """The environment variables of the app's keys (the admin key first)."""
        return tuple(f"{self.env_prefix}{name}_KEY" for name in self.key_names)


APPS: tuple[AppService, ...] = (
    AppService(
        name="customer_service",
        title="Customer-service bot",
        summary="Chat with the Bramble Bank help bot; answers cite help-centre articles; "
        "ask for a human and pick the conversation up on the agent page.",
        cli="customer-service",
        factory="customer_service.main:create_app",
        env_prefix="KEEL_CS_",
        port_offset=1,
        pages=(Page("Chat", "/"), Page("Agent queue", "/agent")),
        key_names=("API", "AGENT"),
        # The demo serves the English and the Chinese help centre.
        defaults=(("KEEL_CS_LANGUAGES", "en,zh"), ("KEEL_CS_UPGRADE", "on")),
    ),
    AppService(
        name="finance_monitor",
        title="Finance sentiment monitor",
        summary="Streams demo headlines through Kafka, tags topic and sentiment, "
        "charts the trend per topic and raises alerts on negative surges.",
        cli="finance-monitor",
        factory="finance_monitor.main:create_app",
        env_prefix="KEEL_FM_",
        port_offset=2,
        pages=(Page("Dashboard", "/"),),
        defaults=(("KEEL_FM_UPGRADE", "on"),),
    ),
    AppService(
        name="recommender",
        title="Recommendation reranker",
        summary="Pick a demo user and see candidates reranked by text-semantic interest "
        "blended with collaborative signals, with reasons.",
        cli="recommender",
        factory="recommender.main:create_app",
        env_prefix="KEEL_REC_",
        port_offset=3,
        pages=(Page("Playground", "/"),),
        key_names=("API", "WRITER"),
        defaults=(("KEEL_REC_UPGRADE", "on"),),
    ),
)
