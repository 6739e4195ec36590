"""Retrieval: FAISS vector index, BM25 keyword index and their RRF-fused hybrid."""

from keel.retrieval._bm25 import BM25Index, tokenize
from keel.retrieval._hybrid import HybridRetriever, SearchMode, reciprocal_rank_fusion
from keel.retrieval._types import Embedder, Hit, UnknownIdError
from keel.retrieval._vector_index import IndexKind, Metric, VectorIndex

__all__ = [
    "BM25Index",
    "Embedder",
    "Hit",
    "HybridRetriever",
    "IndexKind",
    "Metric",
    "SearchMode",
    "UnknownIdError",
    "VectorIndex",
    "reciprocal_rank_fusion",
    "tokenize",
]
