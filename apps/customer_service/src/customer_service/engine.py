"""Every call into ``keel`` (training, compression, calibration, inference, retrieval).

Heavy libraries are imported inside the functions so that importing the app (and its
pure-logic unit tests) stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from keel.data import LabelledTexts
    from keel.inference import Predictor
    from keel_service import Budget


def load_intent_data(
    path: Path, text_column: str, label_column: str, max_rows: int | None = None
) -> LabelledTexts:
    """Read labelled utterances (CSV/TSV/JSONL); ``max_rows`` keeps a stratified sample.

    Raises:
        keel.DataError: missing column, empty text (names the file and line).
    """
    from keel.data import load_labelled, stratified_split

    data = load_labelled(path, text_col=text_column, label_col=label_column)
    if max_rows is not None and len(data) > max_rows:
        _, data = stratified_split(data, test_size=max_rows / len(data), seed=13)
    return data


def split_validation(
    data: LabelledTexts, share: float = 0.15
) -> tuple[LabelledTexts, LabelledTexts]:
    """Stratified ``(train, validation)`` split with the project seed."""
    from keel.data import stratified_split

    return stratified_split(data, test_size=share, seed=13)


def load_texts(path: Path, column: str = "text") -> list[str]:
    """Texts of one column of a CSV/JSONL file (out-of-scope examples have no label)."""
    import pandas as pd

    frame = pd.read_json(path, lines=True) if path.suffix == ".jsonl" else pd.read_csv(path)
    return [str(t) for t in frame[column].dropna().tolist() if str(t).strip()]


def train_intent_classifier(
    train: LabelledTexts,
    val: LabelledTexts,
    budget: Budget,
    out_dir: Path,
    epochs: int | None = None,
    show_progress: bool = True,
    learning_rate: float | None = None,
    base_model: str = "minilm",
) -> Path:
    """Train the intent classifier with ``keel.training`` on ``base_model`` (a packaged
    encoder: ``minilm``, or ``me5-small`` for Chinese) and save it to ``out_dir``."""
    from keel.training import ClassifierConfig, Strategy, train_classifier

    config = ClassifierConfig(
        strategy=Strategy.FULL if budget == "full" else Strategy.HEAD,
        epochs=epochs,
        learning_rate=learning_rate,
        show_progress=show_progress,
        base_model=base_model,
    )
    model = train_classifier(train, config, val=val)
    model.save(out_dir)
    return out_dir


def compress_intent_classifier(
    src: Path,
    out_dir: Path,
    val: LabelledTexts,
    max_drop_points: float,
    num_threads: int | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Keep the fastest quantized variant (torch int8, ONNX int8, ...) whose validation
    accuracy is within ``max_drop_points`` of the fp32 model (``keel.compression``).

    "Fastest" is the lowest single-text latency: ``/chat`` sends the model one message
    at a time (the micro-batcher gathers a few at most, since repeats are cache hits),
    so batch-32 throughput would rank variants by a load the bot never sees (torch fp32
    and ONNX fp32 tie there, while ONNX answers one text in about half the time).
    """
    from keel.compression import compress

    return Path(
        compress(
            src,
            out_dir,
            val,
            max_drop_points=max_drop_points,
            num_threads=num_threads,
            speed="latency",
            log=log,
        )
    )


def calibrate_oos_threshold(
    in_scope_scores: np.ndarray, oos_scores: np.ndarray, target_oos_rejection: float
) -> dict[str, float]:
    """Threshold on the top intent probability that rejects ``target_oos_rejection`` of
    the out-of-scope examples (``keel.evaluation.oos_metrics``)."""
    try:
        from keel.evaluation import oos_metrics
    except ImportError:
        # Interim until keel.evaluation ships oos_metrics: the threshold under which
        # the target share of out-of-scope scores falls.
        threshold = float(np.quantile(oos_scores, target_oos_rejection))
        return {
            "threshold": threshold,
            "oos_rejection": float(np.mean(oos_scores < threshold)),
            "in_scope_acceptance": float(np.mean(in_scope_scores >= threshold)),
        }
    result = oos_metrics(in_scope_scores, oos_scores, target_oos_rejection)
    return {key: float(value) for key, value in dict(result).items() if _is_number(value)}


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def load_model(
    model_dir: str | Path, num_threads: int | None = None, cache_size: int = 0
) -> Predictor:
    """A thread-safe ``keel`` predictor for an artifact folder or a packaged model name."""
    from keel.inference import load_predictor

    return load_predictor(model_dir, backend="auto", num_threads=num_threads, cache_size=cache_size)


def load_model_lazily(
    model_dir: str | Path, num_threads: int | None = None, cache_size: int = 0
) -> Predictor:
    """``load_model``, deferred until the model is first used for more than its ``dim``
    (``prepare`` on a cached state usually has nothing to embed)."""
    from keel.inference import load_predictor_lazily

    return load_predictor_lazily(
        model_dir, backend="auto", num_threads=num_threads, cache_size=cache_size
    )


def new_retriever(embedder: Any) -> Any:
    """An empty hybrid (BM25 + vectors) retriever."""
    from keel.retrieval import HybridRetriever

    return HybridRetriever(embedder, kind="flat", mode="hybrid")


def load_retriever(directory: Path, embedder: Any, mode: str | None = None) -> Any:
    """A saved hybrid retriever, or a new one when ``directory`` holds none; ``mode``
    (``hybrid``, ``vector``, ``bm25``) overrides its default search mode."""
    from keel import IndexNotBuiltError
    from keel.retrieval import HybridRetriever, SearchMode

    try:
        retriever = HybridRetriever.load(directory, embedder)
    except IndexNotBuiltError:
        retriever = new_retriever(embedder)
    if mode is not None:
        retriever.mode = SearchMode(mode)
    return retriever


def make_batched_classifier(predictor: Predictor, max_batch_size: int, max_wait_ms: float) -> Any:
    """A ``MicroBatcher`` that groups concurrent ``classify`` calls into one encoder pass."""
    from keel.inference import MicroBatcher

    def classify_batch(texts: list[str]) -> Sequence[np.ndarray]:
        return list(predictor.classify(texts))

    return MicroBatcher(classify_batch, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms)


def batched_classify(predictor: Predictor, batcher: Any) -> Callable[[list[str]], np.ndarray]:
    """``texts -> probabilities`` through ``batcher`` (``make_batched_classifier``), except
    when the predictor's cache already holds every text: no encoder pass is then needed,
    so the caller's thread classifies at once instead of handing the texts to the
    batcher's thread and waiting for it (the same probabilities, less CPU and latency)."""

    def classify(texts: list[str]) -> np.ndarray:
        # Looked up per call: on a lazily loaded predictor the attribute loads the model.
        is_cached = getattr(predictor, "is_cached", None)
        if is_cached is not None and is_cached(texts):
            return np.asarray(predictor.classify(texts))
        return np.stack([batcher.submit(text) for text in texts])

    return classify


def export_base_encoder(
    out_dir: Path, quantize: str | None = "dynamic", max_length: int = 256
) -> Path:
    """The packaged MiniLM as an ONNX (int8 by default) encoder artifact in ``out_dir``;
    reused when already there. ``load_model(out_dir)`` loads it."""
    import shutil

    from keel.compression import export_onnx
    from keel.models import model_path
    from keel.models.artifact import ArtifactMeta, write_meta

    onnx_dir = out_dir / ("onnx-int8" if quantize else "onnx-fp32")
    if (onnx_dir / "keel.json").is_file():
        return onnx_dir
    torch_dir = out_dir / "torch"
    if not (torch_dir / "keel.json").is_file():
        shutil.copytree(model_path("minilm"), torch_dir / "encoder", dirs_exist_ok=True)
        write_meta(
            torch_dir,
            ArtifactMeta(
                task="encoder", backend="torch", base_model="minilm", max_length=max_length
            ),
        )
    export_onnx(torch_dir, onnx_dir, quantize=quantize)
    return onnx_dir


def load_text_pairs(
    path: Path, question_column: str = "question", passage_column: str = "passage"
) -> list[tuple[str, str]]:
    """(question, relevant passage) pairs from a CSV/TSV/JSONL file.

    Raises:
        keel.DataError: missing file or column, empty file, an empty question or
            passage (names the file and line).
    """
    from keel.data import load_labelled
    from keel.errors import DataError

    if question_column == passage_column:
        raise DataError(f"question and passage columns are both {question_column!r}", path)
    # The loader's "label" column is the passage: same checks (missing column, empty
    # cell, empty file), each naming the file and line.
    data = load_labelled(path, text_col=question_column, label_col=passage_column)
    return [(str(q), str(p)) for q, p in zip(data.texts, data.labels, strict=True)]


def train_retrieval_encoder(
    pairs: list[tuple[str, str]],
    out_dir: Path,
    epochs: int = 1,
    batch_size: int = 32,
    learning_rate: float = 5e-5,
    max_length: int = 128,
    num_threads: int | None = None,
    show_progress: bool = True,
) -> Path:
    """Fine-tune MiniLM on (question, passage) pairs with in-batch negatives
    (``keel.training.train_bi_encoder``); the torch encoder artifact goes to ``out_dir``."""
    from keel.training import PairConfig, train_bi_encoder

    config = PairConfig(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_length=max_length,
        num_threads=num_threads,
        show_progress=show_progress,
    )
    return Path(train_bi_encoder(pairs, config, out_dir=out_dir))


def compress_encoder(
    src: Path,
    out_dir: Path,
    gate_texts: Sequence[str],
    *,
    quantize: str | None = "dynamic",
    min_cosine: float = 0.95,
    num_threads: int | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Serve a torch encoder artifact as ONNX (int8 by default) through ``keel.compress``:
    the variant is kept only when its embeddings of ``gate_texts`` have a mean cosine of
    at least ``min_cosine`` to the fp32 ones; otherwise the fp32 encoder serves."""
    from keel.compression import compress_for_serving

    return compress_for_serving(
        src,
        out_dir,
        list(gate_texts),
        min_cosine=min_cosine,
        variant="onnx-int8" if quantize else "onnx-fp32",
        keep_measured=True,  # the retriever's prepared version has always kept them
        num_threads=num_threads,
        log=log,
    ).path
