"""Pair / ranking training from the same MiniLM body.

``train_bi_encoder``: contrastive fine-tuning with in-batch negatives (the
MultipleNegativesRankingLoss recipe) — saves an ``encoder`` artifact for retrieval.
``train_cross_encoder``: pointwise binary cross-entropy on (query, text, label) —
saves a ``cross_encoder`` artifact whose ``encoder/`` folder
``transformers.AutoModelForSequenceClassification`` loads (one logit; sigmoid = score).
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from keel.errors import ConfigError, DataError
from keel.models._card import write_model_card
from keel.models._prefixes import (
    NO_PREFIXES,
    TextPrefixes,
    TextRole,
    read_prefixes,
    write_prefixes,
)
from keel.models.artifact import ENCODER_DIR, ArtifactMeta, folder_size_mb, write_meta
from keel.training._encoder import (
    bucketed_batches,
    embed_texts,
    load_encoder,
    pad_batch,
    pooled_embeddings,
    resolve_base_model,
    tokenize,
    tokenize_pairs,
    transformer_of,
)
from keel.training._loop import EpochRunner, run_epochs
from keel.training._runtime import (
    adamw,
    autocast,
    linear_warmup_decay,
    pick_device,
    seed_everything,
    set_threads,
)
from keel.training.config import PairConfig

if TYPE_CHECKING:
    import torch


def _pairs_fingerprint(items: Sequence[Sequence[Any]]) -> str:
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps(list(item), ensure_ascii=False).encode("utf-8") + b"\n")
    return "sha256:" + digest.hexdigest()


def _out_dir(out_dir: str | Path | None, prefix: str) -> Path:
    folder = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix=prefix))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _check_pairs(pairs: Sequence[Sequence[Any]], what: str, width: int) -> None:
    if not pairs:
        raise DataError(f"no {what} given")
    for index, item in enumerate(pairs):
        if len(item) != width or not all(isinstance(x, str) and x.strip() for x in item[:2]):
            raise DataError(
                f"{what} item {index}: expected {width} values with two non-empty texts"
            )


def ranking_scores(queries: np.ndarray, docs: np.ndarray) -> dict[str, float]:
    """MRR@10 and recall@1 when query ``i``'s relevant document is ``docs[i]``."""
    sims = queries @ docs.T
    gold = sims[np.arange(len(sims)), np.arange(len(sims))]
    ranks = 1 + (sims > gold[:, None]).sum(axis=1)
    reciprocal = np.where(ranks <= 10, 1.0 / ranks, 0.0)
    return {"mrr_at_10": float(reciprocal.mean()), "recall_at_1": float(np.mean(ranks == 1))}


def train_bi_encoder(
    pairs: list[tuple[str, str]],
    config: PairConfig | None = None,
    val: list[tuple[str, str]] | None = None,
    out_dir: str | Path | None = None,
) -> Path:
    """Fine-tune the encoder on (query, relevant text) pairs with in-batch negatives.

    Each query's own text is its positive; the other texts of the batch are its
    negatives (cross-entropy over scaled cosine similarities).

    Args:
        pairs: (query, relevant text) pairs.
        config: options (default ``PairConfig()``).
        val: held-out pairs; MRR@10 / recall@1 among the val texts are recorded
            before and after training.
        out_dir: artifact folder (default: a new temporary folder).

    Returns:
        The artifact folder (``task="encoder"``; ``encoder/`` is a sentence-transformers folder).

    Raises:
        DataError: no pairs, or a pair with an empty text.
    """
    import torch

    cfg = config or PairConfig()
    _check_pairs(pairs, "pairs", 2)
    if val:
        _check_pairs(val, "val pairs", 2)
    started = time.perf_counter()
    seed_everything(cfg.seed)
    set_threads(cfg.num_threads)
    device = pick_device(cfg.device)
    encoder = load_encoder(cfg.base_model, device)
    transformer = transformer_of(encoder)
    metrics: dict[str, Any] = {}
    if val:
        metrics.update(
            {f"val_{k}_before": v for k, v in _bi_encoder_val(encoder, val, cfg, device).items()}
        )
    left = tokenize(encoder, [a for a, _ in pairs], cfg.max_length, TextRole.QUERY)
    right = tokenize(encoder, [b for _, b in pairs], cfg.max_length, _second_role(cfg))
    optimizer = adamw(
        [p for n, p in transformer.named_parameters() if not n.startswith("pooler.")],
        lr=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
    )
    steps = cfg.epochs * ((len(pairs) + cfg.batch_size - 1) // cfg.batch_size)
    scheduler = linear_warmup_decay(optimizer, steps, cfg.warmup_ratio)
    pad_id = encoder.tokenizer.pad_token_id or 0
    rng = random.Random(cfg.seed)
    lengths = [max(len(a), len(b)) for a, b in zip(left, right, strict=True)]

    def bi_encoder_loss(batch: list[int]) -> tuple[torch.Tensor, int]:
        ids_a, mask_a = pad_batch([left[i] for i in batch], pad_id)
        ids_b, mask_b = pad_batch([right[i] for i in batch], pad_id)
        with autocast(device, cfg.mixed_precision):
            emb_a = pooled_embeddings(transformer, ids_a.to(device), mask_a.to(device), True)
            emb_b = pooled_embeddings(transformer, ids_b.to(device), mask_b.to(device), True)
        # In-batch negatives: query i's positive is text i, every other text a negative.
        scores = cfg.scale * emb_a.float() @ emb_b.float().T
        labels = torch.arange(len(batch), device=device)
        return torch.nn.functional.cross_entropy(scores, labels), len(batch)

    runner: EpochRunner[list[int]] = EpochRunner(
        plan=lambda _epoch: [
            b for b in bucketed_batches(lengths, cfg.batch_size, rng) if len(b) > 1
        ],
        loss_fn=bi_encoder_loss,
        parameters=list(transformer.parameters()),
        optimizer=optimizer,
        scheduler=scheduler,
        modules=[transformer],
        max_grad_norm=cfg.max_grad_norm,
    )
    history = run_epochs(
        runner, epochs=cfg.epochs, description="bi-encoder", show_progress=cfg.show_progress
    )
    if val:
        metrics.update(
            {f"val_{k}": v for k, v in _bi_encoder_val(encoder, val, cfg, device).items()}
        )
    metrics["train_seconds"] = round(time.perf_counter() - started, 2)
    metrics["train_pairs"] = len(pairs)
    folder = _out_dir(out_dir, "keel-bi-encoder-")
    encoder.max_seq_length = cfg.max_length
    encoder.save(str(folder / ENCODER_DIR))
    meta = ArtifactMeta(
        task="encoder",
        config={**cfg.to_dict(), "loss": "in-batch negatives (MultipleNegativesRanking)"},
        data_fingerprint=_pairs_fingerprint(pairs),
        metrics={**metrics, "history": history},
        base_model=cfg.base_model,
        max_length=cfg.max_length,
        normalize=True,
    )
    _finish_artifact(folder, meta, history)
    return folder


def _bi_encoder_val(
    encoder: Any, val: list[tuple[str, str]], cfg: PairConfig, device: str
) -> dict[str, float]:
    queries = embed_texts(encoder, [a for a, _ in val], max_length=cfg.max_length, device=device)
    docs = embed_texts(
        encoder,
        [b for _, b in val],
        max_length=cfg.max_length,
        device=device,
        role=_second_role(cfg),
    )
    return ranking_scores(queries, docs)


def _second_role(cfg: PairConfig) -> TextRole:
    """Role of a pair's second text: a passage for retrieval, a query when symmetric."""
    return TextRole.QUERY if cfg.symmetric else TextRole.PASSAGE


def train_cross_encoder(
    examples: list[tuple[str, str, float]],
    config: PairConfig | None = None,
    out_dir: str | Path | None = None,
    val: list[tuple[str, str, float]] | None = None,
) -> Path:
    """Train a cross-encoder (query and text read together) with pointwise BCE.

    Args:
        examples: (query, text, relevance in [0, 1]) triples.
        config: options (default ``PairConfig()``).
        out_dir: artifact folder (default: a new temporary folder).
        val: held-out triples; their ROC AUC is recorded.

    Returns:
        The artifact folder (``task="cross_encoder"``; ``encoder/`` loads with
        ``AutoModelForSequenceClassification``, one logit, sigmoid = relevance).

    Raises:
        DataError: no examples, an empty text, or a label outside [0, 1].
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    cfg = config or PairConfig()
    _check_pairs(examples, "examples", 3)
    for index, (_, _, label) in enumerate(examples):
        if not 0.0 <= float(label) <= 1.0:
            raise DataError(f"examples item {index}: label {label!r} is outside [0, 1]")
    started = time.perf_counter()
    seed_everything(cfg.seed)
    set_threads(cfg.num_threads)
    device = pick_device(cfg.device)
    base = str(resolve_base_model(cfg.base_model))
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=1, local_files_only=True
    ).to(device)
    prefixes = read_prefixes(base)
    encoded = tokenize_pairs(tokenizer, [(a, b) for a, b, _ in examples], cfg.max_length, prefixes)
    labels = torch.tensor([float(y) for _, _, y in examples])
    optimizer = adamw(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * ((len(examples) + cfg.batch_size - 1) // cfg.batch_size)
    scheduler = linear_warmup_decay(optimizer, steps, cfg.warmup_ratio)
    rng = random.Random(cfg.seed)
    lengths = [len(e["input_ids"]) for e in encoded]
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def cross_encoder_loss(batch: list[int]) -> tuple[torch.Tensor, int]:
        inputs = _pad_pair_batch(tokenizer, [encoded[i] for i in batch], device)
        with autocast(device, cfg.mixed_precision):
            logits = model(**inputs).logits.squeeze(-1)
        return loss_fn(logits.float(), labels[batch].to(device)), len(batch)

    runner: EpochRunner[list[int]] = EpochRunner(
        plan=lambda _epoch: bucketed_batches(lengths, cfg.batch_size, rng),
        loss_fn=cross_encoder_loss,
        parameters=list(model.parameters()),
        optimizer=optimizer,
        scheduler=scheduler,
        modules=[model],
        max_grad_norm=cfg.max_grad_norm,
    )
    history = run_epochs(
        runner, epochs=cfg.epochs, description="cross-encoder", show_progress=cfg.show_progress
    )
    metrics: dict[str, Any] = {"train_seconds": round(time.perf_counter() - started, 2)}
    if val:
        _check_pairs(val, "val examples", 3)
        from keel.evaluation import auc

        scores = _score_with(
            model, tokenizer, [(a, b) for a, b, _ in val], cfg.max_length, device, prefixes
        )
        metrics["val_auc"] = auc([float(y) >= 0.5 for _, _, y in val], scores)
    folder = _out_dir(out_dir, "keel-cross-encoder-")
    model.save_pretrained(str(folder / ENCODER_DIR))
    tokenizer.save_pretrained(str(folder / ENCODER_DIR))
    # transformers does not save sentence-transformers prompts: keep e5's prefixes.
    write_prefixes(folder / ENCODER_DIR, prefixes)
    meta = ArtifactMeta(
        task="cross_encoder",
        config={**cfg.to_dict(), "loss": "pointwise BCE", "activation": "sigmoid", "num_labels": 1},
        data_fingerprint=_pairs_fingerprint(examples),
        metrics={**metrics, "history": history},
        base_model=cfg.base_model,
        max_length=cfg.max_length,
        normalize=False,
    )
    _finish_artifact(folder, meta, history)
    return folder


def _pad_pair_batch(
    tokenizer: Any, items: list[dict[str, list[int]]], device: str
) -> dict[str, Any]:
    padded = tokenizer.pad(items, padding=True, return_tensors="pt")
    return {k: v.to(device) for k, v in padded.items()}


def _score_with(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    max_length: int,
    device: str,
    prefixes: TextPrefixes = NO_PREFIXES,
    batch_size: int = 64,
) -> np.ndarray:
    import torch

    encoded = tokenize_pairs(tokenizer, pairs, max_length, prefixes)
    out = np.zeros(len(pairs), dtype=np.float32)
    order = bucketed_batches([len(e["input_ids"]) for e in encoded], batch_size, rng=None)
    with torch.inference_mode():
        for batch in order:
            inputs = _pad_pair_batch(tokenizer, [encoded[i] for i in batch], device)
            logits = model(**inputs).logits.squeeze(-1).float()
            out[batch] = torch.sigmoid(logits).cpu().numpy()
    return out


def cross_encoder_scores(
    directory: str | Path, pairs: Sequence[tuple[str, str]], device: str | None = None
) -> np.ndarray:
    """Relevance scores in [0, 1] of (query, text) pairs from a saved cross-encoder artifact.

    Raises:
        ConfigError: the folder is not a cross-encoder artifact.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from keel.models.artifact import read_meta

    meta = read_meta(directory)
    if meta.task != "cross_encoder":
        raise ConfigError(
            "directory", str(directory), f"task is {meta.task!r}, not 'cross_encoder'"
        )
    run_device = pick_device(device)
    path = str(Path(directory) / ENCODER_DIR)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True).to(
        run_device
    )
    model.eval()
    return _score_with(model, tokenizer, pairs, meta.max_length, run_device, read_prefixes(path))


def _finish_artifact(folder: Path, meta: ArtifactMeta, history: list[dict[str, Any]]) -> None:
    write_meta(folder, meta)
    meta.size_mb = folder_size_mb(folder)
    write_meta(folder, meta)
    write_model_card(folder, meta, history=history)
