"""EXPERIMENT (not a bench suite, not used by the apps): two single-task recipes for
Financial PhraseBank against the production recipe's 0.824 (fp32, valid), validation
split only.

The ``phrasebank`` suite's production recipe (LP-FT ``full``, 4 epochs at 5e-5, max length
64, early stopping) kept its first epoch, 0.824 fp32 on valid (served int8 0.826), and
stopped after the third. Two levers, each trained for a fixed number of epochs with early
stopping off and no time budget, scored after every epoch on PhraseBank valid:

* ``lr2e-5``: the same recipe at FinBERT's learning rate, 2e-5, for 4 epochs;
* ``pooled``: PhraseBank train plus the 8,589 Twitter financial sentiment train tweets as
  one head (bearish/bullish/neutral read as negative/positive/neutral), 3 epochs at 5e-5:
  the finance monitor's sentiment rows without its topic head.

Records are merged into ``--out`` by variant.

Usage::

    python -m bench.experiments.phrasebank_recipes --variants lr2e-5,pooled
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
OUT = Path(__file__).resolve().parents[1] / "results" / "experiments" / "phrasebank_recipes.json"
TWITTER_TO_PHRASEBANK = {"bearish": "negative", "bullish": "positive", "neutral": "neutral"}
VARIANTS = {
    "lr2e-5": {"learning_rate": 2e-5, "epochs": 4, "pooled": False},
    "pooled": {"learning_rate": 5e-5, "epochs": 3, "pooled": True},
}


def training_rows(data_dir: Path, pooled: bool) -> Any:
    """PhraseBank train, plus the Twitter sentiment train tweets when ``pooled``."""
    import pandas as pd

    from keel.data import LabelledTexts

    phrasebank = pd.read_csv(data_dir / "financial_phrasebank" / "train.csv")
    texts = phrasebank["text"].astype(str).tolist()
    labels = phrasebank["label"].astype(str).tolist()
    if pooled:
        tweets = pd.read_csv(data_dir / "twitter_fin_sentiment" / "train.csv")
        texts += tweets["text"].astype(str).tolist()
        labels += [TWITTER_TO_PHRASEBANK[str(x)] for x in tweets["label_name"]]
    return LabelledTexts(texts=texts, labels=labels)


def run(variant: str, data_dir: Path) -> dict[str, Any]:
    """Train ``variant``; its validation score after every epoch."""
    from keel.data import load_labelled
    from keel.training import ClassifierConfig, train_classifier

    spec = VARIANTS[variant]
    train = training_rows(data_dir, bool(spec["pooled"]))
    valid = load_labelled(
        data_dir / "financial_phrasebank" / "valid.csv", text_col="text", label_col="label"
    )
    epochs: list[dict[str, Any]] = []

    def on_epoch(_epoch: int, row: dict[str, Any]) -> None:
        epochs.append({k: row.get(k) for k in ("epoch", "train_loss", "seconds", "val_score")})
        print(variant, epochs[-1], flush=True)

    config = ClassifierConfig(
        strategy="full",
        max_length=64,
        learning_rate=float(spec["learning_rate"]),
        epochs=int(spec["epochs"]),
        early_stopping_patience=0,
        max_train_minutes=None,
        show_progress=False,
    )
    started = time.perf_counter()
    train_classifier(train, config, val=valid, on_epoch_end=on_epoch)
    return {
        "recipe": dict(spec),
        "train_rows": len(train.texts),
        "valid_rows": len(valid.texts),
        "epochs": epochs,
        "seconds": round(time.perf_counter() - started),
    }


def main() -> None:
    from bench.harness import git_state, machine_info

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose from {sorted(VARIANTS)}")
    out = json.loads(args.out.read_text()) if args.out.is_file() else {"variants": {}}
    for variant in chosen:
        record = run(variant, args.data)
        record["machine"] = machine_info()
        record["git"] = git_state()
        record["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        out["variants"][variant] = record
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
