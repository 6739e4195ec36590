"""Static embeddings distilled from an encoder (the model2vec recipe, done here).

Every vocabulary token goes through the encoder alone (``[CLS] token [SEP]``, batched);
its mean-pooled output becomes the token's vector. The table is centred and projected
with PCA to ``dims`` dimensions, and each row is scaled by a SIF weight
``a / (a + p(rank))`` with ``p`` a Zipf distribution over the token ids (WordPiece ids
roughly follow frequency, so frequent, uninformative tokens weigh less). A text's
embedding is then the L2-normalised mean of its tokens' rows: a table lookup, no
transformer pass, on the order of 100x faster than the encoder.

``model2vec``'s own ``distill`` extra pins ``transformers<5.4``, older than the one Keel
uses, so the distillation is implemented here; the table is saved in model2vec's folder
format (``model.safetensors``, ``tokenizer.json``, ``config.json``, ``modules.json``) and
served with ``model2vec.StaticModel.from_pretrained(<local folder>)`` (a local folder
never touches the network).

Distilling the MiniLM vocabulary (30,522 tokens) takes a few tens of seconds on two
cores, so tables are cached per encoder fingerprint under ``keel_cache_dir()/static``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import ArtifactError, ConfigError

STATIC_FORMAT = 1
#: Files of model2vec's folder layout that a distilled table must have.
STATIC_FILES = ("model.safetensors", "tokenizer.json", "config.json")
DISTILL_FILE = "keel_static.json"


@dataclass(frozen=True)
class StaticDistillConfig:
    """How to distil a static table.

    Attributes:
        dims: PCA dimensions (at most the encoder's width).
        sif_coefficient: the SIF ``a`` of the Zipf weighting (None: no weighting).
        batch_size: tokens per encoder pass.
        max_tokens: embed only the first ``max_tokens`` vocabulary ids (the others get
            zero vectors and are ignored at inference): a quick, smaller table for tests.
            None (the default) embeds the whole vocabulary.
        show_progress: a progress bar with an ETA on stderr.
    """

    dims: int = 256
    sif_coefficient: float | None = 1e-4
    batch_size: int = 512
    max_tokens: int | None = None
    show_progress: bool = True

    def __post_init__(self) -> None:
        if self.dims < 2:
            raise ConfigError("dims", self.dims, "must be >= 2")
        if self.sif_coefficient is not None and not 0 < self.sif_coefficient < 1:
            raise ConfigError("sif_coefficient", self.sif_coefficient, "must be in (0, 1)")
        if self.batch_size < 1:
            raise ConfigError("batch_size", self.batch_size, "must be >= 1")
        if self.max_tokens is not None and self.max_tokens < 16:
            raise ConfigError("max_tokens", self.max_tokens, "must be >= 16 (or None)")

    def shape_key(self) -> dict[str, Any]:
        """The settings that change the table (not the progress bar or batch size)."""
        return {
            "format": STATIC_FORMAT,
            "dims": self.dims,
            "sif_coefficient": self.sif_coefficient,
            "max_tokens": self.max_tokens,
        }


def _encoder_files(model_dir: Path) -> list[Path]:
    files = [p for p in sorted((model_dir / "encoder").rglob("*")) if p.is_file()]
    files += [p for p in (model_dir / "model.onnx",) if p.is_file()]
    if not files:
        raise ArtifactError(f"{model_dir}: no encoder/ folder or model.onnx to distil from")
    return files


def encoder_fingerprint(model_dir: str | Path, config: StaticDistillConfig) -> str:
    """sha256 over the artifact's encoder files (weights, tokenizer, config) and the
    settings that shape the table: equal fingerprints give equal tables."""
    folder = Path(model_dir)
    digest = hashlib.sha256(json.dumps(config.shape_key(), sort_keys=True).encode())
    for path in _encoder_files(folder):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def zipf_sif_weights(n: int, sif_coefficient: float | None) -> np.ndarray:
    """SIF weights ``a / (a + p)`` of ``n`` tokens ranked by id, ``p`` Zipf (``1/(rank+1)``,
    normalised); all ones without a coefficient."""
    if sif_coefficient is None:
        return np.ones(n, dtype=np.float32)
    inverse_rank = 1.0 / np.arange(2, n + 2, dtype=np.float64)
    p = inverse_rank / inverse_rank.sum()
    return np.asarray(sif_coefficient / (sif_coefficient + p), dtype=np.float32)


def pca_project(vectors: np.ndarray, dims: int) -> np.ndarray:
    """Centre ``vectors`` and project them on their top ``dims`` principal axes
    (eigenvectors of the covariance, largest first); fewer columns stay as they are."""
    if vectors.ndim != 2 or len(vectors) < 2:
        raise ConfigError("vectors", getattr(vectors, "shape", None), "need a 2-D array of rows")
    if dims >= vectors.shape[1]:
        return np.asarray(vectors - vectors.mean(axis=0), dtype=np.float32)
    x = vectors.astype(np.float64)
    x -= x.mean(axis=0)
    covariance = x.T @ x / max(len(x) - 1, 1)
    values, axes = np.linalg.eigh(covariance)
    top = axes[:, np.argsort(values)[::-1][:dims]]
    # Sign convention: the largest loading of each axis is positive (a stable table).
    top *= np.sign(top[np.abs(top).argmax(axis=0), np.arange(top.shape[1])])
    return np.asarray(x @ top, dtype=np.float32)


class _Progress:
    """A one-line progress bar with rate and ETA (stderr), or nothing."""

    def __init__(self, total: int, enabled: bool, label: str) -> None:
        self.total, self.enabled, self.label = total, enabled, label
        self.done = 0
        self.started = time.perf_counter()
        self._last = 0.0

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last < 0.5 and self.done < self.total:
            return
        self._last = now
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        sys.stderr.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
            f"{self.done}/{self.total} {rate:,.0f}/s ETA {eta:,.0f}s "
        )
        if self.done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _token_encoder(predictor: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A function ``ids [n, 3] -> mean-pooled outputs [n, dim]`` for the predictor's encoder."""
    backend = getattr(predictor, "backend", "")
    if backend == "torch":
        import torch

        from keel.models._pooling import mean_pool

        model = predictor.model
        device = getattr(predictor, "device", "cpu")

        def encode_torch(ids: np.ndarray) -> np.ndarray:
            input_ids = torch.as_tensor(ids, dtype=torch.long, device=device)
            mask = torch.ones_like(input_ids)
            with torch.inference_mode():
                hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
                pooled = mean_pool(hidden, mask)
            return np.asarray(pooled.float().cpu().numpy(), dtype=np.float32)

        return encode_torch
    if backend == "onnx":
        from keel.inference._onnx_backend import ONNX_OUTPUT

        session = predictor.session
        names = {i.name for i in session.get_inputs()}

        def encode_onnx(ids: np.ndarray) -> np.ndarray:
            feeds = {"input_ids": ids.astype(np.int64), "attention_mask": np.ones_like(ids)}
            if "token_type_ids" in names:
                feeds["token_type_ids"] = np.zeros_like(ids)
            (out,) = session.run([ONNX_OUTPUT], feeds)
            return np.asarray(out, dtype=np.float32)

        return encode_onnx
    raise ArtifactError(f"cannot distil a static table from a {backend or 'non-encoder'} model")


def _special_ids(tokenizer: Any) -> tuple[int, int]:
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    end = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if start is None or end is None:
        raise ArtifactError("the tokenizer has no start/end special tokens to frame a token with")
    return int(start), int(end)


def distill_table(
    model_dir: str | Path, config: StaticDistillConfig | None = None, log: Any = print
) -> tuple[np.ndarray, Any, dict[str, Any]]:
    """The static table of ``model_dir``'s encoder (see the module docstring).

    Returns:
        ``(vectors [vocab, dims] float32, tokenizers.Tokenizer, model2vec config dict)``.
    """
    from keel.inference import load_predictor

    config = config or StaticDistillConfig()
    predictor: Any = load_predictor(Path(model_dir), backend="auto")
    tokenizer = getattr(predictor, "tokenizer", None)
    if tokenizer is None or not hasattr(tokenizer, "backend_tokenizer"):
        raise ArtifactError(f"{model_dir}: the encoder has no fast (tokenizers) tokenizer")
    if getattr(predictor, "prefixes", None) and predictor.prefixes.query:
        log("note: the encoder's text prefixes are not applied to single tokens")
    encode = _token_encoder(predictor)
    start, end = _special_ids(tokenizer)
    vocab_size = int(tokenizer.backend_tokenizer.get_vocab_size(with_added_tokens=True))
    count = min(vocab_size, config.max_tokens or vocab_size)
    dim = int(predictor.dim)
    if config.dims > dim:
        raise ConfigError("dims", config.dims, f"must be <= the encoder's width {dim}")
    raw = np.zeros((count, dim), dtype=np.float32)
    progress = _Progress(count, config.show_progress, "static table: encoding tokens")
    log(f"static table: {count} of {vocab_size} tokens through the encoder")
    for first in range(0, count, config.batch_size):
        ids = np.arange(first, min(first + config.batch_size, count), dtype=np.int64)
        framed = np.stack([np.full_like(ids, start), ids, np.full_like(ids, end)], axis=1)
        raw[first : first + len(ids)] = encode(framed)
        progress.update(len(ids))
    projected = (
        pca_project(raw, config.dims) * zipf_sif_weights(count, config.sif_coefficient)[:, None]
    )
    vectors = np.zeros((vocab_size, projected.shape[1]), dtype=np.float32)
    vectors[:count] = projected
    m2v_config = {
        "model_type": "model2vec",
        "architectures": ["StaticModel"],
        "tokenizer_name": str(model_dir),
        "apply_pca": config.dims,
        "sif_coefficient": config.sif_coefficient,
        "hidden_dim": int(vectors.shape[1]),
        "seq_length": 1000000,
        "normalize": True,
        "pooling": "mean",
    }
    return vectors, tokenizer.backend_tokenizer, m2v_config


def save_static(
    folder: Path, vectors: np.ndarray, tokenizer: Any, m2v_config: dict[str, Any]
) -> Path:
    """Write a table in model2vec's folder format (loadable by ``StaticModel.from_pretrained``)."""
    from model2vec import StaticModel

    model = StaticModel(vectors, tokenizer, config=m2v_config, normalize=True)
    model.save_pretrained(folder)
    return folder


def distill_static(
    model_dir: str | Path,
    config: StaticDistillConfig | None = None,
    *,
    cache_dir: str | Path | None = None,
    log: Any = print,
) -> Path:
    """The folder of ``model_dir``'s static table, distilled once per encoder fingerprint.

    Args:
        model_dir: a Keel encoder or classifier artifact (torch or ONNX).
        config: distillation settings (default: the whole vocabulary, 256 dims).
        cache_dir: where tables are kept (default ``keel_cache_dir()/static``).

    Returns:
        ``<cache_dir>/<fingerprint[:24]>``, in model2vec's format, with ``keel_static.json``
        (fingerprint, settings, seconds taken).
    """
    from keel.models import keel_cache_dir

    config = config or StaticDistillConfig()
    source = Path(model_dir)
    fingerprint = encoder_fingerprint(source, config)
    root = Path(cache_dir) if cache_dir is not None else keel_cache_dir() / "static"
    target = root / fingerprint[:24]
    if all((target / name).is_file() for name in (*STATIC_FILES, DISTILL_FILE)):
        log(f"static table cached in {target}")
        return target
    started = time.perf_counter()
    vectors, tokenizer, m2v_config = distill_table(source, config, log)
    staging = root / f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
    save_static(staging, vectors, tokenizer, m2v_config)
    seconds = round(time.perf_counter() - started, 1)
    (staging / DISTILL_FILE).write_text(
        json.dumps(
            {"fingerprint": fingerprint, "source": str(source), "seconds": seconds}
            | {"config": asdict(config)},
            indent=2,
        )
    )
    try:
        staging.rename(target)
    except OSError:  # another process published it first: theirs is the same table
        shutil.rmtree(staging, ignore_errors=True)
    log(f"static table distilled in {seconds}s -> {target}")
    return target


# -- a trained table -------------------------------------------------------------------
# ``static_tier.json`` (``keel.inference._static.TIER_FILE``) of a trained table has no
# heads; ``keel.inference.load_predictor`` recognises a folder by it.


@dataclass(frozen=True)
class StaticTrainConfig:
    """How :func:`train_static` trains a table.

    Attributes:
        dims: PCA dimensions of the table (at most the encoder's width).
        sif_coefficient: SIF ``a`` of the Zipf row weights (None: no weighting).
        regress_epochs: epochs of regression of the documents' static embeddings to the
            encoder's (cosine loss, in the table's PCA coordinates).
        contrastive_epochs: epochs of in-batch-negative training on the pairs
            (MultipleNegativesRanking, scale ``contrastive_scale``), the regression loss
            kept as an anchor (weight ``anchor_weight``).
        learning_rate: Adam's learning rate.
        regress_batch / contrastive_batch: documents / pairs per step.
        seed: torch's seed.
        max_tokens: distil only the first ``max_tokens`` vocabulary ids (tests).
    """

    dims: int = 256
    sif_coefficient: float | None = 1e-4
    regress_epochs: int = 30
    contrastive_epochs: int = 2
    learning_rate: float = 3e-3
    anchor_weight: float = 1.0
    contrastive_scale: float = 20.0
    regress_batch: int = 64
    contrastive_batch: int = 128
    seed: int = 13
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.dims < 2:
            raise ConfigError("dims", self.dims, "must be >= 2")
        if self.sif_coefficient is not None and not 0 < self.sif_coefficient < 1:
            raise ConfigError("sif_coefficient", self.sif_coefficient, "must be in (0, 1)")
        for name in ("regress_epochs", "contrastive_epochs"):
            if getattr(self, name) < 0:
                raise ConfigError(name, getattr(self, name), "must be >= 0")
        for name in ("learning_rate", "contrastive_scale"):
            if not getattr(self, name) > 0:
                raise ConfigError(name, getattr(self, name), "must be > 0")
        if self.anchor_weight < 0:
            raise ConfigError("anchor_weight", self.anchor_weight, "must be >= 0")
        if self.regress_batch < 1 or self.contrastive_batch < 2:
            raise ConfigError(
                "regress_batch/contrastive_batch",
                (self.regress_batch, self.contrastive_batch),
                "must be >= 1 / >= 2",
            )


def pca_axes(table: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and top ``dims`` principal axes of ``table``'s rows, as :func:`pca_project`
    computes them (same sign convention): ``pca_project(t, d) == (t - mean) @ axes``."""
    x = table.astype(np.float64)
    mean = x.mean(axis=0)
    if dims >= table.shape[1]:
        return mean, np.eye(table.shape[1])
    x = x - mean
    values, axes = np.linalg.eigh(x.T @ x / max(len(x) - 1, 1))
    top = axes[:, np.argsort(values)[::-1][:dims]]
    top *= np.sign(top[np.abs(top).argmax(axis=0), np.arange(top.shape[1])])
    return mean, top


def train_table(
    table: np.ndarray,
    doc_ids: list[list[int]],
    targets: np.ndarray,
    pairs: list[tuple[int, int]],
    config: StaticTrainConfig,
    train_rows: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """``table`` with the rows its documents use trained (torch ``EmbeddingBag``, mean
    pooling: model2vec's own inference on ``doc_ids``).

    First ``regress_epochs`` of regression (cosine loss of each document's embedding to
    its row of ``targets``), then ``contrastive_epochs`` on ``pairs`` (document rows:
    in-batch negatives, the regression loss as an anchor). A global offset is learned
    too; mean pooling folds it into every row exactly, so the result is a plain table.

    Args:
        table: ``[vocab, dims]`` float32.
        doc_ids: each document's token ids (``StaticModel.tokenize``).
        targets: ``[len(doc_ids), dims]`` the encoder's document embeddings, in the
            table's coordinates.
        pairs: ``(document row, document row)`` positives (may be empty).
        train_rows: documents the regression trains on (default: all).

    Returns:
        The trained table and the mean losses of the first and last epochs
        (``regress_first``/``regress_last``, ``contrastive_first``/``contrastive_last``).
    """
    import torch
    import torch.nn.functional as F

    if len(doc_ids) != len(targets):
        raise ConfigError("targets", len(targets), f"need one row per document ({len(doc_ids)})")
    if targets.shape[1] != table.shape[1]:
        raise ConfigError("targets", targets.shape, f"need {table.shape[1]} columns")
    if any(not 0 <= a < len(doc_ids) or not 0 <= b < len(doc_ids) for a, b in pairs):
        raise ConfigError("pairs", len(pairs), "rows must index the documents")
    torch.manual_seed(config.seed)
    used = sorted({t for ids in doc_ids for t in ids})
    if not used:
        raise ConfigError("documents", len(doc_ids), "no document has a known token")
    local = {t: i for i, t in enumerate(used)}
    flat = torch.tensor([local[t] for ids in doc_ids for t in ids], dtype=torch.long)
    lengths = [len(ids) for ids in doc_ids]
    offsets = torch.tensor([0, *np.cumsum(lengths)[:-1].tolist()], dtype=torch.long)
    bag = torch.nn.EmbeddingBag(len(used), table.shape[1], mode="mean")
    with torch.no_grad():
        bag.weight.copy_(torch.from_numpy(np.ascontiguousarray(table[used], dtype=np.float32)))
    bias = torch.nn.Parameter(torch.zeros(table.shape[1]))
    optimizer = torch.optim.Adam([bag.weight, bias], lr=config.learning_rate)
    target_t = F.normalize(torch.from_numpy(np.asarray(targets, dtype=np.float32)), dim=1)
    has_tokens = torch.tensor([n > 0 for n in lengths])
    rows = np.arange(len(doc_ids)) if train_rows is None else np.asarray(train_rows)
    train_t = torch.from_numpy(rows.astype(np.int64))
    train_t = train_t[has_tokens[train_t]]
    usable = [(a, b) for a, b in pairs if lengths[a] and lengths[b]]
    losses: dict[str, float] = {}

    def embed_all() -> Any:
        return bag(flat, offsets) + bias

    def regression_loss(vectors: Any, rows: Any) -> Any:
        return (1 - F.cosine_similarity(vectors[rows], target_t[rows], dim=1)).mean()

    def record(name: str, epoch: int, values: list[float]) -> None:
        if values:
            mean = float(np.mean(values))
            if epoch == 0:
                losses[f"{name}_first"] = mean
            losses[f"{name}_last"] = mean

    batch = config.regress_batch
    for epoch in range(config.regress_epochs if len(train_t) else 0):
        perm = train_t[torch.randperm(len(train_t))]
        values = []
        for first in range(0, len(perm), batch):
            loss = regression_loss(embed_all(), perm[first : first + batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            values.append(float(loss.detach()))
        record("regress", epoch, values)
    cbatch = min(config.contrastive_batch, len(usable))
    if config.contrastive_epochs and cbatch >= 2:
        pair_t = torch.tensor(usable, dtype=torch.long)
        for epoch in range(config.contrastive_epochs):
            perm = pair_t[torch.randperm(len(pair_t))]
            values = []
            for first in range(0, len(perm) - cbatch + 1, cbatch):
                chunk = perm[first : first + cbatch]
                vectors = F.normalize(embed_all(), dim=1)
                logits = config.contrastive_scale * vectors[chunk[:, 0]] @ vectors[chunk[:, 1]].T
                labels = torch.arange(len(chunk))
                loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
                values.append(float(loss.detach()))
                if config.anchor_weight and len(train_t):
                    anchor = train_t[torch.randint(len(train_t), (batch,))]
                    loss = loss + config.anchor_weight * regression_loss(embed_all(), anchor)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            record("contrastive", epoch, values)
    out = np.array(table, dtype=np.float32, copy=True)
    out[used] = bag.weight.detach().numpy()
    return out + bias.detach().numpy()[None, :], losses


def train_static(
    encoder_dir: str | Path,
    documents: list[str],
    pairs: list[tuple[int, int]],
    out_dir: str | Path,
    config: StaticTrainConfig | None = None,
    *,
    targets: np.ndarray | None = None,
    cache_dir: str | Path | None = None,
    log: Any = print,
) -> Path:
    """A static table distilled from ``encoder_dir`` and trained on ``documents``
    (regression to the encoder's embeddings of them) and ``pairs`` (contrastive), saved
    in model2vec's format with a head-less ``static_tier.json`` (cascade off), so
    ``keel.inference.load_predictor(out_dir)`` serves it as an embedding-only predictor.

    The raw table (full width, no SIF) comes from :func:`distill_static` (cached per
    encoder fingerprint); it is projected on its ``dims`` principal axes and SIF-weighted
    as :func:`distill_table` does, and the targets are projected on the same axes.

    Args:
        encoder_dir: a Keel encoder artifact (torch or ONNX).
        documents: the texts the table is trained on (e.g. a catalogue's documents).
        pairs: ``(i, j)`` indexes into ``documents`` that should embed close together.
        out_dir: the new folder (must not exist or be empty).
        targets: the encoder's ``[len(documents), width]`` embeddings when the caller
            has them (else computed here).
        cache_dir: where the raw distilled table is cached (see :func:`distill_static`).

    Returns:
        ``out_dir``. ``static_tier.json`` records the settings, losses and seconds.
    """
    from model2vec import StaticModel

    from keel.inference import load_predictor
    from keel.inference._static import TIER_FILE

    config = config or StaticTrainConfig()
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ConfigError("out_dir", str(out), "exists and is not empty")
    if not documents:
        raise ConfigError("documents", 0, "need at least one document")
    started = time.perf_counter()
    if targets is None:
        targets = np.asarray(load_predictor(Path(encoder_dir)).embed(documents), np.float32)
    # The raw table: the encoder's full width (the targets'), no SIF.
    raw_config = StaticDistillConfig(
        dims=int(targets.shape[1]),
        sif_coefficient=None,
        max_tokens=config.max_tokens,
        show_progress=False,
    )
    folder = distill_static(encoder_dir, raw_config, cache_dir=cache_dir, log=log)
    base = StaticModel.from_pretrained(folder, force_download=False)
    raw = np.asarray(base.embedding, dtype=np.float32)
    if targets.shape != (len(documents), raw.shape[1]):
        raise ConfigError(
            "targets", targets.shape, f"need [{len(documents)}, {raw.shape[1]}] (the encoder's)"
        )
    dims = min(config.dims, raw.shape[1])
    count = min(config.max_tokens or len(raw), len(raw))
    mean, axes = pca_axes(raw[:count], dims)
    table = np.zeros((len(raw), dims), dtype=np.float32)
    sif = zipf_sif_weights(count, config.sif_coefficient)[:, None]
    table[:count] = ((raw[:count] - mean) @ axes).astype(np.float32) * sif
    trained, losses = train_table(
        table,
        base.tokenize(documents),
        (targets @ axes).astype(np.float32),
        pairs,
        config,
    )
    m2v_config = dict(
        base.config, apply_pca=dims, hidden_dim=dims, sif_coefficient=config.sif_coefficient
    )
    save_static(out, trained, base.tokenizer, m2v_config)
    # The saved folder must serve the vectors just trained (model2vec's format round trip).
    check = documents[:256]
    expected = StaticModel(trained, base.tokenizer, config=m2v_config, normalize=True).encode(
        check, show_progress_bar=False, use_multiprocessing=False
    )
    reloaded = StaticModel.from_pretrained(out, force_download=False).encode(
        check, show_progress_bar=False, use_multiprocessing=False
    )
    diff = float(np.abs(np.asarray(expected) - np.asarray(reloaded)).max())
    if diff > 1e-5:
        raise ArtifactError(f"{out}: the saved table differs from the trained one ({diff})")
    seconds = round(time.perf_counter() - started, 1)
    meta = {
        "format": 1,
        "heads": {},
        "cascade": {"enabled": False, "reason": "embedding-only table (no heads)"},
        "trained_by": "keel.compression.static.train_static",
        "source": str(encoder_dir),
        "config": asdict(config),
        "documents": len(documents),
        "pairs": len(pairs),
        "losses": {k: round(v, 5) for k, v in losses.items()},
        "max_abs_diff_after_reload": diff,
        "seconds": seconds,
    }
    (out / TIER_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    log(f"static table trained in {seconds}s -> {out}")
    return out
