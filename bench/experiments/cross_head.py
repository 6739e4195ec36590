"""EXPERIMENT (not a bench suite, not used by the apps): cross-head soft labels for the
finance monitor's two-head fine-tuning, validation splits only.

The finance model fine-tunes MiniLM with a topic head (15,291 Twitter topic tweets) and a
sentiment head (PhraseBank + Twitter sentiment, 11,980 rows): each head only ever sees
its own rows. ``ClassifierConfig.cross_head_weight`` makes each batch also fit the other
head to the model's own soft labels of those rows, taken after the previous epoch, so the
sentiment head learns from 15k more tweets (and the topic head from the sentiment rows).
A 2-layer student distilled on both heads' soft labels of every text had scored 1.2
points over its teacher on Twitter sentiment (``finance_student.py``); this isolates that
lever inside the production recipe.

Each ``--weights`` value trains the finance ``full`` recipe as ``prepare --budget full``
does (``train_multi_head``, 2 epochs, max length 48, seed 13) and scores the fp32 model
on PhraseBank, Twitter sentiment and Twitter topic valid. Records are merged into
``--out/cross_head.json`` by weight.

Usage::

    python -m bench.experiments.cross_head --weights 0,1.0
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def train_and_score(weight: float, data_dir: Path) -> dict[str, Any]:
    """The finance ``full`` recipe with ``cross_head_weight=weight``; fp32 valid scores."""
    from bench.suites.finance import finance_eval_sets
    from finance_monitor.model_prep import load_training_sets
    from finance_monitor.scoring import SENTIMENT_HEAD, TOPIC_HEAD
    from keel.data import LabelledTexts
    from keel.training import ClassifierConfig, train_multi_head

    sets = load_training_sets(data_dir)
    heads = {
        TOPIC_HEAD: LabelledTexts(sets.topic_texts, sets.topic_labels),
        SENTIMENT_HEAD: LabelledTexts(sets.sentiment_texts, sets.sentiment_labels),
    }
    config = ClassifierConfig(strategy="full", max_length=48, epochs=2, cross_head_weight=weight)
    started = time.perf_counter()
    model = train_multi_head(heads, config)
    seconds = time.perf_counter() - started

    def accuracy(texts: list[str], labels: list[str], head: str) -> float:
        predicted = model.predict(texts, head=head)
        return round(float(np.mean([p == y for p, y in zip(predicted, labels, strict=True)])), 4)

    valid = finance_eval_sets(lambda folder: data_dir / folder / "valid.csv")
    return {
        "cross_head_weight": weight,
        "train_seconds": round(seconds, 1),
        "fp32_valid": {name: accuracy(*rows) for name, rows in valid.items()},
        "epochs": [row for row in model.history if row.get("epoch", 0) >= 1],
        "recipe": config.to_dict(),
    }


def main() -> None:
    from bench.harness import git_state, machine_info

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="0,1.0", help="comma-separated weights")
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=Path("bench/results/experiments"))
    args = parser.parse_args()
    path = args.out / "cross_head.json"
    result = json.loads(path.read_text()) if path.is_file() else {"runs": {}}
    for weight in (float(w) for w in args.weights.split(",")):
        record = train_and_score(weight, args.data_dir)
        record["machine"] = machine_info()
        record["git"] = git_state()
        record["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        result["runs"][str(weight)] = record
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(json.dumps(record["fp32_valid"]), record["train_seconds"], flush=True)


if __name__ == "__main__":
    main()
