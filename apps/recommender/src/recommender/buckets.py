"""A/B buckets: a stable hash of the user id picks a ranking configuration."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class RankingConfig:
    """How one bucket ranks.

    Attributes:
        name: bucket name, returned to the caller and logged.
        mmr_lambda: MMR trade-off (1.0 = relevance only, lower = more diverse); a request
            may override it.
        use_cross_encoder: rescore the top candidates with the cross-encoder when one is
            configured.
    """

    name: str
    mmr_lambda: float
    use_cross_encoder: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.mmr_lambda <= 1.0:
            raise ValueError(f"mmr_lambda={self.mmr_lambda!r}: must be within [0, 1]")


RANKING_CONFIGS: dict[str, RankingConfig] = {
    "control": RankingConfig(name="control", mmr_lambda=1.0),
    "diverse": RankingConfig(name="diverse", mmr_lambda=0.7),
    "cross": RankingConfig(name="cross", mmr_lambda=1.0, use_cross_encoder=True),
}


def bucket_index(user_id: str, n_buckets: int, salt: str = "keel-rec-v1") -> int:
    """Stable bucket number of a user: sha256 of ``salt:user_id`` modulo ``n_buckets``.

    Python's ``hash()`` is salted per process, so a cryptographic hash is used to keep the
    assignment identical across restarts, workers and machines.
    """
    if n_buckets < 1:
        raise ValueError(f"n_buckets={n_buckets}: must be >= 1")
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n_buckets


def assign_bucket(user_id: str, bucket_names: list[str]) -> RankingConfig:
    """Ranking configuration of ``user_id`` among ``bucket_names`` (keys of RANKING_CONFIGS)."""
    return RANKING_CONFIGS[bucket_names[bucket_index(user_id, len(bucket_names))]]
