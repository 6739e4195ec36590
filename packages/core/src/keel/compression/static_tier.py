"""A static-embedding first tier for a multi-head classifier, and its cascade thresholds.

``build_static_tier`` distils the static table (``keel.compression.static``), fits one
logistic-regression head per head of the classifier on the static embeddings, and
chooses the cascade's thresholds on a held-out slice of the training rows that the
static heads never saw:

* on that slice, a row keeps the static verdict when every head's top probability
  reaches its threshold; the other rows take the transformer's verdict;
* the thresholds chosen are the lowest (largest static share) that keep the cascade's
  accuracy on every head within ``max_drop_points`` of the transformer's own accuracy on
  the same rows (``choose_thresholds``; candidates are quantiles of the static
  confidences);
* when only "no static row" keeps the bound, the cascade is off and the reason says so.

The transformer has trained on every row, the slice included, so its slice accuracy is
a training accuracy: the bound is stricter than one measured on unseen rows.
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keel.compression.static import StaticDistillConfig, distill_static
from keel.errors import ConfigError

DEFAULT_MAX_DROP_POINTS = 0.5
#: Quantiles of the static confidences tried as thresholds, per head.
GRID_QUANTILES = np.linspace(0.0, 1.0, 41)
TIER_FORMAT = 1


@dataclass(frozen=True)
class SliceScores:
    """One head's held-out rows as the cascade sees them.

    Attributes:
        static: ``{head: static probabilities [n, n_labels]}`` for every thresholded
            head (routing needs all of them), on this slice's texts.
        transformer: the transformer's predicted label index of this head ``[n]``.
        gold: the gold label index of this head ``[n]``.
    """

    static: Mapping[str, np.ndarray]
    transformer: np.ndarray
    gold: np.ndarray


@dataclass
class CascadeChoice:
    """The thresholds chosen (or why the cascade is off) and what they gave on the slice."""

    enabled: bool
    thresholds: dict[str, float]
    static_share: float
    max_drop_points: float
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "thresholds": self.thresholds,
            "expected_static_share": round(self.static_share, 4),
            "max_drop_points": self.max_drop_points,
            "slice_accuracy": self.accuracy,
            "slice_rows": self.rows,
            "reason": self.reason,
        }


def _candidates(slices: Mapping[str, SliceScores], head: str) -> np.ndarray:
    confidences = np.concatenate(
        [np.asarray(s.static[head]).max(axis=1) for s in slices.values() if len(s.gold)]
    )
    grid: np.ndarray = np.unique(np.quantile(confidences, GRID_QUANTILES))
    # Above every probability: no row of the head is static.
    return np.concatenate([grid, [np.inf]])


def choose_thresholds(
    slices: Mapping[str, SliceScores], max_drop_points: float = DEFAULT_MAX_DROP_POINTS
) -> CascadeChoice:
    """The thresholds giving the largest static share whose cascade accuracy stays within
    ``max_drop_points`` of the transformer's on every head's slice (see the module
    docstring); ties go to the lowest thresholds.

    Raises:
        ConfigError: no slice, an empty slice, or slices that disagree on the heads.
    """
    if not slices:
        raise ConfigError("slices", {}, "give at least one head's held-out rows")
    if max_drop_points < 0:
        raise ConfigError("max_drop_points", max_drop_points, "must be >= 0")
    heads = sorted(next(iter(slices.values())).static)
    for name, scores in slices.items():
        if sorted(scores.static) != heads:
            raise ConfigError(f"slices[{name!r}]", sorted(scores.static), f"needs heads {heads}")
        if not len(scores.gold) or len(scores.transformer) != len(scores.gold):
            raise ConfigError(f"slices[{name!r}]", len(scores.gold), "needs non-empty rows")
    confidences = {
        name: {h: np.asarray(s.static[h]).max(axis=1) for h in heads} for name, s in slices.items()
    }
    static_right = {
        name: np.asarray(s.static[name]).argmax(axis=1) == s.gold
        if name in s.static
        else np.zeros(len(s.gold), dtype=bool)
        for name, s in slices.items()
    }
    transformer_right = {name: s.transformer == s.gold for name, s in slices.items()}
    reference = {name: float(right.mean()) for name, right in transformer_right.items()}
    total = sum(len(s.gold) for s in slices.values())
    allowed = max_drop_points / 100.0 + 1e-9
    best: tuple[float, float, tuple[float, ...], dict[str, float]] | None = None
    grids = [_candidates(slices, h) for h in heads]
    for combo in itertools.product(*grids):
        static_rows = 0
        accuracy: dict[str, float] = {}
        for name in slices:
            mask = np.ones(len(slices[name].gold), dtype=bool)
            for head, threshold in zip(heads, combo, strict=True):
                mask &= confidences[name][head] >= threshold
            static_rows += int(mask.sum())
            right = np.where(mask, static_right[name], transformer_right[name])
            accuracy[name] = float(right.mean())
        if any(accuracy[n] < reference[n] - allowed for n in slices):
            continue
        share = static_rows / total
        key = (share, -float(np.sum(np.minimum(combo, 2.0))))
        if best is None or key > best[:2]:
            best = (key[0], key[1], tuple(float(t) for t in combo), accuracy)
    summary = {
        name: {
            "transformer": round(reference[name], 4),
            "static": round(float(static_right[name].mean()), 4),
        }
        for name in slices
    }
    rows = {name: len(s.gold) for name, s in slices.items()}
    if best is None or best[0] <= 0.0:
        return CascadeChoice(
            enabled=False,
            thresholds={},
            static_share=0.0,
            max_drop_points=max_drop_points,
            accuracy={n: {**v, "cascade": v["transformer"]} for n, v in summary.items()},
            rows=rows,
            reason=(
                f"no threshold keeps every head within {max_drop_points} points of the "
                "transformer on the held-out slice: the transformer answers every row"
            ),
        )
    share, _, combo, accuracy = best
    return CascadeChoice(
        enabled=True,
        thresholds={h: round(t, 6) for h, t in zip(heads, combo, strict=True)},
        static_share=share,
        max_drop_points=max_drop_points,
        accuracy={n: {**v, "cascade": round(accuracy[n], 4)} for n, v in summary.items()},
        rows=rows,
    )


def holdout_split(n: int, share: float, cap: int, seed: int = 13) -> tuple[np.ndarray, np.ndarray]:
    """Seeded ``(fit rows, held-out rows)`` of ``n``: ``share`` of them held out, at most
    ``cap``, at least one (when ``n >= 2``)."""
    if n < 2:
        raise ConfigError("rows", n, "need at least 2 rows to hold some out")
    size = min(cap, max(1, round(n * share)), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[size:]), np.sort(order[:size])


def build_static_tier(
    teacher_dir: str | Path,
    transformer: Any,
    heads: Mapping[str, Any],
    out_dir: str | Path,
    *,
    distill_config: StaticDistillConfig | None = None,
    holdout_share: float = 0.2,
    max_holdout_rows: int = 2000,
    max_drop_points: float = DEFAULT_MAX_DROP_POINTS,
    l2: float = 1e-4,
    cache_dir: str | Path | None = None,
    log: Any = print,
) -> CascadeChoice:
    """Write a static tier for ``transformer``'s heads into ``out_dir`` (see the module
    docstring and ``keel.inference.load_static_predictor``).

    Args:
        teacher_dir: the artifact whose encoder the static table is distilled from.
        transformer: the loaded transformer predictor the cascade falls back to (its
            head label orders are the static heads').
        heads: ``{head: LabelledTexts}`` training rows of each head.
        out_dir: the tier's folder (replaced).
        holdout_share / max_holdout_rows: the held-out slice per head.
        max_drop_points: the cascade's allowed accuracy drop per head, in points.

    Returns:
        The cascade choice (also in ``out_dir/static_tier.json``).
    """
    from keel.data import LabelledTexts, LabelMap
    from keel.inference._static import TIER_FILE, StaticPredictor, static_head_file
    from keel.models._heads import write_head_tensors
    from keel.training._heads import encode_targets, fit_linear_head

    if not heads:
        raise ConfigError("heads", {}, "give at least one head's training rows")
    if not 0 < holdout_share < 1:
        raise ConfigError("holdout_share", holdout_share, "must be in (0, 1)")
    started = time.perf_counter()
    table = distill_static(teacher_dir, distill_config, cache_dir=cache_dir, log=log)
    target = Path(out_dir)
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(table, target)
    from model2vec import StaticModel

    model = StaticModel.from_pretrained(target, force_download=False)
    embedder = StaticPredictor(model, {})
    fitted = {}
    slices_texts: dict[str, tuple[list[str], list[str]]] = {}
    meta_heads: dict[str, Any] = {}
    for name, data in heads.items():
        texts, labels = list(data.texts), [str(label) for label in data.labels]
        fit, held = holdout_split(len(texts), holdout_share, max_holdout_rows)
        label_map = LabelMap(transformer.head_labels(name))
        unknown = sorted(set(labels) - set(label_map.labels))
        if unknown:
            raise ConfigError(f"heads[{name!r}]", unknown[:5], "labels unknown to the transformer")
        fit_data = LabelledTexts([texts[i] for i in fit], [labels[i] for i in fit])
        targets = encode_targets(fit_data, use_class_weights=False, label_map=label_map)
        head, losses = fit_linear_head(embedder.embed(fit_data.texts), targets, name=name, l2=l2)
        write_head_tensors(static_head_file(target, name), head.weight, head.bias)
        fitted[name] = head
        slices_texts[name] = ([texts[i] for i in held], [labels[i] for i in held])
        meta_heads[name] = {
            "labels": list(head.labels),
            "fit_rows": len(fit),
            "slice_rows": len(held),
            "fit_loss": [round(v, 5) for v in losses],
        }
    static = StaticPredictor(model, fitted)
    slices = {}
    for name, (texts, labels) in slices_texts.items():
        index = {label: i for i, label in enumerate(static.head_labels(name))}
        slices[name] = SliceScores(
            static=static.classify_heads(texts),
            transformer=np.asarray(transformer.classify_heads(texts)[name]).argmax(axis=1),
            gold=np.asarray([index[label] for label in labels]),
        )
    choice = choose_thresholds(slices, max_drop_points)
    source = json.loads((table / "keel_static.json").read_text())
    meta = {
        "format": TIER_FORMAT,
        "heads": meta_heads,
        "cascade": choice.as_dict(),
        "table": {
            "fingerprint": source["fingerprint"],
            "teacher": str(teacher_dir),
            "distill_seconds": source["seconds"],
            "config": source["config"],
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    (target / TIER_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    log(
        "static tier: "
        + (
            f"thresholds {choice.thresholds}, expected static share {choice.static_share:.0%}"
            if choice.enabled
            else f"cascade off ({choice.reason})"
        )
    )
    return choice


def static_tier_summary(folder: str | Path) -> dict[str, Any]:
    """The ``cascade`` block of a tier's ``static_tier.json`` (for metadata and health)."""
    from keel.inference._static import read_tier_meta

    return dict(read_tier_meta(folder).get("cascade") or {})
