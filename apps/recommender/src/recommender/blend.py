"""The learned blend: a generalised additive logistic model over the ranking features.

Each feature (and a few pairwise products) goes through a cubic B-spline basis and a
logistic regression is fitted on interaction logs. The fitted curve of every feature is
then tabulated on a grid, so serving is one ``np.interp`` per feature and the model is a
small JSON document whose "weights" are human-readable shape functions. Scores are sums
of per-feature contributions, which is what the explanations report.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recommender.errors import ArtifactMismatchError

#: Pairwise products the blend may use as extra inputs (named "a*b").
DEFAULT_INTERACTIONS: tuple[tuple[str, str], ...] = (
    ("cooccurrence", "popularity"),
    ("semantic", "popularity"),
    ("cooccurrence", "semantic"),
    ("trending", "cooccurrence"),
)
GRID_POINTS = 48


@dataclass
class BlendModel:
    """``score = bias + Σ_f shape_f(x_f)``, each ``shape_f`` piecewise linear on a grid.

    Attributes:
        feature_names: base features the model reads, in order.
        interactions: products of two base features it also uses.
        grids: per input (features then products), sorted x positions.
        values: per input, the contribution at each grid position (centred so the
            average training candidate contributes 0).
        bias: intercept (the score of an average candidate).
        importance: per input, standard deviation of its contribution on training rows.
        metrics: fit statistics.
    """

    feature_names: list[str]
    interactions: list[tuple[str, str]]
    grids: list[list[float]]
    values: list[list[float]]
    bias: float
    importance: list[float]
    metrics: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.interactions = [(str(a), str(b)) for a, b in self.interactions]
        n = len(self.input_names)
        for name in ("grids", "values", "importance"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name}: expected {n} entries, got {len(getattr(self, name))}")
        for g, v in zip(self.grids, self.values, strict=True):
            if len(g) != len(v) or len(g) < 2:
                raise ValueError("grids/values: each shape needs >= 2 matching points")
        self._grid_arrays = [np.asarray(g, dtype=np.float64) for g in self.grids]
        self._value_arrays = [np.asarray(v, dtype=np.float64) for v in self.values]

    @property
    def input_names(self) -> list[str]:
        """Base feature names followed by ``"a*b"`` product names."""
        return [*self.feature_names, *(f"{a}*{b}" for a, b in self.interactions)]

    def expand(self, features: np.ndarray, names: list[str]) -> np.ndarray:
        """``[n, len(input_names)]``: the model's base columns and the products."""
        try:
            cols = [names.index(f) for f in self.feature_names]
        except ValueError:
            missing = [f for f in self.feature_names if f not in names]
            raise ArtifactMismatchError(f"blend needs features {missing}") from None
        x = features[:, cols]
        if not self.interactions:
            return x
        pos = {f: i for i, f in enumerate(self.feature_names)}
        prods = [x[:, pos[a]] * x[:, pos[b]] for a, b in self.interactions]
        return np.column_stack([x, *prods])

    def contributions(self, features: np.ndarray, names: list[str]) -> np.ndarray:
        """``[n, len(input_names)]`` contribution of each input to each candidate's score."""
        x = self.expand(features, names)
        out = np.empty_like(x)
        for j in range(x.shape[1]):
            out[:, j] = np.interp(x[:, j], self._grid_arrays[j], self._value_arrays[j])
        return out

    def score(self, features: np.ndarray, names: list[str]) -> np.ndarray:
        """``[n]`` blend scores (log-odds)."""
        return self.contributions(features, names).sum(axis=1) + self.bias

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        labels: np.ndarray,
        feature_names: list[str],
        interactions: tuple[tuple[str, str], ...] = DEFAULT_INTERACTIONS,
        n_knots: int = 6,
        regularisation: float = 1.0,
        seed: int = 13,
    ) -> BlendModel:
        """Fit on ``[n, f]`` features and 0/1 labels (balanced class weights).

        Raises:
            ValueError: fewer than two classes in ``labels``.
        """
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import SplineTransformer

        y = np.asarray(labels).astype(int)
        if len(np.unique(y)) < 2:
            raise ValueError("labels: need both positives and negatives to fit the blend")
        usable = [(a, b) for a, b in interactions if a in feature_names and b in feature_names]
        shell = cls.linear(list(feature_names), [0.0] * len(feature_names), usable)
        x = shell.expand(features, list(feature_names))
        spline = SplineTransformer(n_knots=n_knots, degree=3, knots="quantile")
        basis = spline.fit_transform(x)
        model = LogisticRegression(
            C=regularisation, class_weight="balanced", max_iter=5000, random_state=seed
        )
        model.fit(basis, y)
        per_input = basis.shape[1] // x.shape[1]
        coef = model.coef_[0].reshape(x.shape[1], per_input)
        grids, values, importance = [], [], []
        for j in range(x.shape[1]):
            lo, hi = float(x[:, j].min()), float(x[:, j].max())
            qs = np.quantile(x[:, j], np.linspace(0, 1, GRID_POINTS // 2))
            grid = np.unique(np.concatenate([np.linspace(lo, hi, GRID_POINTS // 2), qs]))
            if len(grid) < 2:
                grid = np.array([lo, lo + 1.0])
            probe = np.tile(np.median(x, axis=0), (len(grid), 1))
            probe[:, j] = grid
            curve = spline.transform(probe)[:, j * per_input : (j + 1) * per_input] @ coef[j]
            train_curve = basis[:, j * per_input : (j + 1) * per_input] @ coef[j]
            centre = float(train_curve.mean())
            grids.append([float(v) for v in grid])
            values.append([float(v - centre) for v in curve])
            importance.append(float(train_curve.std()))
        bias = float(
            model.intercept_[0]
            + sum(
                float((basis[:, j * per_input : (j + 1) * per_input] @ coef[j]).mean())
                for j in range(x.shape[1])
            )
        )
        return cls(list(feature_names), usable, grids, values, bias, importance)

    @classmethod
    def linear(
        cls,
        feature_names: list[str],
        weights: list[float],
        interactions: list[tuple[str, str]] | None = None,
    ) -> BlendModel:
        """A linear blend ``Σ w_f x_f`` on [0, 1] inputs (products get weight 0)."""
        inter = list(interactions or [])
        ws = [*weights, *([0.0] * len(inter))]
        return cls(
            list(feature_names),
            inter,
            [[0.0, 1.0] for _ in ws],
            [[0.0, w] for w in ws],
            0.0,
            [abs(w) for w in ws],
            {"prior": 1.0},
        )

    @classmethod
    def prior(cls, feature_names: list[str]) -> BlendModel:
        """Hand-set weights used before any interactions exist (semantic dominates)."""
        defaults = {"semantic": 4.0, "semantic_max": 2.0, "cooccurrence": 2.0}
        return cls.linear(list(feature_names), [defaults.get(f, 0.2) for f in feature_names])

    def describe(self) -> dict[str, Any]:
        """Inspectable summary: per input its importance and its shape (x -> contribution)."""
        return {
            "kind": "additive-logistic (cubic B-spline per feature, tabulated)",
            "bias": self.bias,
            "inputs": [
                {
                    "name": name,
                    "importance": imp,
                    "min_contribution": float(min(v)),
                    "max_contribution": float(max(v)),
                    "shape": {"x": g, "contribution": v},
                }
                for name, imp, g, v in zip(
                    self.input_names, self.importance, self.grids, self.values, strict=True
                )
            ],
            "metrics": self.metrics,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data.pop("_grid_arrays", None)
        data.pop("_value_arrays", None)
        return data

    def save(self, path: Path) -> None:
        """Write the model as JSON."""
        path.write_text(json.dumps(self.to_dict()) + "\n")

    @classmethod
    def load(cls, path: Path) -> BlendModel:
        """Read a model written by :meth:`save`."""
        return cls(**json.loads(path.read_text()))
