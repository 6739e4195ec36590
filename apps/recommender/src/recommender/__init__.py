"""Text-semantic recommendation reranker built on the Keel engine."""

from recommender.errors import (
    DataFormatError,
    ModelNotReadyError,
    RecommenderError,
    UnknownItemError,
)

__all__ = ["DataFormatError", "ModelNotReadyError", "RecommenderError", "UnknownItemError"]
