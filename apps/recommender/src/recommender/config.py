"""Service settings (env prefix ``KEEL_REC_``), served by ``get_settings()``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from keel_service import Budget, Role, ServiceSettings

ENV_PREFIX = "KEEL_REC_"


class Settings(ServiceSettings):
    """Recommender settings, read from ``KEEL_REC_*`` environment variables.

    Attributes:
        state_dir: models, SQLite database, embeddings and index live here.
        data_dir: optional MovieLens-layout folder (``items.csv`` + ``train_ratings.csv``)
            used instead of the bundled demo data by ``prepare``.
        api_key: admin key (header ``X-API-Key``, ``KEEL_REC_API_KEY``): catalogue changes
            and everything else; no default, the app refuses to start without one.
        writer_key: narrower key that may only post events (``KEEL_REC_WRITER_KEY``).
        database_url: SQLAlchemy URL of the database: ``sqlite:///PATH`` (default
            ``sqlite:///<state_dir>/recommender.db``) or ``postgresql://USER:PASS@HOST/DB``
            (several replicas share one PostgreSQL).
        catalogue_poll_interval_s: how often each process checks the database's catalogue
            version and applies other processes' catalogue changes (and counts their
            events into popularity).
        base_model: encoder that ``prepare`` fine-tunes and serves (``KEEL_REC_BASE_MODEL``):
            ``minilm`` (default, English) or ``me5-small`` (multilingual-e5-small: Chinese
            and English items), or a sentence-transformers folder. Changing it rebuilds
            the models on the next ``prepare``.
        budget: ``fast`` (800 fine-tuning pairs, one epoch) or ``full`` (every pair, two
            epochs).
        max_pairs: explicit cap on fine-tuning pairs (tests use a handful).
        compress: export the fine-tuned encoder to ONNX int8 for serving.
        student_layers: serve a shallower student of the fine-tuned encoder (its
            ``student_layers`` layers spread over the 6, their embeddings distilled back
            to the encoder's on the catalogue documents); None serves every layer.
        static_encoder: serve a trained static-embedding table instead of the
            transformer (``KEEL_REC_STATIC_ENCODER``): ``prepare`` trains it from the
            fine-tuned encoder (regression to its catalogue embeddings, then contrastive
            on the training log's next-item pairs; :mod:`recommender.static_encoder`).
            ``auto`` serves it only when its blend nDCG@10 lift on the validation split
            is at least ``STATIC_MIN_LIFT`` (and there are enough validation cases to
            tell), ``on`` always, ``off`` never (no table is trained).
        max_candidates / max_history: list-size limits of the API.
        mmr_lambda: default MMR trade-off (1.0 = pure relevance, lower = more diverse).
        bucket_configs: A/B ranking configurations, picked by a stable hash of the user id.
        rank_threads: how many ``/rerank`` and ``/recommend`` rankings one worker runs at
            once on the shared thread pool (``KEEL_REC_RANK_THREADS``); the others wait
            on the event loop in arrival order. Rankings hold the GIL most of the time, and
            16-32 at once only contend for it: on the idle 2-core machine, 8 against the
            pool's 40 gave a median 0.77 of the p95 and 1.04 of the requests/s under 32
            clients (8 interleaved rounds; docs/recommender.md).
        embed_cache_size: LRU size for embeddings of uncatalogued texts sent by callers.
        num_threads: torch/onnx threads of the encoder (None = library default).
        cross_encoder_dir: optional Keel cross-encoder artifact for a second pass.
        cross_encoder_top_k: how many top candidates the cross-encoder rescored.
        kafka_bootstrap_servers: honoured for symmetry with the other apps (unused).
        max_future_skew_s: events stamped more than this many seconds after the server's
            clock are rejected; the popularity reference time never passes clock + skew.
        max_past_skew_days: events older than this many days are rejected (0 = no bound).
        event_retention_days: stored events and served-ranking logs older than this are
            deleted by :meth:`RecommenderService.apply_retention` (0 = keep forever).
        upgrade: the live upgrade (``KEEL_REC_UPGRADE``, off by default, on in the demo):
            serve the ``fast`` model at once, build ``prepare --budget full``'s in a niced
            background process and swap it in when it ranks the held-out interactions
            better (:mod:`recommender.upgrade`). Only with ``budget`` ``fast``.
        upgrade_max_pairs / upgrade_epochs: override the candidate's fine-tuning pairs and
            epochs (None = the ``full`` budget's: every pair, two epochs; tests shrink it).
        upgrade_min_gain: the candidate's nDCG@10 must beat the served one's by more.
        upgrade_nice: the background build's niceness (0-19).
        upgrade_delay_s: wait this long after start-up before building.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    state_dir: Path = Path("var/recommender")
    data_dir: Path | None = None
    writer_key: SecretStr | None = None
    catalogue_poll_interval_s: float = Field(default=5.0, gt=0.0, le=3600.0)
    base_model: str = Field(default="minilm", min_length=1, max_length=1000)
    budget: Budget = Budget.FAST
    max_pairs: int | None = Field(default=None, ge=2)
    compress: bool = True
    student_layers: int | None = Field(default=None, ge=1, le=12)
    static_encoder: Literal["auto", "on", "off"] = "auto"
    max_candidates: int = Field(default=1000, ge=1, le=100_000)
    max_history: int = Field(default=200, ge=1, le=10_000)
    default_top_k: int = Field(default=10, ge=1)
    mmr_lambda: float = Field(default=0.8, ge=0.0, le=1.0)
    bucket_configs: list[str] = Field(default_factory=lambda: ["control", "diverse"])
    embed_cache_size: int = Field(default=20_000, ge=0)
    rank_threads: int = Field(default=8, ge=1, le=64)
    num_threads: int | None = None
    cross_encoder_dir: Path | None = None
    cross_encoder_top_k: int = Field(default=20, ge=1)
    seed: int = 13
    max_future_skew_s: float = Field(default=600.0, ge=0.0, le=366 * 86_400.0)
    max_past_skew_days: float = Field(default=3650.0, ge=0.0, le=36_500.0)
    event_retention_days: float = Field(default=0.0, ge=0.0, le=36_500.0)
    upgrade: bool = False
    upgrade_max_pairs: int | None = Field(default=None, ge=2)
    upgrade_epochs: int | None = Field(default=None, ge=1)
    upgrade_min_gain: float = Field(default=0.0, ge=0.0, le=1.0)
    upgrade_nice: int = Field(default=15, ge=0, le=19)
    upgrade_delay_s: float = Field(default=0.0, ge=0.0)
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "KEEL_REC_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"
        ),
    )

    @field_validator("bucket_configs")
    @classmethod
    def _known_buckets(cls, value: list[str]) -> list[str]:
        from recommender.buckets import RANKING_CONFIGS

        unknown = [v for v in value if v not in RANKING_CONFIGS]
        if not value or unknown:
            raise ValueError(f"bucket_configs: unknown {unknown}; known: {sorted(RANKING_CONFIGS)}")
        return value

    def role_keys(self) -> dict[Role, SecretStr | None]:
        return {Role.ADMIN: self.api_key, Role.WRITER: self.writer_key}

    @property
    def resolved_database_url(self) -> str:
        """The database URL: ``database_url``, else the SQLite file in the state dir."""
        return self.resolve_database_url(self.state_dir / "recommender.db")


@lru_cache
def get_settings() -> Settings:
    """Settings built once from the environment (tests clear the cache to override)."""
    return Settings()
