"""PyTorch backends: a transformers encoder with mean pooling, and a cross-encoder."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import ArtifactError, ConfigError
from keel.inference._encoder_base import EncoderPredictor, length_buckets
from keel.inference._tokens import BatchTokenizer
from keel.models._heads import LinearHead
from keel.models._packing import (
    PACK_TOKENS,
    can_pack,
    forward_cost,
    pack_groups,
    packed_mean_pool,
    pad_batch,
)
from keel.models._pooling import mean_pool
from keel.models._prefixes import NO_PREFIXES, TextPrefixes


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a core dependency
        raise ImportError("the torch backend needs PyTorch: pip install 'torch>=2.4,<3'") from exc
    return torch


def quantize_linear_int8(model: Any) -> Any:
    """PyTorch dynamic int8 quantization of every ``nn.Linear`` (weights int8, activations
    quantized on the fly). Silences the API's deprecation warning (torchao succeeds it)."""
    torch = _torch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def load_torch_encoder(
    encoder_dir: Path,
    int8_state: Path | None = None,
    device: str = "cpu",
    *,
    attn_implementation: str | None = None,
) -> Any:
    """Load a transformers encoder from ``encoder_dir`` in eval mode.

    With ``int8_state``, the architecture is built from the folder's config, quantized
    (dynamic int8) and filled from that saved quantized state dict.
    ``attn_implementation`` (e.g. ``"eager"``) overrides transformers' default (SDPA).
    """
    torch = _torch()
    from transformers import AutoConfig, AutoModel

    try:
        if int8_state is None:
            options = {"attn_implementation": attn_implementation} if attn_implementation else {}
            model = AutoModel.from_pretrained(str(encoder_dir), local_files_only=True, **options)
        else:
            config = AutoConfig.from_pretrained(str(encoder_dir), local_files_only=True)
            model = quantize_linear_int8(AutoModel.from_config(config).eval())
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # TypedStorage deprecation
                state = torch.load(str(int8_state), map_location="cpu", weights_only=False)
            model.load_state_dict(state)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ArtifactError(f"{encoder_dir}: cannot load the encoder: {exc}") from exc
    model.eval()
    if int8_state is None:
        model.to(device)
    return model


def load_tokenizer(folder: Path) -> Any:
    """Load the (fast) tokenizer saved in ``folder``."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{folder}: cannot load the tokenizer: {exc}") from exc


class TorchEncoderPredictor(EncoderPredictor):
    """Encoder + heads on PyTorch (fp32, or dynamic int8 when the artifact says so).

    A BERT-family encoder may run a batch of several texts packed, without padding
    (``keel.models._packing``; ``pack_tokens=0`` always pads): per batch it runs packs
    or padded length buckets, whichever ``forward_cost`` estimates cheaper (packs win on
    mixed short queries, 1.2-1.5x; padding on long texts of one length). The same
    embeddings to float rounding either way. One text runs as before.
    """

    backend = "torch"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        heads: dict[str, LinearHead],
        max_length: int,
        normalize_features: bool,
        cache_size: int = 0,
        batch_size: int = 64,
        variant: str = "fp32",
        device: str = "cpu",
        prefixes: TextPrefixes = NO_PREFIXES,
        pack_tokens: int = PACK_TOKENS,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self._tokens = BatchTokenizer(tokenizer, max_length)
        self.device = device
        # Batches run packed (no padding) when the encoder allows it; 0 turns it off.
        if pack_tokens < 0:
            raise ConfigError("pack_tokens", pack_tokens, "must be >= 0 (0: pad batches)")
        self.pack_tokens = pack_tokens
        self.packs_texts = pack_tokens > 0 and can_pack(model)
        super().__init__(
            dim=int(model.config.hidden_size),
            heads=heads,
            normalize_features=normalize_features,
            cache_size=cache_size,
            batch_size=batch_size,
            variant=variant,
            prefixes=prefixes,
        )

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self.packs_texts and len(texts) > 1:
            return self._encode_packed(texts)
        torch = _torch()
        batch = {
            k: torch.from_numpy(v).to(self.device) for k, v in self._tokens.padded(texts).items()
        }
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
            pooled = mean_pool(hidden, batch["attention_mask"])
        return np.asarray(pooled.float().cpu().numpy(), dtype=np.float32)

    def _encode_packed(self, texts: list[str]) -> np.ndarray:
        """The batch as packs or as padded length buckets, whichever ``forward_cost``
        says is cheaper for these lengths (``keel.models._packing``)."""
        torch = _torch()
        ids, types = self._tokens.ids(texts)
        lengths = [len(row) for row in ids]
        order = sorted(range(len(ids)), key=lengths.__getitem__)
        packs = [
            [order[j] for j in pack]
            for pack in pack_groups([lengths[i] for i in order], self.pack_tokens)
        ]
        # The padded plan: what the padding path would run (here on token lengths).
        buckets = length_buckets(lengths, len(ids))
        hidden = self.dim
        packed = forward_cost([(1, sum(lengths[i] for i in p)) for p in packs], hidden)
        padded = forward_cost([(len(b), max(lengths[i] for i in b)) for b in buckets], hidden)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for group in packs if packed < padded else buckets:
                rows = [ids[i] for i in group]
                row_types = [types[i] for i in group] if types is not None else None
                if packed < padded:
                    pooled = packed_mean_pool(self.model, rows, row_types, device=self.device)
                else:
                    pooled = self._padded_pool(rows, row_types)
                out[group] = pooled.float().cpu().numpy()
        return out

    def _padded_pool(self, rows: list[list[int]], types: list[list[int]] | None) -> Any:
        """Mean-pooled vectors of pre-tokenised texts in one padded batch."""
        input_ids, mask = pad_batch(rows, self.tokenizer.pad_token_id or 0)
        token_types = pad_batch(types, 0)[0] if types is not None else mask.new_zeros(mask.shape)
        mask = mask.to(self.device)
        hidden = self.model(
            input_ids=input_ids.to(self.device),
            token_type_ids=token_types.to(self.device),
            attention_mask=mask,
        ).last_hidden_state
        return mean_pool(hidden, mask)


class TorchCrossEncoderPredictor:
    """A cross-encoder (``AutoModelForSequenceClassification``) that scores text pairs.

    Scores are the sigmoid of the single logit (or the positive-class probability for
    a two-label model). It has no embedding and no classification heads.
    """

    backend = "torch"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_length: int,
        batch_size: int = 32,
        device: str = "cpu",
        variant: str = "fp32",
        prefixes: TextPrefixes = NO_PREFIXES,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self.variant = variant
        self.prefixes = prefixes
        self._lock = threading.Lock()

    @property
    def labels(self) -> list[str]:
        return []

    @property
    def heads(self) -> list[str]:
        return []

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        raise ArtifactError("a cross-encoder scores pairs; it does not embed single texts")

    def classify(self, texts: Sequence[str], head: str | None = None) -> np.ndarray:
        raise ArtifactError("a cross-encoder scores pairs; use score_pairs")

    def classify_heads(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        raise ArtifactError("a cross-encoder scores pairs; use score_pairs")

    def predict_labels(self, texts: Sequence[str], head: str | None = None) -> list[str]:
        raise ArtifactError("a cross-encoder scores pairs; use score_pairs")

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Relevance in [0, 1] of each ``(query, passage)`` pair."""
        torch = _torch()
        pairs = self.prefixes.apply_pairs(list(pairs))
        scores = np.zeros(len(pairs), dtype=np.float32)
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start : start + self.batch_size]
            with self._lock:
                batch = self.tokenizer(
                    [a for a, _ in chunk],
                    [b for _, b in chunk],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                batch = {k: v.to(self.device) for k, v in batch.items()}
                with torch.inference_mode():
                    logits = self.model(**batch).logits.float()
            if logits.shape[-1] == 1:
                values = torch.sigmoid(logits[:, 0])
            else:
                values = torch.softmax(logits, dim=-1)[:, -1]
            scores[start : start + len(chunk)] = values.cpu().numpy()
        return scores
