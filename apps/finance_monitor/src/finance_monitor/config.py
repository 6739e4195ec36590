"""Typed service settings, read from ``KEEL_FM_*`` environment variables (and ``KAFKA_BOOTSTRAP_SERVERS``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from keel_service import Budget, ServiceSettings

ENV_PREFIX = "KEEL_FM_"


class Settings(ServiceSettings):
    """Everything the finance monitor can be configured with; every field has a working default."""

    # Inputs stay out of validation errors: a database URL can carry a password.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", hide_input_in_errors=True
    )

    state_dir: Path = Path("var/finance_monitor")
    data_dir: Path | None = None
    models_dir_override: Path | None = Field(
        default=None, validation_alias=AliasChoices("KEEL_FM_MODELS_DIR", "models_dir_override")
    )

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KEEL_FM_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    raw_topic: str = "finance.raw"
    scored_topic: str = "finance.scored"
    dlq_topic: str = "finance.dlq"
    alerts_topic: str = "finance.alerts"
    topic_partitions: int = Field(default=4, ge=1, le=256)
    scorer_group: str = "finance-scorer"
    trend_group: str = "finance-trend"
    run_workers: bool = True

    budget: Budget = Budget.FAST
    model_max_length: int = Field(default=48, ge=8, le=256)
    # Encoder threads and texts per encoder pass: measured at start-up (encoder_tuning)
    # unless set here; tune_encoder=false keeps the library's threads and batch_size.
    num_threads: int | None = Field(default=None, ge=1)
    encoder_batch_size: int | None = Field(default=None, ge=1, le=10_000)
    tune_encoder: bool = True
    # Raw messages per poll (and the largest encoder batch tried).
    batch_size: int = Field(default=256, ge=1, le=10_000)
    # Verdicts of recent texts kept for exact repeats (whitespace-normalised); 0 turns it off.
    score_cache_size: int = Field(default=50_000, ge=0, le=10_000_000)
    # Static-embedding first tier (model2vec table distilled from the encoder, ~100x
    # faster): it answers the English texts its heads are sure of and sends the rest to
    # the transformer (thresholds chosen at preparation, see docs/finance-monitor.md).
    static_tier: bool = True
    max_text_chars: int = Field(default=10_000, ge=10, le=100_000)
    companies_file: Path | None = None
    # Chinese headlines get their own topic + sentiment heads on me5-small (prepared with
    # the English ones); false: the English heads score every text.
    chinese: bool = True
    # Share of Chinese headlines in ``replay --demo`` (when ``chinese`` is on).
    replay_chinese_share: float = Field(default=0.25, ge=0.0, le=1.0)
    # Live upgrade (finance_monitor.upgrade): score with the fast model at once, train the
    # full one in a niced child process, swap it into the in-process scorer only when it
    # scores higher on held-out rows. Off by default; the demo turns it on.
    upgrade: bool = False
    upgrade_min_gain: float = Field(default=0.0, ge=0.0, le=1.0)
    upgrade_nice: int = Field(default=15, ge=0, le=19)
    upgrade_delay_s: float = Field(default=0.0, ge=0.0)

    window_size_s: float = Field(default=60.0, gt=0)
    sliding_size_s: float = Field(default=300.0, gt=0)
    sliding_step_s: float = Field(default=60.0, gt=0)
    watermark_delay_s: float = Field(default=5.0, ge=0)
    allowed_lateness_s: float = Field(default=10.0, ge=0)
    rules_file: Path | None = None
    # Event-time bounds: records outside [now - past, now + future] go to the DLQ, and the
    # watermark never runs ahead of wall clock + future skew.
    max_future_skew_s: float = Field(default=600.0, ge=0)
    max_past_skew_s: float = Field(default=7 * 86400.0, gt=0)
    dedup_cache_size: int = Field(default=100_000, ge=0, le=10_000_000)
    rule_state_max_series: int = Field(default=10_000, ge=10)
    rule_state_idle_s: float = Field(default=7 * 86400.0, gt=0)

    restart_backoff_s: float = Field(default=1.0, gt=0)
    restart_backoff_max_s: float = Field(default=30.0, gt=0)
    degraded_restarts: int = Field(default=3, ge=1)
    degraded_window_s: float = Field(default=300.0, gt=0)

    retention_days_trend_points: float = Field(default=30.0, gt=0)
    retention_days_alerts: float = Field(default=90.0, gt=0)
    retention_interval_s: float = Field(default=3600.0, gt=0)
    sse_max_subscribers: int = Field(default=50, ge=1)

    webhook_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_max_retries: int = Field(default=5, ge=0, le=20)
    webhook_backoff_s: float = Field(default=0.5, gt=0)
    webhook_max_backoff_s: float = Field(default=300.0, gt=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    delivery_claim_timeout_s: float = Field(default=60.0, gt=0)
    group_by: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["rule", "series"])
    group_wait_s: float = Field(default=1.0, ge=0)
    webhook_send_resolved: bool = True

    # Prometheus Alertmanager (``http://am.internal:9093``): alerts are posted to its v2 API.
    alertmanager_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KEEL_FM_ALERTMANAGER_URL", "alertmanager_url"),
    )
    alertmanager_resend_s: float = Field(default=60.0, gt=0, le=3600)
    alert_max_firing_s: float = Field(default=86400.0, gt=0)
    # Alert lifecycle and evidence.
    resolve_after_windows: int = Field(default=1, ge=1, le=100)
    evidence_size: int = Field(default=20, ge=0, le=200)
    # The dashboard's URL as receivers should see it (links in notifications).
    public_url: str | None = None

    host: str = "127.0.0.1"
    port: int = Field(default=8102, ge=1, le=65535)

    @field_validator("webhook_urls", "group_by", mode="before")
    @classmethod
    def _split_comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("webhook_urls")
    @classmethod
    def _check_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"webhook url {url!r} must start with http:// or https://")
        return value

    @field_validator("alertmanager_url", "public_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @property
    def dashboard_url(self) -> str:
        """``public_url``, else the address the server listens on (links in notifications)."""
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def store_url(self) -> str:
        """SQLAlchemy URL of the store: ``database_url`` (SQLite or PostgreSQL), else the
        SQLite file ``state_dir/finance_monitor.db``."""
        return self.resolve_database_url(self.state_dir / "finance_monitor.db")

    @property
    def models_dir(self) -> Path:
        """Folder holding the trained and compressed models (``KEEL_FM_MODELS_DIR`` or state_dir/models)."""
        return self.models_dir_override or self.state_dir / "models"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
