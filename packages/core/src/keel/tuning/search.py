"""Hyperparameter search for classifiers with Optuna: search space, pruning, results table.

Each trial trains with ``train_classifier`` and reports the validation score after every
epoch, so the median pruner stops hopeless ``full`` trials early. The best trial's model
is saved with ``best_config.json`` and the trials table (``tuning.json``, ``tuning.md``)
next to it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keel.data import LabelledTexts
from keel.errors import ConfigError, KeelError
from keel.training import ClassifierConfig, Strategy, TextClassifier, train_classifier

BEST_CONFIG_FILE = "best_config.json"
TRIALS_JSON = "tuning.json"
TRIALS_MARKDOWN = "tuning.md"


def _check_range(name: str, low: float, high: float, *, positive: bool = False) -> None:
    if not low <= high or (positive and low <= 0) or low < 0:
        raise ConfigError(name, (low, high), "must be a (low, high) range with 0 <= low <= high")


@dataclass
class SearchSpace:
    """Ranges searched (learning rates and L2 on a log scale).

    ``full`` searches learning_rate, epochs, batch_size, weight_decay, warmup_ratio;
    ``fewshot`` learning_rate, epochs, batch_size, head_l2; ``head`` head_l2.
    """

    learning_rate: tuple[float, float] = (1e-5, 2e-4)
    epochs: tuple[int, int] = (2, 6)
    batch_sizes: tuple[int, ...] = (16, 32, 64)
    weight_decay: tuple[float, float] = (0.0, 0.1)
    warmup_ratio: tuple[float, float] = (0.0, 0.2)
    head_l2: tuple[float, float] = (1e-6, 1e-3)

    def __post_init__(self) -> None:
        _check_range("learning_rate", *self.learning_rate, positive=True)
        _check_range("epochs", *self.epochs, positive=True)
        _check_range("weight_decay", *self.weight_decay)
        _check_range("warmup_ratio", *self.warmup_ratio)
        if self.warmup_ratio[1] >= 1:
            raise ConfigError("warmup_ratio", self.warmup_ratio, "must stay below 1")
        _check_range("head_l2", *self.head_l2, positive=True)
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise ConfigError("batch_sizes", self.batch_sizes, "must be positive integers")

    def suggest(self, trial: Any, strategy: Strategy) -> dict[str, Any]:
        """Draw one trial's parameters for ``strategy``."""
        params: dict[str, Any] = {}
        if strategy in (Strategy.FULL, Strategy.FEWSHOT):
            params["learning_rate"] = trial.suggest_float(
                "learning_rate", *self.learning_rate, log=True
            )
            params["epochs"] = trial.suggest_int("epochs", *self.epochs)
            params["batch_size"] = trial.suggest_categorical("batch_size", list(self.batch_sizes))
        if strategy is Strategy.FULL:
            params["weight_decay"] = trial.suggest_float("weight_decay", *self.weight_decay)
            params["warmup_ratio"] = trial.suggest_float("warmup_ratio", *self.warmup_ratio)
        if strategy in (Strategy.HEAD, Strategy.FEWSHOT):
            params["head_l2"] = trial.suggest_float("head_l2", *self.head_l2, log=True)
        return params


@dataclass
class TuneConfig:
    """Options of ``tune_classifier``.

    Attributes:
        n_trials: trials to run.
        timeout_s: stop starting trials after this many seconds (``None``: no limit).
        metric: the ``TextClassifier.metrics`` key maximised (a validation metric).
        pruning: stop ``full`` trials whose epoch scores fall below the running median.
        seed: sampler seed.
        space: the search space.
    """

    n_trials: int = 10
    timeout_s: float | None = None
    metric: str = "val_accuracy"
    pruning: bool = True
    seed: int = 13
    space: SearchSpace = field(default_factory=SearchSpace)

    def __post_init__(self) -> None:
        if not isinstance(self.n_trials, int) or self.n_trials < 1:
            raise ConfigError("n_trials", self.n_trials, "must be an integer >= 1")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ConfigError("timeout_s", self.timeout_s, "must be positive or None")


@dataclass
class TuneResult:
    """Outcome of a search: the best config and score, every trial, the best model."""

    best_config: ClassifierConfig
    best_score: float
    metric: str
    trials: list[dict[str, Any]]
    best_model: TextClassifier | None = None

    def table_markdown(self) -> str:
        """The trials as a markdown table (best first among completed ones)."""
        keys = sorted({k for t in self.trials for k in t["params"]})
        lines = [
            f"| trial | state | {self.metric} | seconds | " + " | ".join(keys) + " |",
            "| " + " | ".join(["---"] * (4 + len(keys))) + " |",
        ]
        ordered = sorted(self.trials, key=lambda t: (t["score"] is None, -(t["score"] or 0.0)))
        for t in ordered:
            score = "" if t["score"] is None else f"{t['score']:.4f}"
            values = [_fmt(t["params"].get(k)) for k in keys]
            lines.append(
                f"| {t['number']} | {t['state']} | {score} | {t['seconds']:.1f} | "
                + " | ".join(values)
                + " |"
            )
        return "\n".join(lines) + "\n"

    def save(self, directory: str | Path) -> Path:
        """Write the best model (if kept), ``best_config.json``, ``tuning.json`` and ``tuning.md``."""
        folder = Path(directory)
        if self.best_model is not None:
            self.best_model.save(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / BEST_CONFIG_FILE).write_text(
            json.dumps(self.best_config.to_dict(), indent=2) + "\n"
        )
        record = {"metric": self.metric, "best_score": self.best_score, "trials": self.trials}
        (folder / TRIALS_JSON).write_text(json.dumps(record, indent=2, default=str) + "\n")
        (folder / TRIALS_MARKDOWN).write_text(self.table_markdown())
        return folder


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "" if value is None else str(value)


def tune_classifier(
    train: LabelledTexts,
    val: LabelledTexts,
    base_config: ClassifierConfig | None = None,
    tune_config: TuneConfig | None = None,
    out_dir: str | Path | None = None,
) -> TuneResult:
    """Search hyperparameters of ``train_classifier`` on a validation split.

    Args:
        train: training data.
        val: validation data (the score each trial is judged by).
        base_config: the fixed options (strategy, base model, ...); searched fields
            are overridden per trial.
        tune_config: trials, time limit, metric, pruning, search space.
        out_dir: if given, the best model, ``best_config.json`` and the trials table are
            saved there.

    Returns:
        The search result.

    Raises:
        ImportError: Optuna is not installed (the message gives the pip command).
        KeelError: every trial failed or was pruned.
    """
    try:
        import optuna
    except ImportError as exc:  # pragma: no cover - optuna is a core dependency
        raise ImportError("hyperparameter search needs Optuna: pip install 'optuna>=3.6'") from exc

    base = base_config or ClassifierConfig(strategy=Strategy.FULL)
    settings = tune_config or TuneConfig()
    strategy = Strategy(base.strategy)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
        if settings.pruning
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=settings.seed), pruner=pruner
    )
    trials: list[dict[str, Any]] = []
    best: dict[str, Any] = {"score": None, "model": None, "config": None}

    def objective(trial: optuna.Trial) -> float:
        params = settings.space.suggest(trial, strategy)
        config = dataclasses.replace(base, **params)
        started = time.perf_counter()
        row: dict[str, Any] = {
            "number": trial.number,
            "params": params,
            "score": None,
            "state": "running",
        }
        trials.append(row)

        def report(epoch: int, history_row: dict[str, Any]) -> None:
            if "val_score" in history_row:
                trial.report(history_row["val_score"], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"epoch {epoch}: val {history_row['val_score']:.4f}")

        try:
            model = train_classifier(train, config, val, on_epoch_end=report)
        except optuna.TrialPruned:
            row.update(state="pruned", seconds=time.perf_counter() - started)
            raise
        if settings.metric not in model.metrics:
            raise KeelError(
                f"metric {settings.metric!r} not produced; have {sorted(model.metrics)}"
            )
        score = float(model.metrics[settings.metric])
        row.update(state="complete", score=score, seconds=time.perf_counter() - started)
        if best["score"] is None or score > best["score"]:
            best.update(score=score, model=model, config=config)
        return score

    study.optimize(
        objective,
        n_trials=settings.n_trials,
        timeout=settings.timeout_s,
        show_progress_bar=base.show_progress,
        catch=(),
    )
    if best["config"] is None:
        raise KeelError("no trial completed: every trial was pruned or failed")
    model: TextClassifier = best["model"]
    model.metrics["tuning_trials"] = len(trials)
    result = TuneResult(best["config"], float(best["score"]), settings.metric, trials, model)
    if out_dir is not None:
        result.save(out_dir)
    return result
