"""Entry points that turn labelled texts into a ``TextClassifier``.

``train_classifier`` trains one head; ``train_multi_head`` trains several heads over one
shared encoder (frozen for ``head``, fine-tuned on all tasks at once for ``full``).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from keel.data import LabelledTexts, LabelMap, fingerprint
from keel.errors import ConfigError, DataError
from keel.evaluation import classification_metrics, multilabel_metrics
from keel.models._heads import LinearHead
from keel.models.artifact import DEFAULT_HEAD
from keel.training._encoder import embed_token_ids, load_encoder, tokenize
from keel.training._fewshot import contrastive_fine_tune
from keel.training._full import EpochCallback, TaskData, fine_tune
from keel.training._heads import encode_targets, fit_linear_head
from keel.training._runtime import log_epoch, pick_device, seed_everything, set_threads
from keel.training.classifier import TextClassifier
from keel.training.config import ClassifierConfig, Strategy


def train_classifier(
    train: LabelledTexts,
    config: ClassifierConfig | None = None,
    val: LabelledTexts | None = None,
    *,
    on_epoch_end: EpochCallback | None = None,
) -> TextClassifier:
    """Train a text classifier with the configured strategy.

    Args:
        train: training texts and labels (one label per row, or lists for multi-label).
        config: options; default ``ClassifierConfig()`` (the fast ``head`` strategy).
        val: validation data: early stopping and best-epoch selection for ``full``, and
            the metrics stored in the model.
        on_epoch_end: called after each ``full`` epoch with ``(epoch, history_row)``.

    Returns:
        The trained classifier (``.history`` holds per-epoch metrics).

    Raises:
        DataError: empty data, a single label, or validation labels unseen in training.
    """
    return train_multi_head(
        {DEFAULT_HEAD: train},
        config,
        val={DEFAULT_HEAD: val} if val is not None else None,
        on_epoch_end=on_epoch_end,
    )


def train_multi_head(
    heads: dict[str, LabelledTexts],
    config: ClassifierConfig | None = None,
    val: dict[str, LabelledTexts] | None = None,
    *,
    on_epoch_end: EpochCallback | None = None,
) -> TextClassifier:
    """Train several heads (e.g. ``topic`` and ``sentiment``) over one shared encoder.

    ``head``: the frozen encoder embeds every task's texts once and each head is fitted
    on them. ``full``: LP-FT — heads are first fitted on frozen embeddings, then the
    encoder and all heads are fine-tuned together on batches of every task, shuffled
    together. ``fewshot`` is for one task only.

    Args:
        heads: training data per head name (the first is the default head).
        config: options shared by all heads.
        val: validation data per head name (optional, for any subset of heads).
        on_epoch_end: called after each ``full`` epoch with ``(epoch, history_row)``.

    Returns:
        A ``TextClassifier`` with one head per entry of ``heads``.

    Raises:
        DataError: a task has no rows or a single label, or validation labels unseen in
            training.
        ConfigError: ``fewshot`` with several heads, or unknown validation head names.
    """
    cfg = config or ClassifierConfig()
    strategy = Strategy(cfg.strategy)
    if not heads:
        raise ConfigError("heads", heads, "give at least one head's training data")
    if strategy is Strategy.FEWSHOT and len(heads) > 1:
        raise ConfigError("strategy", strategy.value, "fewshot trains one head at a time")
    unknown = set(val or {}) - set(heads)
    if unknown:
        raise ConfigError("val", sorted(unknown), "validation heads must also be training heads")
    for name, data in heads.items():
        if len(data) == 0:
            raise DataError(f"head {name!r}: no training rows", data.source)
        if len(data.label_set()) < 2:
            raise DataError(f"head {name!r}: needs at least two labels", data.source)

    started = time.perf_counter()
    seed_everything(cfg.seed)
    set_threads(cfg.num_threads)
    device = pick_device(cfg.device)
    encoder = load_encoder(cfg.base_model, device)
    normalize = True
    targets = {name: encode_targets(data, cfg.class_weights) for name, data in heads.items()}
    token_ids = {
        name: tokenize(encoder, data.texts, cfg.max_length) for name, data in heads.items()
    }
    val_tasks = _val_tasks(encoder, val, targets, cfg) if val else None
    history: list[dict[str, Any]] = []

    if strategy is Strategy.FEWSHOT:
        ((name, data),) = heads.items()
        history += contrastive_fine_tune(encoder, data, token_ids[name], cfg, device, normalize)

    fitted: dict[str, LinearHead] = {}
    # Heads trained on the same texts (topic + sentiment of one headline set) share one
    # frozen-encoder pass: the embeddings of identical token ids are identical.
    embedded: dict[tuple[str, ...], Any] = {}
    for name in heads:
        same_texts = tuple(heads[name].texts)
        emb = embedded.get(same_texts)
        if emb is None:
            emb = embed_token_ids(
                encoder,
                token_ids[name],
                batch_size=max(64, cfg.batch_size),
                device=device,
                normalize=normalize,
                show_progress=cfg.show_progress,
            )
            embedded[same_texts] = emb
        l2 = cfg.head_l2
        if strategy is Strategy.FULL and cfg.init_head_l2 is not None:
            l2 = cfg.init_head_l2
        fitted[name], losses = fit_linear_head(emb, targets[name], name=name, l2=l2, seed=cfg.seed)
        row = {"epoch": 0 if strategy is Strategy.FULL else len(history) + 1, "head": name}
        row.update({"head_loss_start": losses[0], "train_loss": losses[1]})
        history.append(row)
        log_epoch(
            cfg.show_progress,
            f"head {name!r} fitted on frozen embeddings: loss {losses[0]:.4f} -> {losses[1]:.4f}",
        )

    if strategy is Strategy.FULL:
        train_tasks = {n: TaskData(token_ids[n], targets[n]) for n in heads}
        deadline = None
        if cfg.max_train_minutes is not None:
            deadline = started + 60.0 * cfg.max_train_minutes
        fitted, full_history = fine_tune(
            encoder,
            fitted,
            train_tasks,
            val_tasks,
            cfg,
            device,
            on_epoch_end,
            normalize,
            deadline=deadline,
        )
        history += full_history

    classifier = TextClassifier(
        encoder,
        fitted,
        max_length=cfg.max_length,
        normalize=normalize,
        base_model=cfg.base_model,
        config=cfg.to_dict(),
        history=history,
        data_fingerprint=_fingerprint_all(heads),
        device=device,
    )
    classifier.metrics["train_seconds"] = round(time.perf_counter() - started, 2)
    classifier.metrics["train_rows"] = sum(len(d) for d in heads.values())
    if val:
        classifier.metrics.update(evaluate_heads(classifier, val))
    return classifier


def evaluate_heads(classifier: TextClassifier, val: dict[str, LabelledTexts]) -> dict[str, float]:
    """Validation accuracy / macro-F1 (or micro-F1 for multi-label) of each head.

    Keys are ``val_accuracy`` for the single default head, ``<head>.val_accuracy`` for
    named heads.
    """
    out: dict[str, float] = {}
    single = classifier.head_names == [DEFAULT_HEAD]
    for name, data in val.items():
        prefix = "" if single else f"{name}."
        predicted = classifier.predict(data.texts, head=name)
        head = classifier.linear_heads[name]
        if head.multi_label:
            m = multilabel_metrics(data.label_lists(), predicted, head.labels)
            out[f"{prefix}val_micro_f1"] = m["micro_f1"]
            out[f"{prefix}val_macro_f1"] = m["macro_f1"]
        else:
            m = classification_metrics(data.labels, predicted, head.labels)  # type: ignore[arg-type]
            out[f"{prefix}val_accuracy"] = m["accuracy"]
            out[f"{prefix}val_macro_f1"] = m["macro_f1"]
    return out


def _val_tasks(
    encoder: Any,
    val: dict[str, LabelledTexts],
    targets: dict[str, Any],
    cfg: ClassifierConfig,
) -> dict[str, TaskData]:
    tasks = {}
    for name, data in val.items():
        label_map: LabelMap = targets[name].label_map
        unseen = sorted(set(data.label_set()) - set(label_map.labels))
        if unseen:
            raise DataError(
                f"head {name!r}: validation labels not in training data: {unseen[:5]}",
                data.source,
            )
        tasks[name] = TaskData(
            tokenize(encoder, data.texts, cfg.max_length),
            encode_targets(data, False, label_map),
        )
    return tasks


def _fingerprint_all(heads: dict[str, LabelledTexts]) -> str:
    """The data fingerprint of one head, or a hash over every head's fingerprint."""
    if len(heads) == 1:
        return fingerprint(next(iter(heads.values())))
    joined = "\n".join(f"{name}={fingerprint(data)}" for name, data in heads.items())
    return "sha256:" + hashlib.sha256(joined.encode("utf-8")).hexdigest()
