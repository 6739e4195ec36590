"""Full fine-tuning of the encoder and its head(s): one loop for one task or several.

AdamW with warm-up + linear decay, gradient clipping, optional layer-wise learning-rate
decay, bf16 autocast on a GPU, class weights, early stopping on the validation split
with the best epoch's weights kept. Several tasks share the encoder; each batch holds
one task's examples and the batches of all tasks are shuffled together.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from keel.training._encoder import bucketed_batches, embed_token_ids, pad_batch, transformer_of
from keel.training._heads import HeadTargets, LinearHead, head_loss_fn
from keel.training._runtime import (
    autocast,
    linear_warmup_decay,
    log_epoch,
    optimizer_step,
    progress,
)
from keel.training.config import ClassifierConfig

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

EpochCallback = Callable[[int, dict[str, Any]], None]


@dataclass
class TaskData:
    """Tokenised texts and encoded targets of one head."""

    token_ids: list[list[int]]
    targets: HeadTargets


def head_score(head: LinearHead, embeddings: np.ndarray, targets: np.ndarray) -> float:
    """Validation score of a head: accuracy, or micro-F1 at 0.5 for multi-label."""
    probs = head.probabilities(embeddings)
    if head.multi_label:
        pred = probs >= 0.5
        truth = targets >= 0.5
        tp = float((pred & truth).sum())
        denom = float(pred.sum() + truth.sum())
        return 2 * tp / denom if denom else 0.0
    return float(np.mean(probs.argmax(axis=1) == targets))


def _param_groups(
    transformer: torch.nn.Module, heads: torch.nn.ModuleDict, config: ClassifierConfig
) -> list[dict[str, Any]]:
    """AdamW groups: no decay on biases/LayerNorm; layer-wise LR decay when configured."""
    lr = float(config.learning_rate or 0.0)
    decay = config.layerwise_lr_decay
    n_layers = int(getattr(transformer.config, "num_hidden_layers", 0))

    def layer_lr(name: str) -> float:
        if decay is None:
            return lr
        if name.startswith("embeddings."):
            return lr * decay**n_layers
        if name.startswith("encoder.layer."):
            index = int(name.split(".")[2])
            return lr * decay ** (n_layers - 1 - index)
        return lr

    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for name, param in transformer.named_parameters():
        if not param.requires_grad or name.startswith("pooler."):
            continue
        no_decay = name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name
        key = (layer_lr(name), 0.0 if no_decay else config.weight_decay)
        groups.setdefault(key, []).append(param)
    result = [{"params": p, "lr": k[0], "weight_decay": k[1]} for k, p in groups.items()]
    result.append(
        {"params": list(heads.parameters()), "lr": config.head_learning_rate, "weight_decay": 0.0}
    )
    return result


def fine_tune(
    encoder: SentenceTransformer,
    heads: dict[str, LinearHead],
    train: dict[str, TaskData],
    val: dict[str, TaskData] | None,
    config: ClassifierConfig,
    device: str,
    on_epoch_end: EpochCallback | None = None,
    normalize: bool = True,
) -> tuple[dict[str, LinearHead], list[dict[str, Any]]]:
    """Fine-tune ``encoder`` and ``heads`` (initial weights) on every task in ``train``.

    Args:
        encoder: sentence-transformers model, trained in place (best epoch restored).
        heads: initial head weights per task name.
        train: tokenised training data per task name.
        val: validation data per task (enables early stopping and best-epoch restore).
        config: training options.
        device: torch device.
        on_epoch_end: called with ``(epoch, history_row)`` after each epoch; may raise to
            stop training (hyperparameter pruning).
        normalize: L2-normalise pooled embeddings before the heads.

    Returns:
        The trained heads and the per-epoch history.
    """
    import torch

    transformer = transformer_of(encoder).to(device)
    torch_heads = torch.nn.ModuleDict()
    for name, head in heads.items():
        layer = torch.nn.Linear(head.weight.shape[1], head.weight.shape[0])
        with torch.no_grad():
            layer.weight.copy_(torch.as_tensor(head.weight))
            layer.bias.copy_(torch.as_tensor(head.bias))
        torch_heads[name] = layer
    torch_heads.to(device)
    loss_fns = {name: head_loss_fn(task.targets).to(device) for name, task in train.items()}
    targets = {name: torch.as_tensor(task.targets.targets) for name, task in train.items()}
    optimizer = torch.optim.AdamW(_param_groups(transformer, torch_heads, config))
    rng = random.Random(config.seed)
    batch_size = config.batch_size
    epochs = int(config.epochs or 1)
    steps_per_epoch = sum(
        (len(task.token_ids) + batch_size - 1) // batch_size for task in train.values()
    )
    scheduler = linear_warmup_decay(optimizer, steps_per_epoch * epochs, config.warmup_ratio)
    pad_id = encoder.tokenizer.pad_token_id or 0
    lengths = {name: [len(t) for t in task.token_ids] for name, task in train.items()}

    history: list[dict[str, Any]] = []
    best_score, best_state, stale = -1.0, None, 0
    for epoch in range(1, epochs + 1):
        plan = [
            (name, b) for name in train for b in bucketed_batches(lengths[name], batch_size, rng)
        ]
        rng.shuffle(plan)
        transformer.train()
        total_loss, seen, started = 0.0, 0, time.perf_counter()
        with progress(len(plan), f"epoch {epoch}/{epochs}", config.show_progress) as bar:
            for name, batch in plan:
                ids, mask = pad_batch([train[name].token_ids[i] for i in batch], pad_id)
                ids, mask = ids.to(device), mask.to(device)
                with autocast(device, config.mixed_precision):
                    hidden = transformer(input_ids=ids, attention_mask=mask).last_hidden_state
                weights = mask.unsqueeze(-1).float()
                pooled = (hidden.float() * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
                if normalize:
                    pooled = torch.nn.functional.normalize(pooled, dim=-1)
                logits = torch_heads[name](pooled)
                loss = loss_fns[name](logits, targets[name][batch].to(device))
                optimizer_step(
                    loss,
                    list(transformer.parameters()) + list(torch_heads.parameters()),
                    optimizer,
                    scheduler,
                    config.max_grad_norm,
                )
                total_loss += float(loss.detach()) * len(batch)
                seen += len(batch)
                bar.update(1)
                bar.set_postfix(loss=f"{total_loss / seen:.4f}")
        seconds = time.perf_counter() - started
        row: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": total_loss / max(seen, 1),
            "seconds": round(seconds, 2),
            "samples_per_s": round(seen / seconds, 2) if seconds else None,
        }
        current = _heads_to_numpy(torch_heads, heads)
        if val:
            scores = {}
            for name, task in val.items():
                emb = embed_token_ids(
                    encoder,
                    task.token_ids,
                    batch_size=max(64, batch_size),
                    device=device,
                    normalize=normalize,
                )
                scores[name] = head_score(current[name], emb, task.targets.targets)
            row["val_scores"] = scores
            row["val_score"] = float(np.mean(list(scores.values())))
            improved = row["val_score"] > best_score
            if improved:
                row["best"] = True
                best_score, stale = row["val_score"], 0
                best_state = (
                    copy.deepcopy(
                        {k: v.detach().cpu() for k, v in transformer.state_dict().items()}
                    ),
                    current,
                    epoch,
                )
            else:
                stale += 1
        history.append(row)
        val_text = f" val={row['val_score']:.4f}" if "val_score" in row else ""
        log_epoch(
            config.show_progress,
            f"epoch {epoch}/{epochs} train_loss={row['train_loss']:.4f}{val_text} "
            f"{row['samples_per_s']} samples/s {seconds:.1f}s",
        )
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
        patience = config.early_stopping_patience
        if val and patience > 0 and stale >= patience:
            log_epoch(config.show_progress, f"early stop: no gain for {stale} epochs")
            break
    transformer.eval()
    if best_state is not None:
        state, best_heads, _ = best_state
        transformer.load_state_dict(state)
        return best_heads, history
    return _heads_to_numpy(torch_heads, heads), history


def _heads_to_numpy(
    torch_heads: torch.nn.ModuleDict, template: dict[str, LinearHead]
) -> dict[str, LinearHead]:
    out = {}
    for name, module in torch_heads.items():
        layer: torch.nn.Linear = module  # type: ignore[assignment]
        out[name] = LinearHead(
            labels=template[name].labels,
            multi_label=template[name].multi_label,
            weight=layer.weight.detach().float().cpu().numpy().copy(),
            bias=layer.bias.detach().float().cpu().numpy().copy(),
        )
    return out
