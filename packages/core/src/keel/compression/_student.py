"""Trainable encoder + heads used by distillation and recovery fine-tuning."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import ConfigError
from keel.models._heads import head_file, read_head_tensors, write_head_tensors
from keel.models._pooling import mean_pool


@dataclass(frozen=True)
class DistillConfig:
    """Settings of a distillation / recovery run.

    Attributes:
        epochs: passes over the training texts.
        max_steps: stop after this many optimizer steps (None = no limit).
        batch_size: texts per step.
        learning_rate: AdamW learning rate of the student.
        temperature: softening of teacher and student logits (classifiers).
        hard_label_weight: weight of cross-entropy on the teacher's top label
            (0 = pure soft-logit distillation).
        seed: shuffling and initialisation seed.
        show_progress: tqdm bar over steps.
    """

    epochs: int = 3
    max_steps: int | None = None
    batch_size: int = 32
    learning_rate: float = 1e-4
    temperature: float = 2.0
    hard_label_weight: float = 0.0
    seed: int = 13
    show_progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError("epochs", self.epochs, "must be >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError("max_steps", self.max_steps, "must be >= 1 or None")
        if self.batch_size < 1:
            raise ConfigError("batch_size", self.batch_size, "must be >= 1")
        if not 0 < self.learning_rate < 1:
            raise ConfigError("learning_rate", self.learning_rate, "must be in (0, 1)")
        if self.temperature <= 0:
            raise ConfigError("temperature", self.temperature, "must be > 0")
        if not 0 <= self.hard_label_weight <= 1:
            raise ConfigError("hard_label_weight", self.hard_label_weight, "must be in [0, 1]")


def load_heads_as_torch(
    artifact_dir: Path, head_names: Sequence[str], dim: int | None = None
) -> dict[str, Any]:
    """Trainable ``torch.nn.Linear`` copies of the artifact's heads.

    When the student's embedding size ``dim`` differs from the teacher's, the heads
    start from scratch (same labels) instead of from the teacher's weights.
    """
    import torch

    torch.manual_seed(13)
    heads: dict[str, Any] = {}
    for name in head_names:
        weight, bias = read_head_tensors(head_file(artifact_dir, name))
        if dim is not None and dim != weight.shape[1]:
            heads[name] = torch.nn.Linear(dim, weight.shape[0])
            continue
        layer = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(weight))
            layer.bias.copy_(torch.from_numpy(bias))
        heads[name] = layer
    return heads


def save_torch_heads(out_dir: Path, heads: dict[str, Any]) -> None:
    """Write trained heads back as ``head*.safetensors``."""
    for name, layer in heads.items():
        write_head_tensors(
            head_file(out_dir, name),
            layer.weight.detach().cpu().numpy(),
            layer.bias.detach().cpu().numpy(),
        )


def train_student(
    model: Any,
    tokenizer: Any,
    heads: dict[str, Any],
    texts: Sequence[str],
    targets: dict[str, np.ndarray],
    *,
    normalize: bool,
    max_length: int,
    config: DistillConfig,
    embedding_target: np.ndarray | None = None,
) -> list[float]:
    """Fit ``model`` (+ ``heads``) to the teacher's outputs; returns the loss per step.

    Classifier heads learn the teacher's temperature-softened logits (KL divergence
    times T², Hinton et al. 2015), plus optional cross-entropy on the teacher's top
    label. With ``embedding_target`` the pooled embedding learns the teacher's
    embedding (1 - cosine), which is how encoders are distilled.
    """
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from keel.training._encoder import bucketed_batches
    from keel.training._runtime import adamw

    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    parameters = list(model.parameters()) + [p for h in heads.values() for p in h.parameters()]
    optimizer = adamw(parameters, lr=config.learning_rate, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(texts) / config.batch_size)
    total = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1.0 - step / max(1, total))
    )
    tensors = {
        name: torch.from_numpy(np.asarray(t, dtype=np.float32)) for name, t in targets.items()
    }
    emb_target = (
        torch.from_numpy(np.asarray(embedding_target, dtype=np.float32))
        if embedding_target is not None
        else None
    )
    model.train()
    for head in heads.values():
        head.train()
    losses: list[float] = []
    lengths = [len(text) for text in texts]
    temperature = config.temperature
    with tqdm(total=total, desc="distil", disable=not config.show_progress, leave=False) as bar:
        while len(losses) < total:
            # Random batches of similar-length texts: far less padding than plain shuffling.
            for idx in bucketed_batches(lengths, config.batch_size, rng):
                if len(losses) >= total:
                    break
                batch = tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                )
                hidden = model(**batch).last_hidden_state
                pooled = mean_pool(hidden, batch["attention_mask"])
                features = F.normalize(pooled, dim=1) if normalize else pooled
                loss = torch.zeros(())
                for name, head in heads.items():
                    logits = head(features)
                    teacher = tensors[name][idx]
                    soft = F.kl_div(
                        F.log_softmax(logits / temperature, dim=1),
                        F.softmax(teacher / temperature, dim=1),
                        reduction="batchmean",
                    ) * (temperature**2)
                    loss = loss + (1 - config.hard_label_weight) * soft
                    if config.hard_label_weight > 0:
                        loss = loss + config.hard_label_weight * F.cross_entropy(
                            logits, teacher.argmax(dim=1)
                        )
                if emb_target is not None:
                    target = emb_target[idx]
                    loss = loss + (1 - F.cosine_similarity(pooled, target, dim=1)).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(parameters, 1.0)
                optimizer.step()
                scheduler.step()
                losses.append(float(loss.detach()))
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
    model.eval()
    for head in heads.values():
        head.eval()
    return losses
