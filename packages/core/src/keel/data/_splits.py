"""Stratified splits, k-shot sampling and data fingerprints."""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict

from keel.data._texts import LabelledTexts
from keel.errors import ConfigError


def _rows_by_label(data: LabelledTexts) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, labels in enumerate(data.label_lists()):
        groups[labels[0] if labels else ""].append(i)
    return dict(sorted(groups.items()))


def stratified_split(
    data: LabelledTexts, test_size: float = 0.1, seed: int = 13
) -> tuple[LabelledTexts, LabelledTexts]:
    """Split into (train, val) keeping each label's share (first label for multi-label rows).

    Each label with at least two rows gives ``round(n * test_size)`` rows (at least one)
    to the validation part; original order is kept inside each part.

    Raises:
        ConfigError: ``test_size`` is not in (0, 1).
    """
    if not 0.0 < test_size < 1.0:
        raise ConfigError("test_size", test_size, "must be between 0 and 1 (exclusive)")
    rng = random.Random(seed)
    val_rows: set[int] = set()
    for rows in _rows_by_label(data).values():
        if len(rows) < 2:
            continue
        shuffled = rows[:]
        rng.shuffle(shuffled)
        n_val = min(len(rows) - 1, max(1, round(len(rows) * test_size)))
        val_rows.update(shuffled[:n_val])
    train_idx = [i for i in range(len(data)) if i not in val_rows]
    val_idx = [i for i in range(len(data)) if i in val_rows]
    return data.subset(train_idx), data.subset(val_idx)


def sample_k_shot(data: LabelledTexts, k: int, seed: int = 13) -> LabelledTexts:
    """Take ``k`` examples per label (all of them where a label has fewer).

    For multi-label data a row counts for every label it carries; rows are picked
    until each label has ``k`` (a row is never picked twice).

    Raises:
        ConfigError: ``k`` is not positive.
    """
    if k <= 0:
        raise ConfigError("k", k, "must be a positive number of examples per label")
    rng = random.Random(seed)
    if not data.multi_label:
        picked: list[int] = []
        for rows in _rows_by_label(data).values():
            shuffled = rows[:]
            rng.shuffle(shuffled)
            picked.extend(shuffled[:k])
        return data.subset(sorted(picked))
    order = list(range(len(data)))
    rng.shuffle(order)
    counts: dict[str, int] = defaultdict(int)
    chosen: list[int] = []
    label_lists = data.label_lists()
    for i in order:
        if any(counts[lab] < k for lab in label_lists[i]):
            chosen.append(i)
            for lab in label_lists[i]:
                counts[lab] += 1
    return data.subset(sorted(chosen))


def fingerprint(data: LabelledTexts) -> str:
    """A ``sha256:`` hash of the texts and labels (order-sensitive), stored in artifacts."""
    digest = hashlib.sha256()
    for text, label in zip(data.texts, data.labels, strict=True):
        digest.update(json.dumps([text, label], ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return "sha256:" + digest.hexdigest()
