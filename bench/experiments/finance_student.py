"""EXPERIMENT (not a bench suite, not used by the apps): 1- and 2-layer students of the
finance monitor's fine-tuned scoring model, validation splits only.

Issue 17 wants the finance scorer at 2,000 msgs/s on distinct texts with the served heads'
accuracy kept; it names "a 2-3 layer student distilled from the production model" as a
lever. On distinct texts the scorer is model-bound (``finance-throughput``: 268 msgs/s,
86.5% of the scorer's time in the encoder). This measures what such a student keeps and
what it gains:

1. **Teacher**: the ``full``-budget fp32 model ``finance-accuracy`` prepares (MiniLM
   fine-tuned with both heads; ``--scoring`` points at its version folder, which holds
   ``fp32/`` and ``served/``).
2. **Students** (``--layers``): ``keel.compression.distill_classifier`` (the teacher's
   own encoder cut to N layers, spread evenly; KL to the teacher's temperature-softened
   logits of both heads; ``STUDENT_DISTILL`` with ``--epochs``) on every training text of
   both heads (topic + sentiment train files, deduplicated; no labels are read), then
   the apps' ONNX dynamic int8 export. A student already in ``--work`` (with its
   ``distill.json``) is reused.
3. **Accuracy**: PhraseBank, Twitter sentiment and Twitter topic valid, scored the way
   ``finance-accuracy`` scores (``finance_monitor.scoring.score_texts`` in batches of
   256), for the fp32 teacher, the served int8 transformer (static tier off) and each
   student (fp32 and int8).
4. **Speed**: ``classify_heads`` over the distinct Twitter sentiment valid texts (954) in
   batches of 256 (what the scorer sends), the served int8 transformer and the int8
   students, one warm-up round, then ``--rounds`` interleaved rounds
   (``bench.harness.interleaved_runs``); texts/s median, min and max, and each
   student's median per-round ratio to the served model.

Usage::

    python -m bench.experiments.finance_student \\
        --scoring var/bench/finance_monitor/shared-full/scoring/<version> \\
        --work /tmp/finance-student --layers 2,1 --out bench/results/experiments
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import interleaved_runs, ratio_summary, round_ratios
from bench.suites.finance import finance_eval_sets
from finance_monitor.scoring import head_accuracy

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _scores(folder: Path, sets: dict[str, tuple[list[str], list[str], str]]) -> dict[str, float]:
    from finance_monitor.model_prep import load_scoring_model

    model = load_scoring_model(folder, static_tier=False)
    return {name: round(head_accuracy(model, t, y, h), 4) for name, (t, y, h) in sets.items()}


def _student(
    fp32: Path, texts: list[str], work: Path, layers: int, epochs: int
) -> tuple[Path, dict[str, Any]]:
    from keel.compression.distillation import distill_classifier
    from keel.compression.onnx_export import export_onnx
    from keel.compression.report import STUDENT_DISTILL

    name = f"L{layers}e{epochs}"
    record = work / name / "distill.json"
    int8 = work / f"{name}-int8"
    if record.is_file() and int8.is_dir():
        return int8, {**json.loads(record.read_text()), "reused": True}
    config = dataclasses.replace(STUDENT_DISTILL, epochs=epochs)
    started = time.perf_counter()
    student = distill_classifier(fp32, texts, work / name, layers, config=config)
    seconds = time.perf_counter() - started
    export_onnx(student, int8, quantize="dynamic")
    info = {
        "layers": layers,
        "epochs": epochs,
        "learning_rate": config.learning_rate,
        "texts": len(texts),
        "distill_seconds": round(seconds, 1),
    }
    record.write_text(json.dumps(info, indent=2))
    return int8, {**info, "reused": False}


def _speed(folders: dict[str, Path], texts: list[str], rounds: int) -> dict[str, Any]:
    from keel.inference import load_predictor

    predictors = {n: load_predictor(f, num_threads=2, batch_size=256) for n, f in folders.items()}

    def workload(predictor: Any) -> Any:
        def run() -> None:
            for i in range(0, len(texts), 256):
                predictor.classify_heads(texts[i : i + 256])

        return run

    timings = interleaved_runs({n: workload(p) for n, p in predictors.items()}, runs=rounds)
    out: dict[str, Any] = {}
    for name, timing in timings.items():
        rate = timing.rate(len(texts))
        out[name] = {
            **{k: round(rate[k], 1) for k in ("median", "min", "max")},
            "runs": [round(r, 1) for r in rate["runs"]],
        }
        if name != "served":
            ratio = ratio_summary(round_ratios(timing, timings["served"]))
            out[name]["ratio_to_served"] = round(ratio["median"], 2)
    return out


def main() -> None:
    import pandas as pd

    from bench.harness import git_state, machine_info
    from finance_monitor.model_prep import load_training_sets

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scoring", type=Path, required=True, help="version folder")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--layers", default="2,1")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=Path("bench/results/experiments"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sets = load_training_sets(args.data)
    texts = list(dict.fromkeys(sets.topic_texts + sets.sentiment_texts))
    valid = finance_eval_sets(lambda folder: args.data / folder / "valid.csv")
    fp32, served = args.scoring / "fp32", args.scoring / "served"
    result: dict[str, Any] = {
        "experiment": "finance_student",
        "split": "valid",
        "teacher": str(fp32),
        "accuracy": {"fp32": _scores(fp32, valid), "served_int8": _scores(served, valid)},
        "students": {},
    }
    int8_folders: dict[str, Path] = {"served": served}
    for layers in (int(x) for x in args.layers.split(",")):
        folder, info = _student(fp32, texts, args.work, layers, args.epochs)
        name = f"student-L{layers}"
        info["accuracy_fp32"] = _scores(folder.with_name(folder.name.removesuffix("-int8")), valid)
        info["accuracy_int8"] = _scores(folder, valid)
        result["students"][name] = info
        int8_folders[name] = folder
    speed_texts = (
        pd.read_csv(args.data / "twitter_fin_sentiment" / "valid.csv")["text"]
        .astype(str)
        .tolist()[:1536]
    )
    result["speed_texts_per_s"] = _speed(int8_folders, speed_texts, args.rounds)
    result["speed_what"] = (
        f"classify_heads over {len(speed_texts)} Twitter sentiment valid texts in batches of "
        f"256, 2 onnxruntime threads, {args.rounds} interleaved rounds after a warm-up"
    )
    result["machine"] = machine_info()
    result["git"] = git_state()
    result["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["seconds"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "finance_student.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
