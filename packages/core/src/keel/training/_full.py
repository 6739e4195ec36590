"""Full fine-tuning of the encoder and its head(s): one loop for one task or several.

AdamW with warm-up + linear decay, gradient clipping, optional layer-wise learning-rate
decay, bf16 autocast on a GPU, class weights, early stopping on the validation split
with the best epoch's weights kept. Several tasks share the encoder; each batch holds
one task's examples and the batches of all tasks are shuffled together. With
``cross_head_weight``, each batch also trains the other heads on the model's own soft
labels of its rows from the previous epoch.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from keel.models._heads import LinearHead
from keel.training._encoder import (
    bucketed_batches,
    embed_token_ids,
    pad_batch,
    pooled_embeddings,
    transformer_of,
)
from keel.training._heads import HeadTargets, head_loss_fn
from keel.training._loop import EarlyStopping, EpochRunner, run_epochs
from keel.training._runtime import adamw, autocast, linear_warmup_decay
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
    deadline: float | None = None,
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
        deadline: ``time.perf_counter()`` value by which training should end
            (``config.max_train_minutes``; see ``run_epochs``).

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
    optimizer = adamw(_param_groups(transformer, torch_heads, config))
    rng = random.Random(config.seed)
    batch_size = config.batch_size
    epochs = int(config.epochs or 1)
    steps_per_epoch = sum(
        (len(task.token_ids) + batch_size - 1) // batch_size for task in train.values()
    )
    scheduler = linear_warmup_decay(optimizer, steps_per_epoch * epochs, config.warmup_ratio)
    pad_id = encoder.tokenizer.pad_token_id or 0
    lengths = {name: [len(t) for t in task.token_ids] for name, task in train.items()}

    def plan(_epoch: int) -> list[tuple[str, list[int]]]:
        # Every task's batches, shuffled together: each batch holds one task's examples.
        batches = [
            (name, b) for name in train for b in bucketed_batches(lengths[name], batch_size, rng)
        ]
        rng.shuffle(batches)
        return batches

    # ``cross_head_weight``: each task's rows -> the other heads' soft labels of them,
    # taken at the end of the previous epoch (empty in the first epoch).
    cross: dict[str, dict[str, torch.Tensor]] = {}

    def loss_fn(item: tuple[str, list[int]]) -> tuple[torch.Tensor, int]:
        name, batch = item
        ids, mask = pad_batch([train[name].token_ids[i] for i in batch], pad_id)
        ids, mask = ids.to(device), mask.to(device)
        with autocast(device, config.mixed_precision):
            pooled = pooled_embeddings(transformer, ids, mask, normalize)
        logits = torch_heads[name](pooled)
        loss = loss_fns[name](logits, targets[name][batch].to(device))
        for other, soft in cross.get(name, {}).items():
            log_probs = torch.log_softmax(torch_heads[other](pooled).float(), dim=-1)
            loss = loss + config.cross_head_weight * torch.nn.functional.kl_div(
                log_probs, soft[batch].to(device), reduction="batchmean"
            )
        return loss, len(batch)

    stopper = EarlyStopping(config.early_stopping_patience)
    best: dict[str, Any] = {}

    def end_of_epoch(epoch: int, row: dict[str, Any]) -> bool:
        if val:
            current = _heads_to_numpy(torch_heads, heads)
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
            if stopper.update(row["val_score"]):
                row["best"] = True
                best["state"] = copy.deepcopy(
                    {k: v.detach().cpu() for k, v in transformer.state_dict().items()}
                )
                best["heads"] = current
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
        stop = bool(val) and stopper.should_stop
        if config.cross_head_weight and epoch < epochs and not stop:
            cross.clear()
            cross.update(
                cross_head_targets(
                    encoder,
                    _heads_to_numpy(torch_heads, heads),
                    train,
                    batch_size=max(64, batch_size),
                    device=device,
                    normalize=normalize,
                )
            )
            row["cross_head_rows"] = sum(len(train[name].token_ids) for name in cross)
        return stop

    runner = EpochRunner(
        plan=plan,
        loss_fn=loss_fn,
        parameters=list(transformer.parameters()) + list(torch_heads.parameters()),
        optimizer=optimizer,
        scheduler=scheduler,
        modules=[transformer, torch_heads],
        max_grad_norm=config.max_grad_norm,
    )
    history = run_epochs(
        runner,
        epochs=epochs,
        description="fine-tune",
        show_progress=config.show_progress,
        on_epoch_end=end_of_epoch,
        deadline=deadline,
    )
    if best:
        transformer.load_state_dict(best["state"])
        return best["heads"], history
    return _heads_to_numpy(torch_heads, heads), history


def cross_head_targets(
    encoder: SentenceTransformer,
    heads: dict[str, LinearHead],
    train: dict[str, TaskData],
    *,
    batch_size: int,
    device: str,
    normalize: bool,
) -> dict[str, dict[str, torch.Tensor]]:
    """``{task: {other head: its probabilities [rows, labels] of the task's rows}}`` from
    the model as it is now, for ``ClassifierConfig.cross_head_weight``.

    Only single-label heads take part, and a task whose texts are another head's own
    (both heads labelled on the same rows) gets no soft labels from that head: its gold
    labels are there already.
    """
    import torch

    single = [name for name in train if not heads[name].multi_label]
    out: dict[str, dict[str, torch.Tensor]] = {}
    for name in single:
        others = [h for h in single if h != name and train[h].token_ids != train[name].token_ids]
        if not others:
            continue
        emb = embed_token_ids(
            encoder,
            train[name].token_ids,
            batch_size=batch_size,
            device=device,
            normalize=normalize,
        )
        out[name] = {
            h: torch.as_tensor(heads[h].probabilities(emb), dtype=torch.float32) for h in others
        }
    return out


def _heads_to_numpy(
    torch_heads: torch.nn.ModuleDict, template: dict[str, LinearHead]
) -> dict[str, LinearHead]:
    out = {}
    for name, module in torch_heads.items():
        layer: torch.nn.Linear = module  # type: ignore[assignment]
        out[name] = LinearHead(
            name=name,
            labels=template[name].labels,
            multi_label=template[name].multi_label,
            weight=layer.weight.detach().float().cpu().numpy().copy(),
            bias=layer.bias.detach().float().cpu().numpy().copy(),
        )
    return out
