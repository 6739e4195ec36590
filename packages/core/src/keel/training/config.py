"""Typed, validated training configs: ``Strategy``, ``ClassifierConfig``, ``PairConfig``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from keel.errors import ConfigError


class Strategy(StrEnum):
    """How a classifier is trained.

    ``HEAD`` freezes the encoder and fits a linear head on its embeddings;
    ``FULL`` fine-tunes encoder and head together; ``FEWSHOT`` is the SetFit recipe
    (contrastive pair fine-tuning of the encoder, then a head).
    """

    HEAD = "head"
    FULL = "full"
    FEWSHOT = "fewshot"


_DEFAULT_EPOCHS = {Strategy.HEAD: 1, Strategy.FULL: 4, Strategy.FEWSHOT: 1}
_DEFAULT_LR = {Strategy.HEAD: 1.0, Strategy.FULL: 5e-5, Strategy.FEWSHOT: 2e-5}
#: ``full`` training's default wall-clock budget (minutes): issue 13's 30 minutes per
#: model on 2 CPU cores, less a reserve for ONNX int8 compression.
PRODUCTION_TRAIN_MINUTES = 27.0


def _check_positive(name: str, value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ConfigError(name, value, "must be a positive number")


def _check_fraction(name: str, value: float, *, inclusive_high: bool = False) -> None:
    ok = 0.0 <= value <= 1.0 if inclusive_high else 0.0 <= value < 1.0
    if not isinstance(value, int | float) or not ok:
        raise ConfigError(name, value, "must be in [0, 1" + ("]" if inclusive_high else ")"))


def _check_device(device: str | None) -> None:
    if device is not None and not (
        device == "cpu" or device == "cuda" or device.startswith("cuda:") or device == "mps"
    ):
        raise ConfigError("device", device, "use 'cpu', 'cuda', 'cuda:N', 'mps' or None (auto)")


@dataclass
class ClassifierConfig:
    """Options of ``train_classifier`` / ``train_multi_head``.

    Attributes:
        strategy: ``head``, ``full`` or ``fewshot`` (a ``Strategy`` or its string).
        base_model: packaged model name (``"minilm"``) or a sentence-transformers folder.
        epochs: passes over the data (``full``); contrastive epochs (``fewshot``);
            ignored by ``head``. ``None`` picks the strategy's default.
        learning_rate: encoder learning rate (``full``/``fewshot``); ``head`` fits its
            head with L-BFGS and ignores it. ``None`` picks the strategy's default.
        head_learning_rate: head learning rate during ``full`` fine-tuning.
        head_l2: L2 penalty of the logistic-regression head fit on frozen embeddings
            (``head``, ``fewshot``).
        init_head_l2: L2 penalty of the head fitted on frozen embeddings before ``full``
            fine-tuning starts (LP-FT); ``None`` uses ``head_l2``. A stronger penalty
            leaves a less confident head, so the encoder gets more gradient.
        batch_size: examples (``full``) or sentence pairs (``fewshot``) per step.
        weight_decay: AdamW weight decay; the head's L2 penalty for ``head``.
        warmup_ratio: share of the steps with a linear learning-rate warm-up.
        max_length: tokens per text (longer texts are truncated).
        seed: makes runs repeatable.
        class_weights: weight the loss by inverse label frequency (imbalanced data).
        early_stopping_patience: epochs without validation gain before stopping
            (``full`` with a validation set; 0 disables); the best epoch's weights are kept.
        max_train_minutes: wall-clock budget of ``full`` training, counted from the start
            of ``train_classifier`` (model load and the LP step included). An epoch is
            not started when the last one's duration says it would end past the budget;
            at least one epoch always runs, and with validation data the best epoch so
            far is kept. ``None``: no limit. The default keeps training plus compression
            within the production recipe's 30 minutes per model on 2 CPU cores
            (compression takes 1-3 minutes there); on a GPU it does not bind.
        layerwise_lr_decay: if set (0, 1], each lower transformer layer gets its upper
            neighbour's learning rate times this factor.
        cross_head_weight: ``full`` with several single-label heads trained on different
            texts: from the second epoch on, each batch also trains every other head
            towards that head's own predictions of these rows at the end of the previous
            epoch (KL to the soft labels, times this weight), so the sentiment head
            learns from the topic head's texts and back. 0 turns it off. It costs one
            inference pass over the training texts per epoch after the first.
        mixed_precision: bf16 autocast on a GPU (ignored on CPU).
        device: ``"cpu"``, ``"cuda"``..., or ``None`` for a GPU when one is present.
        fewshot_pairs_per_example: contrastive pairs drawn per training example.
        max_grad_norm: gradient clipping norm.
        num_threads: torch CPU threads (``None``: all cores).
        show_progress: progress bars and per-epoch log lines.
    """

    strategy: Strategy | str = Strategy.HEAD
    base_model: str = "minilm"
    epochs: int | None = None
    learning_rate: float | None = None
    head_learning_rate: float = 2e-3
    head_l2: float = 1e-5
    init_head_l2: float | None = None
    batch_size: int = 32
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int = 64
    seed: int = 13
    class_weights: bool = False
    early_stopping_patience: int = 2
    max_train_minutes: float | None = PRODUCTION_TRAIN_MINUTES
    layerwise_lr_decay: float | None = None
    cross_head_weight: float = 0.0
    mixed_precision: bool = False
    device: str | None = None
    fewshot_pairs_per_example: int = 20
    max_grad_norm: float = 1.0
    num_threads: int | None = None
    show_progress: bool = True

    def __post_init__(self) -> None:
        try:
            self.strategy = Strategy(self.strategy)
        except ValueError:
            raise ConfigError(
                "strategy", self.strategy, f"use one of {[s.value for s in Strategy]}"
            ) from None
        if self.epochs is None:
            self.epochs = _DEFAULT_EPOCHS[self.strategy]
        if self.learning_rate is None:
            self.learning_rate = _DEFAULT_LR[self.strategy]
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError("epochs", self.epochs, "must be an integer >= 1")
        _check_positive("learning_rate", self.learning_rate)
        _check_positive("head_learning_rate", self.head_learning_rate)
        if not isinstance(self.head_l2, int | float) or self.head_l2 < 0:
            raise ConfigError("head_l2", self.head_l2, "must be >= 0")
        if self.init_head_l2 is not None and (
            not isinstance(self.init_head_l2, int | float) or self.init_head_l2 < 0
        ):
            raise ConfigError("init_head_l2", self.init_head_l2, "must be >= 0 or None")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError("batch_size", self.batch_size, "must be an integer >= 1")
        if not isinstance(self.weight_decay, int | float) or self.weight_decay < 0:
            raise ConfigError("weight_decay", self.weight_decay, "must be >= 0")
        _check_fraction("warmup_ratio", self.warmup_ratio)
        if not isinstance(self.max_length, int) or not 8 <= self.max_length <= 512:
            raise ConfigError("max_length", self.max_length, "must be an integer in [8, 512]")
        if not isinstance(self.early_stopping_patience, int) or self.early_stopping_patience < 0:
            raise ConfigError(
                "early_stopping_patience", self.early_stopping_patience, "must be an integer >= 0"
            )
        if self.max_train_minutes is not None and (
            not isinstance(self.max_train_minutes, int | float)
            or isinstance(self.max_train_minutes, bool)
            or not self.max_train_minutes > 0
        ):
            raise ConfigError(
                "max_train_minutes", self.max_train_minutes, "must be a positive number or None"
            )
        if self.layerwise_lr_decay is not None and not 0.0 < self.layerwise_lr_decay <= 1.0:
            raise ConfigError("layerwise_lr_decay", self.layerwise_lr_decay, "must be in (0, 1]")
        if (
            not isinstance(self.cross_head_weight, int | float)
            or isinstance(self.cross_head_weight, bool)
            or not self.cross_head_weight >= 0
        ):
            raise ConfigError("cross_head_weight", self.cross_head_weight, "must be a number >= 0")
        _check_device(self.device)
        if (
            not isinstance(self.fewshot_pairs_per_example, int)
            or self.fewshot_pairs_per_example < 1
        ):
            raise ConfigError(
                "fewshot_pairs_per_example", self.fewshot_pairs_per_example, "must be >= 1"
            )
        _check_positive("max_grad_norm", self.max_grad_norm)
        if self.num_threads is not None and (
            not isinstance(self.num_threads, int) or self.num_threads < 1
        ):
            raise ConfigError("num_threads", self.num_threads, "must be an integer >= 1 or None")
        if not isinstance(self.seed, int):
            raise ConfigError("seed", self.seed, "must be an integer")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the strategy as its string)."""
        data = asdict(self)
        data["strategy"] = Strategy(self.strategy).value
        return data


@dataclass
class PairConfig:
    """Options of ``train_bi_encoder`` / ``train_cross_encoder``.

    Attributes:
        base_model: packaged model name or a sentence-transformers folder.
        epochs: passes over the pairs.
        learning_rate: AdamW learning rate.
        batch_size: pairs per step (the in-batch negatives of the bi-encoder).
        weight_decay: AdamW weight decay.
        warmup_ratio: share of steps with a linear warm-up.
        max_length: tokens per text (cross-encoder: per concatenated pair).
        seed: makes runs repeatable.
        scale: similarity scale of the in-batch-negatives loss (bi-encoder).
        mixed_precision: bf16 autocast on a GPU.
        device: ``None`` picks a GPU when present.
        max_grad_norm: gradient clipping norm.
        num_threads: torch CPU threads (``None``: all cores).
        show_progress: progress bars and log lines.
        symmetric: both sides of a pair are the same kind of text (item-to-item
            similarity): with an e5 encoder both get the ``query: `` prefix. False
            (retrieval): the second side is a passage (``passage: ``).
    """

    base_model: str = "minilm"
    epochs: int = 1
    learning_rate: float = 2e-5
    batch_size: int = 32
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int = 128
    seed: int = 13
    scale: float = 20.0
    mixed_precision: bool = False
    device: str | None = None
    max_grad_norm: float = 1.0
    num_threads: int | None = None
    show_progress: bool = True
    symmetric: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError("epochs", self.epochs, "must be an integer >= 1")
        _check_positive("learning_rate", self.learning_rate)
        if not isinstance(self.batch_size, int) or self.batch_size < 2:
            raise ConfigError("batch_size", self.batch_size, "must be an integer >= 2")
        if self.weight_decay < 0:
            raise ConfigError("weight_decay", self.weight_decay, "must be >= 0")
        _check_fraction("warmup_ratio", self.warmup_ratio)
        if not isinstance(self.max_length, int) or not 8 <= self.max_length <= 512:
            raise ConfigError("max_length", self.max_length, "must be an integer in [8, 512]")
        if not math.isfinite(self.scale) or self.scale <= 0:
            raise ConfigError("scale", self.scale, "must be a positive finite number")
        _check_device(self.device)
        _check_positive("max_grad_norm", self.max_grad_norm)
        if self.num_threads is not None and self.num_threads < 1:
            raise ConfigError("num_threads", self.num_threads, "must be >= 1 or None")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)
