"""``train-retriever``: adapt the knowledge-base encoder to the domain (optional).

From (question, relevant passage) pairs — exported conversations, FAQ pairs — MiniLM
is fine-tuned with in-batch negatives (``keel.training.train_bi_encoder``), exported to
ONNX dynamic int8 like the base encoder, and recorded in
``<state_dir>/models/retriever/current.json``. When that manifest exists the knowledge
base is embedded and searched with this encoder (``prepare`` re-indexes it), in the
recorded search mode (``hybrid`` by default, or ``vector``); without it the app keeps
the base encoder. Deleting ``<state_dir>/models/retriever`` reverts.

Idempotent: the encoder is cached under ``models/retriever/<fingerprint>``, the
fingerprint covering the pairs and every training option.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from customer_service import engine, manifests

MANIFEST = manifests.MANIFEST
FORMAT = 1
SEARCH_MODES = ("hybrid", "vector")


@dataclass(frozen=True)
class RetrieverOptions:
    """Training budget of the retrieval encoder (kept small: it runs on a CPU).

    Attributes:
        epochs: passes over the pairs.
        max_pairs: at most this many pairs (a seeded sample) are used.
        batch_size: pairs per step; the other passages of the batch are the negatives.
        learning_rate: AdamW learning rate.
        max_length: tokens per question / passage (also the serving truncation).
        quantize: ``"dynamic"`` (ONNX int8, the default) or ``None`` (ONNX fp32).
    """

    epochs: int = 1
    max_pairs: int | None = 2000
    batch_size: int = 32
    learning_rate: float = 5e-5
    max_length: int = 128
    quantize: str | None = "dynamic"

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs={self.epochs}: must be >= 1")
        if self.max_pairs is not None and self.max_pairs < 2:
            raise ValueError(f"max_pairs={self.max_pairs}: must be >= 2")
        if self.batch_size < 2:
            raise ValueError(f"batch_size={self.batch_size}: must be >= 2")


@dataclass
class RetrieverArtifacts:
    """The fine-tuned retrieval encoder the app serves."""

    model_dir: str
    fingerprint: str
    pairs: int
    epochs: int
    train_seconds: float
    export_seconds: float
    source: str
    options: dict[str, object]
    search_mode: str = "hybrid"


def retriever_dir(models_dir: Path) -> Path:
    return models_dir / "retriever"


def read_retriever_manifest(models_dir: Path) -> RetrieverArtifacts | None:
    """The fine-tuned encoder recorded under ``models_dir``, or ``None`` (base encoder)."""
    path = retriever_dir(models_dir) / MANIFEST
    if not path.is_file():
        return None
    artifacts = RetrieverArtifacts(**json.loads(path.read_text(encoding="utf-8")))
    if not (Path(artifacts.model_dir) / "keel.json").is_file():
        return None
    return artifacts


def set_search_mode(models_dir: Path, mode: str) -> RetrieverArtifacts:
    """Record how the knowledge base is searched with the fine-tuned encoder:
    ``hybrid`` (RRF of vectors and BM25) or ``vector`` (vectors only).

    Raises:
        ValueError: unknown mode, or no fine-tuned encoder under ``models_dir``.
    """
    if mode not in SEARCH_MODES:
        raise ValueError(f"search_mode={mode!r}: use one of {list(SEARCH_MODES)}")
    artifacts = read_retriever_manifest(models_dir)
    if artifacts is None:
        raise ValueError(f"{retriever_dir(models_dir)}: no fine-tuned retrieval encoder")
    artifacts.search_mode = mode
    _write_manifest(models_dir, artifacts)
    return artifacts


def _write_manifest(models_dir: Path, artifacts: RetrieverArtifacts) -> None:
    manifests.write_manifest(retriever_dir(models_dir), asdict(artifacts))


def sample_pairs(
    pairs: list[tuple[str, str]], max_pairs: int | None, seed: int = 13
) -> list[tuple[str, str]]:
    """At most ``max_pairs`` pairs: a seeded sample, original order kept."""
    if max_pairs is None or len(pairs) <= max_pairs:
        return list(pairs)
    keep = sorted(random.Random(seed).sample(range(len(pairs)), max_pairs))
    return [pairs[i] for i in keep]


def pairs_fingerprint(pairs: list[tuple[str, str]], options: RetrieverOptions) -> str:
    digest = hashlib.sha256()
    for question, passage in pairs:
        digest.update(question.encode())
        digest.update(b"\0")
        digest.update(passage.encode())
        digest.update(b"\1")
    digest.update(json.dumps({**asdict(options), "format": FORMAT}, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def train_retriever(
    models_dir: Path,
    pairs_file: Path,
    options: RetrieverOptions | None = None,
    question_column: str = "question",
    passage_column: str = "passage",
    force: bool = False,
    num_threads: int | None = None,
    search_mode: str = "hybrid",
    report: Callable[[str], None] = print,
    show_progress: bool = True,
) -> RetrieverArtifacts:
    """Fine-tune, export and record the retrieval encoder (reused when cached).

    Raises:
        keel.DataError: the pairs file is missing, empty or malformed (names file/line).
    """
    opts = options or RetrieverOptions()
    if search_mode not in SEARCH_MODES:
        raise ValueError(f"search_mode={search_mode!r}: use one of {list(SEARCH_MODES)}")
    all_pairs = engine.load_text_pairs(pairs_file, question_column, passage_column)
    pairs = sample_pairs(all_pairs, opts.max_pairs)
    if len(pairs) < 2:
        from keel.errors import DataError

        raise DataError("in-batch negatives need at least 2 pairs", pairs_file)
    fingerprint = pairs_fingerprint(pairs, opts)
    root = retriever_dir(models_dir)
    cached = None if force else read_retriever_manifest(models_dir)
    if cached is not None and cached.fingerprint == fingerprint:
        report(f"retrieval encoder: cached ({fingerprint})")
        if cached.search_mode != search_mode:
            cached = set_search_mode(models_dir, search_mode)
        return cached
    work = root / fingerprint
    if work.exists():
        shutil.rmtree(work)
    report(
        f"retrieval encoder: fine-tuning MiniLM on {len(pairs)} pairs "
        f"(of {len(all_pairs)} in {pairs_file}), {opts.epochs} epoch(s)"
    )
    started = time.perf_counter()
    trained = engine.train_retrieval_encoder(
        pairs,
        work / "trained",
        epochs=opts.epochs,
        batch_size=opts.batch_size,
        learning_rate=opts.learning_rate,
        max_length=opts.max_length,
        num_threads=num_threads,
        show_progress=show_progress,
    )
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    name = "onnx-int8" if opts.quantize else "onnx-fp32"
    serving = engine.export_encoder(trained, work / name, quantize=opts.quantize)
    export_seconds = time.perf_counter() - started
    artifacts = RetrieverArtifacts(
        model_dir=str(serving.resolve()),
        fingerprint=fingerprint,
        pairs=len(pairs),
        epochs=opts.epochs,
        train_seconds=round(train_seconds, 1),
        export_seconds=round(export_seconds, 1),
        source=str(pairs_file),
        options=asdict(opts),
        search_mode=search_mode,
    )
    manifests.publish(root, fingerprint, asdict(artifacts))
    report(
        f"retrieval encoder: ready ({name}) in {train_seconds:.0f} s training + "
        f"{export_seconds:.0f} s export; run `prepare` to re-index the knowledge base"
    )
    return artifacts
