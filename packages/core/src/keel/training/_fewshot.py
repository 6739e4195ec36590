"""The SetFit recipe's first stage: contrastive sentence-pair fine-tuning of the encoder.

Pairs of training texts are labelled 1 (same label) or 0 (different label); for
multi-label rows the target is the Jaccard overlap of their label sets. The encoder
learns to put the cosine similarity of each pair on its target (CosineSimilarityLoss).
A linear head is then fitted on the tuned embeddings.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from keel.data import LabelledTexts
from keel.training._encoder import bucketed_batches, pad_batch, pooled_embeddings, transformer_of
from keel.training._loop import EpochRunner, run_epochs
from keel.training._runtime import adamw, autocast, linear_warmup_decay
from keel.training.config import ClassifierConfig

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer


def contrastive_pairs(
    data: LabelledTexts, pairs_per_example: int, seed: int
) -> list[tuple[int, int, float]]:
    """Index pairs ``(i, j, target)``: alternately a positive and a negative per example."""
    rng = random.Random(seed)
    label_sets = [frozenset(labels) for labels in data.label_lists()]
    by_label: dict[frozenset[str], list[int]] = defaultdict(list)
    for i, labels in enumerate(label_sets):
        by_label[labels].append(i)
    n = len(data)
    pairs: list[tuple[int, int, float]] = []
    for i in range(n):
        same = [j for j in by_label[label_sets[i]] if j != i]
        for draw in range(pairs_per_example):
            if draw % 2 == 0 and same:
                j = rng.choice(same)
            else:
                j = rng.randrange(n)
                for _ in range(10):  # look for a different label set (few tries on tiny data)
                    if label_sets[j] != label_sets[i]:
                        break
                    j = rng.randrange(n)
            union = label_sets[i] | label_sets[j]
            target = len(label_sets[i] & label_sets[j]) / len(union) if union else 0.0
            pairs.append((i, j, target))
    rng.shuffle(pairs)
    return pairs


def contrastive_fine_tune(
    encoder: SentenceTransformer,
    data: LabelledTexts,
    token_ids: list[list[int]],
    config: ClassifierConfig,
    device: str,
    normalize: bool = True,
) -> list[dict[str, Any]]:
    """Tune ``encoder`` in place so same-label texts embed close and others apart.

    Returns:
        Per-epoch history (mean contrastive loss, seconds, pairs/s).
    """
    import torch

    transformer = transformer_of(encoder).to(device)
    pairs = contrastive_pairs(data, config.fewshot_pairs_per_example, config.seed)
    batch_size = config.batch_size
    epochs = int(config.epochs or 1)
    optimizer = adamw(
        [p for n, p in transformer.named_parameters() if not n.startswith("pooler.")],
        lr=float(config.learning_rate or 2e-5),
        weight_decay=config.weight_decay,
    )
    steps = epochs * ((len(pairs) + batch_size - 1) // batch_size)
    scheduler = linear_warmup_decay(optimizer, steps, config.warmup_ratio)
    pad_id = encoder.tokenizer.pad_token_id or 0
    rng = random.Random(config.seed)
    pair_lengths = [max(len(token_ids[i]), len(token_ids[j])) for i, j, _ in pairs]

    def loss_fn(batch: list[int]) -> tuple[torch.Tensor, int]:
        left = [token_ids[pairs[k][0]] for k in batch]
        right = [token_ids[pairs[k][1]] for k in batch]
        target = torch.tensor([pairs[k][2] for k in batch], device=device)
        # One forward pass over both sides: the batch is padded once.
        ids, mask = pad_batch(left + right, pad_id)
        with autocast(device, config.mixed_precision):
            emb = pooled_embeddings(transformer, ids.to(device), mask.to(device), normalize)
        a, b = emb[: len(batch)], emb[len(batch) :]
        cosine = torch.nn.functional.cosine_similarity(a.float(), b.float())
        return torch.nn.functional.mse_loss(cosine, target), len(batch)

    def end_of_epoch(_epoch: int, row: dict[str, Any]) -> None:
        row["contrastive_loss"] = row["train_loss"]
        row["pairs"] = len(pairs)

    runner: EpochRunner[list[int]] = EpochRunner(
        plan=lambda _epoch: bucketed_batches(pair_lengths, batch_size, rng),
        loss_fn=loss_fn,
        parameters=list(transformer.parameters()),
        optimizer=optimizer,
        scheduler=scheduler,
        modules=[transformer],
        max_grad_norm=config.max_grad_norm,
    )
    return run_epochs(
        runner,
        epochs=epochs,
        description="contrastive",
        show_progress=config.show_progress,
        on_epoch_end=end_of_epoch,
    )
