"""The sentence encoder as a trainable torch module, with efficient batching.

Texts are tokenised once without padding; batches are built from texts of similar
length (sort-by-length buckets) and padded only to their own longest text.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from keel.models import NO_PREFIXES, TextPrefixes, TextRole, mean_pool, model_path
from keel.models._packing import pad_batch
from keel.models.artifact import ENCODER_DIR, META_FILE

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

_BUCKET_BATCHES = 50


def resolve_base_model(base_model: str) -> Path:
    """Folder of a packaged model, a sentence-transformers folder, or a Keel artifact's encoder."""
    path = model_path(base_model)
    if (path / META_FILE).is_file() and (path / ENCODER_DIR).is_dir():
        return path / ENCODER_DIR
    return path


def load_encoder(base_model: str, device: str) -> SentenceTransformer:
    """Load the base encoder as a ``SentenceTransformer`` on ``device``, offline."""
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(
        str(resolve_base_model(base_model)), device=device, local_files_only=True
    )
    # Train and embed in fp32 even when the base model was stored in half precision.
    return encoder.float()


def transformer_of(encoder: SentenceTransformer) -> torch.nn.Module:
    """The Hugging Face transformer inside a sentence-transformers model."""
    module: torch.nn.Module = encoder[0].auto_model  # type: ignore[assignment]
    return module


def encoder_prefixes(encoder: SentenceTransformer) -> TextPrefixes:
    """The text prefixes recorded in a sentence-transformers model (its ``prompts``)."""
    prompts = getattr(encoder, "prompts", None) or {}
    return TextPrefixes(
        query=str(prompts.get("query", "")), passage=str(prompts.get("passage", ""))
    )


def tokenize(
    encoder: SentenceTransformer,
    texts: Sequence[str],
    max_length: int,
    role: TextRole | str = TextRole.QUERY,
) -> list[list[int]]:
    """Token ids of each text (with the encoder's prefix for ``role``, truncated to
    ``max_length``), unpadded."""
    tokenizer = encoder.tokenizer
    out: list[list[int]] = tokenizer(
        encoder_prefixes(encoder).apply(texts, role),
        truncation=True,
        max_length=max_length,
        padding=False,
    )["input_ids"]
    return out


def tokenize_pairs(
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    max_length: int,
    prefixes: TextPrefixes = NO_PREFIXES,
) -> list[dict[str, list[int]]]:
    """Tokenise (query, text) pairs for a cross-encoder (each side with its prefix), unpadded."""
    pairs = prefixes.apply_pairs(pairs)
    encoded = tokenizer(
        [a for a, _ in pairs],
        [b for _, b in pairs],
        truncation=True,
        max_length=max_length,
        padding=False,
    )
    keys = [k for k in ("input_ids", "token_type_ids") if k in encoded]
    return [{k: encoded[k][i] for k in keys} for i in range(len(pairs))]


def bucketed_batches(
    lengths: Sequence[int], batch_size: int, rng: random.Random | None
) -> list[list[int]]:
    """Index batches of similar-length texts.

    With ``rng``: shuffle, cut into chunks of ``50 * batch_size``, sort each chunk by
    length, cut into batches, shuffle the batches (random but cheap to pad). Without:
    one global sort by length (inference).
    """
    order = list(range(len(lengths)))
    if rng is None:
        order.sort(key=lambda i: lengths[i])
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(order)
    chunk = batch_size * _BUCKET_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def pooled_embeddings(
    transformer: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, normalize: bool
) -> torch.Tensor:
    """Transformer forward + mean pooling (+ L2 normalisation): the sentence embedding."""
    import torch

    hidden = transformer(input_ids=ids, attention_mask=mask).last_hidden_state
    pooled = mean_pool(hidden, mask).float()
    return torch.nn.functional.normalize(pooled, dim=-1) if normalize else pooled


def embed_token_ids(
    encoder: SentenceTransformer,
    token_ids: Sequence[Sequence[int]],
    *,
    batch_size: int,
    device: str,
    normalize: bool,
    show_progress: bool = False,
) -> np.ndarray:
    """Embeddings ``[n, dim]`` float32 of pre-tokenised texts, in input order."""
    import torch

    from keel.training._runtime import progress

    transformer = transformer_of(encoder)
    was_training = transformer.training
    transformer.eval()
    pad_id = encoder.tokenizer.pad_token_id or 0
    out = np.zeros((len(token_ids), embedding_dim(encoder)), np.float32)
    batches = bucketed_batches([len(t) for t in token_ids], batch_size, rng=None)
    with torch.inference_mode(), progress(len(batches), "embedding", show_progress) as bar:
        for batch in batches:
            ids, mask = pad_batch([token_ids[i] for i in batch], pad_id)
            vectors = pooled_embeddings(transformer, ids.to(device), mask.to(device), normalize)
            out[batch] = vectors.cpu().numpy()
            bar.update(1)
    transformer.train(was_training)
    return out


def embed_texts(
    encoder: SentenceTransformer,
    texts: Sequence[str],
    *,
    max_length: int,
    batch_size: int = 64,
    device: str = "cpu",
    normalize: bool = True,
    show_progress: bool = False,
    role: TextRole | str = TextRole.QUERY,
) -> np.ndarray:
    """Embeddings ``[n, dim]`` float32 of ``texts`` (prefixed for ``role``, tokenised,
    length-sorted, batched)."""
    return embed_token_ids(
        encoder,
        tokenize(encoder, texts, max_length, role),
        batch_size=batch_size,
        device=device,
        normalize=normalize,
        show_progress=show_progress,
    )


def embedding_dim(encoder: SentenceTransformer) -> int:
    """Output dimension of a sentence-transformers model (works across its versions)."""
    getter = (
        getattr(encoder, "get_embedding_dimension", None)
        or encoder.get_sentence_embedding_dimension
    )
    return int(getter() or 0)
