"""Typed service settings (env prefix ``KEEL_CS_``), served through ``get_settings()``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from keel_service import Budget, Role, ServiceSettings

BUNDLED_DATA_DIR = Path(__file__).resolve().parent / "demo_data"


ENV_PREFIX = "KEEL_CS_"


class Settings(ServiceSettings):
    """Settings of the customer-service app, read from ``KEEL_CS_*`` environment variables.

    ``api_key`` (``KEEL_CS_API_KEY``) is the admin key: knowledge base, retraining,
    export, analytics, and everything an agent may do. ``agent_key``
    (``KEEL_CS_AGENT_KEY``) only opens the agent queue, replies and hand-backs.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    state_dir: Path = Path("var/customer_service")
    data_dir: Path | None = None
    agent_key: SecretStr | None = None

    host: str = "127.0.0.1"
    port: int = Field(default=8101, ge=1, le=65535)

    # Demo content (bundled by default) and the intent training data.
    articles_dir: Path | None = None
    faq_file: Path | None = None
    intents_file: Path | None = None
    oos_file: Path | None = None
    templates_file: Path | None = None
    intent_text_column: str = "text"
    intent_label_column: str = "label"

    # Languages served: "en", "zh" or "en,zh" (the first is the default for messages
    # whose language cannot be told). One pipeline per language: English keeps MiniLM,
    # Chinese runs on ``zh_base_model`` with the Chinese help centre (see languages.py).
    languages: str = "en"
    zh_base_model: str = "me5-small"
    # me5-small's ONNX export needs about 6 GB of memory and 40 s: off unless asked for.
    zh_compress: bool = False
    zh_articles_dir: Path | None = None
    zh_faq_file: Path | None = None
    zh_intents_file: Path | None = None
    zh_oos_file: Path | None = None
    zh_templates_file: Path | None = None
    # The encoder the intent model is trained on (a language pipeline sets its own).
    base_model: str = "minilm"

    budget: Budget = Budget.FAST
    epochs: int | None = Field(default=None, ge=1)
    compress: bool = True
    max_accuracy_drop_points: float = Field(default=1.0, ge=0.0, le=100.0)
    max_train_rows: int | None = Field(default=None, ge=10)

    # Dialogue policy.
    oos_rejection_target: float = Field(default=0.9, gt=0.0, lt=1.0)
    template_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    clarify_margin: float = Field(default=0.12, ge=0.0, lt=1.0)
    clarify_min_probability: float = Field(default=0.2, ge=0.0, le=1.0)
    fallback_after: int = Field(default=2, ge=1)
    retrieval_k: int = Field(default=3, ge=1, le=20)
    history_turns: int = Field(default=1, ge=0, le=10)

    # Generated answers (off by default: SmolLM2 takes seconds per answer on a CPU).
    # A generated answer is shown only when every sentence passes the grounding check.
    generation: bool = False
    generation_max_new_tokens: int = Field(default=80, ge=8, le=512)
    generation_passages: int = Field(default=3, ge=1, le=20)
    grounding_min_overlap: float = Field(default=0.7, ge=0.0, le=1.0)
    generation_model_dir: Path | None = None  # the dequantized SmolLM2 checkpoint cache

    # Live upgrade (customer_service.upgrade): serve the fast model at once, then train
    # the production (full) model in a niced child process and swap it in only when it
    # scores higher on validation. Off by default; the demo turns it on.
    upgrade: bool = False
    upgrade_epochs: int | None = Field(default=None, ge=1)
    upgrade_learning_rate: float | None = Field(default=None, gt=0.0)
    upgrade_min_gain: float = Field(default=0.0, ge=0.0, le=1.0)
    upgrade_nice: int = Field(default=15, ge=0, le=19)
    upgrade_delay_s: float = Field(default=0.0, ge=0.0)

    # Request limits.
    max_message_chars: int = Field(default=1000, ge=10, le=100_000)
    rate_limit_per_minute: int = Field(default=60, ge=1)
    rate_limit_burst: int = Field(default=20, ge=1)

    # Retention: conversations idle this many days are deleted with their messages and
    # feedback by a job every RETENTION_INTERVAL_S (shared setting); 0 keeps them forever.
    retention_days: int = Field(default=90, ge=0, le=36_500)

    # Replicas: how often each process checks the shared database's knowledge-base
    # version and re-ingests the documents another replica changed.
    kb_poll_interval_s: float = Field(default=5.0, gt=0.0, le=3600.0)

    # Serving.
    num_threads: int | None = Field(default=None, ge=1)
    # How many /chat turns one worker runs at once on its thread pool; the rest wait on
    # the event loop in arrival order. A turn holds the GIL most of its time, and 40
    # turns at once only contend for it: before group commit, 8 cut p95 from 68-90 ms
    # to 50-54 ms at the same requests/s (2 cores, 32 clients). With group commit a
    # worker's batch holds up to this many turns, and 16 measured more requests/s at a
    # lower p95 than 8 (chat-load alternated, 4 pairs: median ratios 1.10 and 0.90).
    # See docs/customer-service.md (fifth and seventh rounds).
    chat_threads: int = Field(default=16, ge=1, le=64)
    batch_max_size: int = Field(default=32, ge=1)
    batch_max_wait_ms: float = Field(default=2.0, ge=0.0)
    cache_size: int = Field(default=2048, ge=0)

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, value: str) -> str:
        from customer_service.languages import parse_languages

        return ",".join(parse_languages(value))

    @property
    def language_list(self) -> list[str]:
        """The languages served, the default first (``["en"]``, ``["en", "zh"]``, ...)."""
        return self.languages.split(",")

    @model_validator(mode="after")
    def _burst_fits(self) -> Settings:
        if self.rate_limit_burst > self.rate_limit_per_minute * 60:
            raise ValueError("rate_limit_burst is larger than a minute's worth of requests")
        return self

    def role_keys(self) -> dict[Role, SecretStr | None]:
        return {Role.ADMIN: self.api_key, Role.AGENT: self.agent_key}

    @property
    def resolved_database_url(self) -> str:
        """The database URL; SQLite inside ``state_dir`` unless set."""
        return self.resolve_database_url(self.state_dir / "conversations.sqlite3")

    def content_path(self, name: str) -> Path:
        """Path of a content file: the setting if given, else the bundled demo file."""
        override = {
            "articles": self.articles_dir,
            "faq.csv": self.faq_file,
            "intents.csv": self.intents_file,
            "out_of_scope.csv": self.oos_file,
            "templates.yaml": self.templates_file,
        }.get(name)
        if override is not None:
            return override
        return BUNDLED_DATA_DIR / name

    @property
    def models_dir(self) -> Path:
        return self.state_dir / "models"

    @property
    def kb_dir(self) -> Path:
        return self.state_dir / "kb"

    @property
    def generator_dir(self) -> Path:
        """Cache of the dequantized SmolLM2 checkpoint, written on the first load."""
        return self.generation_model_dir or self.models_dir / "smollm2-135m-instruct"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests clear the cache or override the dependency)."""
    return Settings()
