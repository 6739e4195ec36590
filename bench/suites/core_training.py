"""Benchmarks of Keel's classifier training (issue 3).

Suites: ``banking77``, ``banking77-fewshot``, ``clinc150``, ``phrasebank``,
``twitter-sentiment``, ``twitter-topic`` (accuracy / macro-F1 and training time of each
strategy on the chosen split) and ``trainer-throughput`` (samples/s of Keel's ``full``
loop against a plain ``transformers.Trainer`` on the same model, batch and length).

Models train on the ``train`` file only, with fixed recipes (no early stopping on the
evaluation split), and are scored on ``--split`` (``valid``, or the held-back ``test``).
``--budget quick`` trains on a few examples per label for one epoch: a smoke run, not a
result. Under ``--budget standard`` on a machine without a GPU, the encoder fine-tuning
strategies (``full``, ``fewshot``) are not run (about an hour of CPU per data set): the
suites report the frozen-encoder ``head`` strategy and say so in ``details``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from bench.harness import SuiteContext, SuiteResult, Target, suite

MAX_LENGTH = 64
# The packaged MiniLM by default; a folder path (e.g. a copy of it) where the package is absent.
BASE_MODEL = os.environ.get("KEEL_BENCH_BASE_MODEL", "minilm")
SEEDS_FEWSHOT = (13, 14, 15)
SKIPPED_NOTE = (
    "encoder fine-tuning not run: --budget standard on a machine without a GPU "
    "(run --budget full for it; its results are in bench/results/full)"
)


@dataclass(frozen=True)
class DatasetSpec:
    """Where a data set's files are and which columns hold text and label."""

    folder: str
    train: str
    valid: str
    test: str
    text_col: str
    label_col: str


DATASETS = {
    "banking77": DatasetSpec("banking77", "train.csv", "valid.csv", "test.csv", "text", "category"),
    "clinc150": DatasetSpec("clinc150", "train.jsonl", "val.jsonl", "test.jsonl", "text", "intent"),
    "phrasebank": DatasetSpec(
        "financial_phrasebank", "train.csv", "valid.csv", "test.csv", "text", "label"
    ),
    "twitter-sentiment": DatasetSpec(
        "twitter_fin_sentiment", "train.csv", "valid.csv", "test.csv", "text", "label_name"
    ),
    "twitter-topic": DatasetSpec(
        "twitter_fin_topic", "train.csv", "valid.csv", "test.csv", "text", "label_name"
    ),
}


def _load(ctx: SuiteContext, name: str) -> tuple[Any, Any]:
    """(train, evaluation split) of a data set; ``--quick`` shrinks both."""
    from keel.data import load_labelled, sample_k_shot

    spec = DATASETS[name]
    train = load_labelled(ctx.train_file(spec.folder, spec.train), spec.text_col, spec.label_col)
    evaluation = load_labelled(
        ctx.data_file(spec.folder, valid=spec.valid, test=spec.test), spec.text_col, spec.label_col
    )
    if ctx.quick:
        train = sample_k_shot(train, 8, seed=13)
        keep = list(range(0, len(evaluation), max(1, len(evaluation) // 300)))
        evaluation = evaluation.subset(keep)
    ctx.log(f"{name}: {len(train)} train rows, {len(evaluation)} {ctx.split} rows")
    return train, evaluation


def _recipes(
    ctx: SuiteContext,
    full_epochs: int,
    learning_rate: float = 1e-4,
    init_head_l2: float | None = None,
) -> dict[str, Any]:
    """The strategies every classification suite compares."""
    from keel.training import ClassifierConfig

    head = ClassifierConfig(strategy="head", max_length=MAX_LENGTH, base_model=BASE_MODEL)
    if not ctx.fine_tune:
        return {"head": head}
    full = ClassifierConfig(
        strategy="full",
        base_model=BASE_MODEL,
        max_length=MAX_LENGTH,
        epochs=1 if ctx.quick else full_epochs,
        learning_rate=learning_rate,
        init_head_l2=init_head_l2,
        head_learning_rate=2e-3,
        batch_size=32,
        warmup_ratio=0.1,
        weight_decay=0.01,
        early_stopping_patience=0,
        mixed_precision=True,
    )
    return {"head": head, "full": full}


def _score(model: Any, evaluation: Any) -> dict[str, float]:
    from keel.evaluation import classification_metrics

    predicted = model.predict(evaluation.texts)
    metrics = classification_metrics(evaluation.labels, predicted, model.labels)
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}


def _classification_suite(
    ctx: SuiteContext,
    name: str,
    *,
    full_epochs: int,
    targets: list[Target],
    learning_rate: float = 1e-4,
    init_head_l2: float | None = None,
) -> SuiteResult:
    """Train each strategy on ``name``'s train file, score on the split, pick the best."""
    from keel.training import train_classifier

    train, evaluation = _load(ctx, name)
    metrics: dict[str, float] = {}
    details: dict[str, Any] = {"train_rows": len(train), "eval_rows": len(evaluation)}
    recipes = _recipes(ctx, full_epochs, learning_rate, init_head_l2)
    if "full" not in recipes:
        details["skipped"] = SKIPPED_NOTE
    for strategy, config in recipes.items():
        started = time.perf_counter()
        model = train_classifier(train, config)
        seconds = time.perf_counter() - started
        scores = _score(model, evaluation)
        ctx.log(f"{name} {strategy}: accuracy {scores['accuracy']:.4f} in {seconds:.0f}s")
        metrics[f"{strategy}.accuracy"] = scores["accuracy"]
        metrics[f"{strategy}.macro_f1"] = scores["macro_f1"]
        metrics[f"{strategy}.train_seconds"] = round(seconds, 1)
        details[strategy] = {
            "config": config.to_dict(),
            "device": model.device,
            "history": model.history,
        }
    best = max(recipes, key=lambda s: metrics[f"{s}.accuracy"])
    metrics = {
        "accuracy": metrics[f"{best}.accuracy"],
        "macro_f1": metrics[f"{best}.macro_f1"],
        **metrics,
    }
    details["best_strategy"] = best
    return SuiteResult(metrics=metrics, targets=targets, details=details)


@suite("banking77", area="core-training", description="Banking77 intents: head vs full fine-tuning")
def banking77(ctx: SuiteContext) -> SuiteResult:
    """Banking77 (77 intents)."""
    return _classification_suite(
        ctx,
        "banking77",
        full_epochs=6,
        targets=[
            Target("accuracy", ">=", 0.94, anchor="issue 3 target; fine-tuned BERT-base 93.1%"),
            Target("head.accuracy", ">=", 0.917, anchor="frozen MiniLM + LR floor (valid)"),
        ],
    )


@suite(
    "phrasebank",
    area="core-training",
    description="Financial PhraseBank sentiment (all agreement levels)",
)
def phrasebank(ctx: SuiteContext) -> SuiteResult:
    """Financial PhraseBank, 50%-agreement set (3 labels)."""
    return _classification_suite(
        ctx,
        "phrasebank",
        full_epochs=5,
        targets=[Target("accuracy", ">=", 0.87, anchor="issue 3 target; FinBERT 86%")],
    )


@suite(
    "twitter-sentiment",
    area="core-training",
    description="Twitter financial news sentiment (3 labels)",
)
def twitter_sentiment(ctx: SuiteContext) -> SuiteResult:
    """Twitter Financial News sentiment (bearish / bullish / neutral)."""
    return _classification_suite(ctx, "twitter-sentiment", full_epochs=4, targets=[])


@suite(
    "twitter-topic", area="core-training", description="Twitter financial news topics (20 labels)"
)
def twitter_topic(ctx: SuiteContext) -> SuiteResult:
    """Twitter Financial News topic (20 topics)."""
    return _classification_suite(ctx, "twitter-topic", full_epochs=4, targets=[])


@suite(
    "banking77-fewshot",
    area="core-training",
    description="Banking77 with 10 examples per intent, mean of 3 seeds",
)
def banking77_fewshot(ctx: SuiteContext) -> SuiteResult:
    """SetFit-style few-shot (and frozen head) on 10 examples per label, seeds 13-15."""
    from keel.data import sample_k_shot
    from keel.training import ClassifierConfig, train_classifier

    full_train, evaluation = _load(ctx, "banking77")
    k = 10
    fewshot = ClassifierConfig(
        strategy="fewshot",
        base_model=BASE_MODEL,
        max_length=MAX_LENGTH,
        epochs=1,
        learning_rate=2e-5,
        batch_size=16,
        fewshot_pairs_per_example=4 if ctx.quick else 20,
        mixed_precision=True,
    )
    head = ClassifierConfig(strategy="head", max_length=MAX_LENGTH, base_model=BASE_MODEL)
    full = ClassifierConfig(
        strategy="full",
        base_model=BASE_MODEL,
        max_length=MAX_LENGTH,
        epochs=1 if ctx.quick else 10,
        learning_rate=3e-5,
        batch_size=16,
        init_head_l2=1e-3,
        early_stopping_patience=0,
        mixed_precision=True,
    )
    recipes = {"head": head, "fewshot": fewshot, "full": full}
    seeds = SEEDS_FEWSHOT[:1] if ctx.quick else SEEDS_FEWSHOT
    skipped = ""
    if not ctx.fine_tune:
        # 2 CPU cores: one seed; the 10-epoch ``full`` recipe (the best on the GPU run)
        # fits, the contrastive ``fewshot`` one (20 pairs per example) does not.
        recipes = {"head": head, "full": full}
        seeds = SEEDS_FEWSHOT[:1]
        skipped = "fewshot strategy and seeds 14-15 not run: --budget standard without a GPU"
    runs: dict[str, list[float]] = {name: [] for name in recipes}
    seconds: dict[str, list[float]] = {name: [] for name in recipes}
    for seed in seeds:
        sample = sample_k_shot(full_train, k, seed=seed)
        for strategy, config in recipes.items():
            started = time.perf_counter()
            model = train_classifier(sample, replace(config, seed=seed))
            seconds[strategy].append(time.perf_counter() - started)
            runs[strategy].append(_score(model, evaluation)["accuracy"])
            ctx.log(f"seed {seed} {strategy}: accuracy {runs[strategy][-1]:.4f}")
    best = max(recipes, key=lambda name: float(np.mean(runs[name])))
    metrics = {
        "accuracy": float(np.mean(runs[best])),
        "accuracy_std": float(np.std(runs[best])),
    }
    for name in recipes:
        metrics[f"{name}.accuracy"] = float(np.mean(runs[name]))
        metrics[f"{name}.train_seconds"] = round(float(np.mean(seconds[name])), 1)
    return SuiteResult(
        metrics=metrics,
        targets=[Target("accuracy", ">=", 0.85, anchor="issue 3 target; IntentBERT 83.9%")],
        details={
            "k": k,
            "seeds": list(seeds),
            "skipped": skipped,
            "best_strategy": best,
            "per_seed": runs,
            "configs": {name: config.to_dict() for name, config in recipes.items()},
        },
    )


@suite("clinc150", area="core-training", description="CLINC150 intents with out-of-scope detection")
def clinc150(ctx: SuiteContext) -> SuiteResult:
    """150 intents + ``oos``: in-scope accuracy and OOS AUROC of the max in-scope probability.

    The model is trained with ``oos`` as a 151st class (the 100 out-of-scope training
    rows). In-scope accuracy is the plain argmax over all 151 classes on in-scope rows
    (an in-scope query predicted ``oos`` counts as wrong). The out-of-scope score is the
    highest in-scope probability. ECE is measured before and after a temperature fitted
    on one half of the split and applied to the other half (so no row is both fitted
    and scored).
    """
    from keel.evaluation import (
        apply_temperature,
        expected_calibration_error,
        fit_temperature,
        oos_metrics,
    )
    from keel.training import train_classifier

    train, evaluation = _load(ctx, "clinc150")
    metrics: dict[str, float] = {}
    details: dict[str, Any] = {"train_rows": len(train), "eval_rows": len(evaluation)}
    recipes = _recipes(ctx, full_epochs=5)
    if "full" not in recipes:
        details["skipped"] = SKIPPED_NOTE
    for strategy, config in recipes.items():
        started = time.perf_counter()
        model = train_classifier(train, config)
        seconds = time.perf_counter() - started
        labels = model.labels
        logits = model.predict_logits(evaluation.texts)
        probs = apply_temperature(logits, 1.0)
        is_oos = np.asarray([label == "oos" for label in evaluation.labels])
        predicted = np.asarray([labels[j] for j in probs.argmax(axis=1)])
        gold = np.asarray(evaluation.labels)
        in_scope_columns = [j for j, label in enumerate(labels) if label != "oos"]
        confidence = probs[:, in_scope_columns].max(axis=1)
        oos = oos_metrics(
            confidence[~is_oos],
            confidence[is_oos],
            target_oos_rejection=0.9,
            in_correct=(predicted == gold)[~is_oos],
        )
        gold_ids = np.asarray([labels.index(label) for label in evaluation.labels])
        half = np.arange(len(gold_ids)) % 2 == 0
        temperature = fit_temperature(logits[half], gold_ids[half])
        ece_before = expected_calibration_error(probs[~half], gold_ids[~half])
        ece_after = expected_calibration_error(
            apply_temperature(logits[~half], temperature), gold_ids[~half]
        )
        metrics[f"{strategy}.in_scope_accuracy"] = float(
            np.mean(predicted[~is_oos] == gold[~is_oos])
        )
        metrics[f"{strategy}.oos_auroc"] = oos["auroc"]
        metrics[f"{strategy}.accuracy"] = float(np.mean(predicted == gold))
        metrics[f"{strategy}.train_seconds"] = round(seconds, 1)
        details[strategy] = {
            "oos": oos,
            "temperature": temperature,
            "ece_before": ece_before,
            "ece_after_temperature": ece_after,
            "config": config.to_dict(),
            "device": model.device,
            "history": model.history,
        }
        ctx.log(
            f"clinc150 {strategy}: in-scope {metrics[f'{strategy}.in_scope_accuracy']:.4f} "
            f"AUROC {oos['auroc']:.4f} in {seconds:.0f}s"
        )
    best = max(recipes, key=lambda s: metrics[f"{s}.in_scope_accuracy"])
    metrics = {
        "in_scope_accuracy": metrics[f"{best}.in_scope_accuracy"],
        "oos_auroc": metrics[f"{best}.oos_auroc"],
        **metrics,
    }
    details["best_strategy"] = best
    return SuiteResult(
        metrics=metrics,
        targets=[
            Target("in_scope_accuracy", ">=", 0.965, anchor="issue 3 target; BERT-base 96.5%"),
            Target("oos_auroc", ">=", 0.95, anchor="issue 3 target; BERT-base 0.942"),
        ],
        details=details,
    )


@suite(
    "trainer-throughput",
    area="core-training",
    description="full fine-tuning samples/s: Keel vs transformers.Trainer",
)
def trainer_throughput(ctx: SuiteContext) -> SuiteResult:
    """Samples/s of one training epoch: Keel ``full`` vs a plain ``transformers.Trainer``.

    Same MiniLM body, same rows (the first N of Banking77 train), batch size 32, max
    length 64, same thread count, fp32 on CPU. The Trainer gets the stock setup:
    ``DataCollatorWithPadding`` (dynamic padding), no length grouping. Each side runs
    twice, alternating, and its faster run counts (the machine is shared). Keel's figure
    is its training loop; the head initialisation pass it runs before (LP-FT) is
    reported separately in ``details``.
    """
    from keel.training import ClassifierConfig, train_classifier

    train, _ = _load(ctx, "banking77")
    n_rows = 256 if ctx.quick else 1024
    subset = train.subset(list(range(n_rows)))
    threads = os.cpu_count() or 1
    keel_runs, trainer_runs, keel_end_to_end = [], [], []
    for _ in range(2):
        trainer_runs.append(_trainer_samples_per_s(subset, threads))
        started = time.perf_counter()
        model = train_classifier(
            subset,
            ClassifierConfig(
                strategy="full",
                epochs=1,
                batch_size=32,
                max_length=MAX_LENGTH,
                num_threads=threads,
                device="cpu",
                show_progress=False,
            ),
        )
        keel_end_to_end.append(n_rows / (time.perf_counter() - started))
        keel_runs.append(next(r["samples_per_s"] for r in model.history if r.get("epoch") == 1))
        ctx.log(f"trainer {trainer_runs[-1]:.1f} samples/s, keel {keel_runs[-1]:.1f} samples/s")
    keel_best, trainer_best = max(keel_runs), max(trainer_runs)
    return SuiteResult(
        metrics={
            "speedup_vs_trainer": keel_best / trainer_best,
            "keel.samples_per_s": keel_best,
            "trainer.samples_per_s": trainer_best,
        },
        targets=[
            Target("speedup_vs_trainer", ">=", 1.0, anchor="issue 3: Keel must not be slower")
        ],
        details={
            "rows": n_rows,
            "threads": threads,
            "keel_runs": keel_runs,
            "trainer_runs": trainer_runs,
            "keel_end_to_end_samples_per_s": keel_end_to_end,
        },
    )


def _trainer_samples_per_s(data: Any, threads: int) -> float:
    """One epoch of ``transformers.Trainer`` on ``data``; its reported samples/s."""
    import tempfile

    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from keel.data import LabelMap
    from keel.models import model_path

    torch.set_num_threads(threads)
    path = str(model_path("minilm"))
    label_map = LabelMap.from_labels(data.labels)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(label_map), local_files_only=True
    )
    encoded = tokenizer(data.texts, truncation=True, max_length=MAX_LENGTH)
    ids = label_map.encode(data.labels)
    rows = [
        {
            "input_ids": encoded["input_ids"][i],
            "attention_mask": encoded["attention_mask"][i],
            "labels": int(ids[i]),
        }
        for i in range(len(data))
    ]
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=32,
            num_train_epochs=1,
            learning_rate=5e-5,
            warmup_steps=max(1, len(rows) // 32 // 10),
            weight_decay=0.01,
            logging_strategy="no",
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            dataloader_num_workers=0,
            disable_tqdm=True,
            seed=13,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=rows,  # type: ignore[arg-type]
            data_collator=DataCollatorWithPadding(tokenizer),
        )
        output = trainer.train()
    return float(output.metrics["train_samples_per_second"])
