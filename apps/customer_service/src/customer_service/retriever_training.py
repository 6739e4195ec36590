"""``train-retriever``: adapt the knowledge-base encoder to the domain (optional).

From (question, relevant passage) pairs — exported conversations, FAQ pairs — MiniLM
is fine-tuned with in-batch negatives (``keel.training.train_bi_encoder``) and
compressed with ``keel.compress`` (ONNX dynamic int8 when its embeddings of held-out
texts keep a mean cosine of at least ``MIN_COSINE`` to the fp32 ones, else fp32).
``keel.models.prepare_artifact`` publishes it under ``<state_dir>/models/retriever/``
(``current`` names the version; ``retriever.json`` in it records the run). When one is
published the knowledge base is embedded and searched with this encoder (``prepare``
re-indexes it), in the recorded search mode (``search-mode.json``: ``hybrid`` by
default, or ``vector``); without it the app keeps the base encoder. Deleting
``<state_dir>/models/retriever`` reverts. An encoder recorded by the first layout
(``current.json``) is still served.

Idempotent: the encoder is prepared once per fingerprint (the pairs and every training
option).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from customer_service import engine, manifests

FORMAT = 2
SEARCH_MODES = ("hybrid", "vector")
RECORD = "retriever.json"
SEARCH_MODE_FILE = "search-mode.json"
#: The compression gate: mean cosine of int8 embeddings to the fp32 ones.
MIN_COSINE = 0.95
GATE_TEXTS = 128


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
    """The fine-tuned encoder published under ``models_dir``, or ``None`` (base encoder)."""
    from keel.models import published_artifact

    root = retriever_dir(models_dir)
    folder = published_artifact(root)
    if folder is not None:
        record = manifests.read_json(folder / RECORD)
        if record is None:
            return None
        artifacts = RetrieverArtifacts(**record)
        # Recorded relative to the version folder: it was built under a temporary name.
        artifacts.model_dir = str((folder / artifacts.model_dir).resolve())
    else:
        legacy = manifests.read_json(root / manifests.LEGACY_MANIFEST)
        if legacy is None:
            return None
        artifacts = RetrieverArtifacts(**legacy)
    mode = manifests.read_json(root / SEARCH_MODE_FILE)
    if mode is not None and mode.get("search_mode") in SEARCH_MODES:
        artifacts.search_mode = str(mode["search_mode"])
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
    # Beside the versions, not in one: changing it must not retrain the encoder.
    manifests.write_json(retriever_dir(models_dir) / SEARCH_MODE_FILE, {"search_mode": mode})
    artifacts.search_mode = mode
    return artifacts


def gate_texts(
    all_pairs: list[tuple[str, str]], used: list[tuple[str, str]], size: int = GATE_TEXTS
) -> list[str]:
    """Texts the compression gate compares int8 and fp32 embeddings on: questions and
    passages of pairs left out of training, topped up with training ones when too few."""
    seen = set(used)
    held_out = [text for pair in all_pairs if pair not in seen for text in pair]
    texts = list(dict.fromkeys(held_out + [text for pair in used for text in pair]))
    return texts[:size]


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
    from keel.models import fingerprint_hash, prepare_artifact

    fingerprint = pairs_fingerprint(pairs, opts)
    root = retriever_dir(models_dir)
    cached = None if force else read_retriever_manifest(models_dir)
    if cached is not None and Path(cached.model_dir).parent.name == fingerprint_hash(fingerprint):
        report(f"retrieval encoder: cached ({fingerprint})")
        if cached.search_mode != search_mode:
            cached = set_search_mode(models_dir, search_mode)
        return cached
    report(
        f"retrieval encoder: fine-tuning MiniLM on {len(pairs)} pairs "
        f"(of {len(all_pairs)} in {pairs_file}), {opts.epochs} epoch(s)"
    )
    timings: dict[str, float] = {}

    def build(work: Path) -> None:
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
        timings["train"] = time.perf_counter() - started
        started = time.perf_counter()
        serving = engine.compress_encoder(
            trained,
            work / "serving",
            gate_texts(all_pairs, pairs),
            quantize=opts.quantize,
            min_cosine=MIN_COSINE,
            num_threads=num_threads,
            log=report,
        )
        timings["export"] = time.perf_counter() - started
        artifacts = RetrieverArtifacts(
            model_dir=str(serving.relative_to(work)),
            fingerprint=fingerprint,
            pairs=len(pairs),
            epochs=opts.epochs,
            train_seconds=round(timings["train"], 1),
            export_seconds=round(timings["export"], 1),
            source=str(pairs_file),
            options=asdict(opts),
            search_mode=search_mode,
        )
        manifests.write_json(work / RECORD, asdict(artifacts))

    # The first layout's manifest would otherwise still be read if this build failed.
    (root / manifests.LEGACY_MANIFEST).unlink(missing_ok=True)
    prepare_artifact(root, fingerprint, build, force=force)
    artifacts = set_search_mode(models_dir, search_mode)
    report(
        f"retrieval encoder: ready in {timings['train']:.0f} s training + "
        f"{timings['export']:.0f} s compression; run `prepare` to re-index the knowledge base"
    )
    return artifacts
