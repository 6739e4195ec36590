"""``keel train | eval | tune``: train, score and tune classifiers from the command line.

Bad input (a malformed file, an unknown label, a bad option value) prints one clear
line naming the file and line or the option, and exits with code 2; no traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from keel._cli_common import clear_errors, print_json
from keel.errors import KeelError
from keel.training.config import PRODUCTION_TRAIN_MINUTES

DataOpt = Annotated[Path, typer.Option("--data", help="Labelled CSV / TSV / JSONL file.")]
TextColOpt = Annotated[str, typer.Option("--text-col", help="Column (or JSON key) with the text.")]
LabelColOpt = Annotated[
    str, typer.Option("--label-col", help="Column (or JSON key) with the label.")
]
MultiLabelOpt = Annotated[
    bool, typer.Option("--multi-label", help="Several labels per row (JSON list or --label-sep).")
]
LabelSepOpt = Annotated[
    str, typer.Option("--label-sep", help="Separator of labels in one CSV cell.")
]


def _print(data: Any) -> None:
    print_json(data, default=_json_default)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


@clear_errors
def train_command(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder to save the model artifact to.")],
    text_col: TextColOpt = "text",
    label_col: LabelColOpt = "label",
    val: Annotated[
        Path | None, typer.Option("--val", help="Validation file (early stopping, metrics).")
    ] = None,
    val_split: Annotated[
        float,
        typer.Option("--val-split", help="Without --val: share of --data held out (0 = none)."),
    ] = 0.0,
    strategy: Annotated[str, typer.Option("--strategy", help="head | full | fewshot.")] = "head",
    epochs: Annotated[
        int | None, typer.Option("--epochs", help="Epochs (strategy default if unset).")
    ] = None,
    learning_rate: Annotated[
        float | None, typer.Option("--lr", help="Encoder learning rate.")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 32,
    max_length: Annotated[int, typer.Option("--max-length", help="Tokens per text.")] = 64,
    base_model: Annotated[
        str, typer.Option("--base-model", help="Packaged name or folder.")
    ] = "minilm",
    seed: Annotated[int, typer.Option("--seed")] = 13,
    class_weights: Annotated[
        bool, typer.Option("--class-weights", help="Weight rare labels up.")
    ] = False,
    k_shot: Annotated[
        int | None, typer.Option("--k-shot", help="Train on k examples per label.")
    ] = None,
    calibrate: Annotated[
        bool, typer.Option("--calibrate", help="Fit a softmax temperature on the validation data.")
    ] = False,
    device: Annotated[
        str | None, typer.Option("--device", help="cpu | cuda (default: auto).")
    ] = None,
    max_train_minutes: Annotated[
        float,
        typer.Option(
            "--max-train-minutes",
            help="full: start no epoch that would end past this many minutes (0 = no limit).",
        ),
    ] = PRODUCTION_TRAIN_MINUTES,
    multi_label: MultiLabelOpt = False,
    label_sep: LabelSepOpt = "|",
) -> None:
    """Train a classifier and save it as a Keel artifact folder; print its metrics as JSON."""
    from keel.data import load_labelled, sample_k_shot, stratified_split
    from keel.training import ClassifierConfig, train_classifier

    config = ClassifierConfig(
        strategy=strategy,
        epochs=epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        max_length=max_length,
        base_model=base_model,
        seed=seed,
        class_weights=class_weights,
        device=device,
        max_train_minutes=max_train_minutes or None,
    )
    train_data = load_labelled(
        data, text_col, label_col, multi_label=multi_label, label_sep=label_sep
    )
    val_data = None
    if val is not None:
        val_data = load_labelled(
            val, text_col, label_col, multi_label=multi_label, label_sep=label_sep
        )
    elif val_split > 0:
        train_data, val_data = stratified_split(train_data, test_size=val_split, seed=seed)
    if k_shot is not None:
        train_data = sample_k_shot(train_data, k_shot, seed=seed)
    model = train_classifier(train_data, config, val_data)
    if calibrate:
        if val_data is None or model.multi_label:
            raise KeelError("--calibrate needs single-label validation data (--val or --val-split)")
        from keel.evaluation import expected_calibration_error, fit_temperature

        logits = model.predict_logits(val_data.texts)
        gold = [model.labels.index(label) for label in val_data.labels]  # type: ignore[arg-type]
        model.temperature = fit_temperature(logits, gold)
        model.metrics["val_ece"] = expected_calibration_error(
            model.predict_proba(val_data.texts), gold
        )
    folder = model.save(out)
    _print({"model": str(folder), "metrics": model.metrics})


@clear_errors
def eval_command(
    model: Annotated[Path, typer.Option("--model", help="Keel model folder.")],
    data: DataOpt,
    text_col: TextColOpt = "text",
    label_col: LabelColOpt = "label",
    head: Annotated[
        str | None, typer.Option("--head", help="Head to score (default: first).")
    ] = None,
    confusion: Annotated[
        Path | None, typer.Option("--confusion", help="Write the confusion matrix PNG here.")
    ] = None,
    per_class: Annotated[bool, typer.Option("--per-class/--no-per-class")] = True,
    multi_label: MultiLabelOpt = False,
    label_sep: LabelSepOpt = "|",
) -> None:
    """Score a saved classifier on a labelled file and print the metrics as JSON."""
    from keel.data import load_labelled
    from keel.evaluation import evaluate_classifier
    from keel.training import TextClassifier

    classifier = TextClassifier.load(model)
    gold = load_labelled(data, text_col, label_col, multi_label=multi_label, label_sep=label_sep)
    metrics = evaluate_classifier(
        classifier, gold, head=head, confusion_png=confusion, per_class=per_class
    )
    _print(metrics)


@clear_errors
def tune_command(
    data: DataOpt,
    val: Annotated[Path, typer.Option("--val", help="Validation file the trials are judged on.")],
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the best model and the trials table.")
    ],
    text_col: TextColOpt = "text",
    label_col: LabelColOpt = "label",
    strategy: Annotated[str, typer.Option("--strategy", help="head | full | fewshot.")] = "full",
    trials: Annotated[int, typer.Option("--trials", help="Number of trials.")] = 10,
    timeout_s: Annotated[
        float | None, typer.Option("--timeout", help="Seconds before no new trial starts.")
    ] = None,
    max_length: Annotated[int, typer.Option("--max-length")] = 64,
    base_model: Annotated[str, typer.Option("--base-model")] = "minilm",
    seed: Annotated[int, typer.Option("--seed")] = 13,
    no_pruning: Annotated[
        bool, typer.Option("--no-pruning", help="Run every trial to the end.")
    ] = False,
    multi_label: MultiLabelOpt = False,
    label_sep: LabelSepOpt = "|",
) -> None:
    """Search hyperparameters with Optuna; save the best model, best_config.json and the trials table."""
    from keel.data import load_labelled
    from keel.training import ClassifierConfig
    from keel.tuning import TuneConfig, tune_classifier

    base = ClassifierConfig(
        strategy=strategy, max_length=max_length, base_model=base_model, seed=seed
    )
    settings = TuneConfig(n_trials=trials, timeout_s=timeout_s, pruning=not no_pruning, seed=seed)
    train_data = load_labelled(
        data, text_col, label_col, multi_label=multi_label, label_sep=label_sep
    )
    val_data = load_labelled(val, text_col, label_col, multi_label=multi_label, label_sep=label_sep)
    if multi_label:
        settings.metric = "val_micro_f1"
    result = tune_classifier(train_data, val_data, base, settings, out_dir=out)
    sys.stdout.write(result.table_markdown())
    _print({"model": str(out), "metric": result.metric, "best_score": result.best_score})


def register(app: typer.Typer) -> None:
    """Add the ``train``, ``eval`` and ``tune`` commands to the ``keel`` app."""
    app.command("train")(train_command)
    app.command("eval")(eval_command)
    app.command("tune")(tune_command)
