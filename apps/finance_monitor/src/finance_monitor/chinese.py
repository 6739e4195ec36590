"""Chinese scoring: topic + sentiment heads on multilingual-e5-small, prepared like the English ones.

The English heads (MiniLM) stay as they are; Chinese headlines get their own two heads,
trained with ``keel.training.train_multi_head`` on ``me5-small`` over the bundled
Chinese demo headlines (``demo_data/headlines_zh.jsonl``, written for this project) and
predicting the same label sets as the English heads, so rules, trends, alerts and the
dashboard see no difference. ``prepare_chinese_models`` goes through the same
``model_prep.prepare_served_model`` path (``keel.models.prepare_artifact``) as
``model_prep.prepare_models``, with the same training and compression steps (own
folder ``models_dir/scoring-zh/<fingerprint>/``, cached, published atomically):

1. the me5-small vocabulary is pruned to the pieces of the training headlines (plus
   every one-character piece, so unseen Chinese falls back to characters): 250k pieces
   -> about 16k, a model four times smaller and a quicker ONNX export;
2. both heads are trained on the ``train`` rows (``fast``: frozen encoder; ``full``:
   LP-FT fine-tuning);
3. the model is compressed with the same accuracy gate as the English one;
4. the served model is scored on the ``test`` rows (templates the heads never saw),
   and the accuracies are written to ``heldout.json`` beside it.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from finance_monitor.errors import ModelPreparationError
from finance_monitor.model_prep import (
    BUDGETS,
    SERVED_DIR,
    PrepConfig,
    compression_available,
    gate_sample,
    load_scoring_model,
    prepare_served_model,
    serve_variant,
    train_fp32,
)
from finance_monitor.scoring import SENTIMENT_HEAD, TOPIC_HEAD, ScoringModel

log = logging.getLogger(__name__)

ZH_PREP_VERSION = 1
ZH_SCORING_DIR = "scoring-zh"
ZH_BASE_MODEL = "me5-small"
HELDOUT_FILE = "heldout.json"
# Rows the compression gate compares int8 with fp32 on (per head; training rows). Fewer
# than the English gate's: me5-small's fp32 pass is the slowest step of the preparation.
ZH_GATE_ROWS = 96
DEMO_FILE = "demo_data/headlines_zh.jsonl"


@dataclass(frozen=True)
class ChineseRows:
    """The Chinese demo headlines split into training and held-out rows."""

    train: list[dict[str, Any]]
    test: list[dict[str, Any]]


def load_demo_headlines_zh() -> list[dict[str, Any]]:
    """The bundled Chinese demo headlines (``text``, ``topic``, ``sentiment``,
    ``tickers``, ``split``)."""
    text = resources.files("finance_monitor").joinpath(DEMO_FILE).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def split_rows(rows: list[dict[str, Any]]) -> ChineseRows:
    """``train`` rows train the heads; ``test`` rows (held-out templates) measure them."""
    return ChineseRows(
        [r for r in rows if r.get("split", "train") == "train"],
        [r for r in rows if r.get("split") == "test"],
    )


def zh_scoring_root(models_dir: Path) -> Path:
    """Folder ``prepare_artifact`` keeps the Chinese model versions in."""
    return Path(models_dir) / ZH_SCORING_DIR


def zh_fingerprint(rows: ChineseRows, config: PrepConfig) -> dict[str, Any]:
    """What the Chinese model is made from: rows, base model, and the options that shape it."""
    import hashlib

    digest = hashlib.sha256()
    for part, subset in (("train", rows.train), ("test", rows.test)):
        for r in subset:
            digest.update(
                "\x1f".join((part, r["text"], r["topic"], r["sentiment"])).encode() + b"\x1e"
            )
    return {
        "version": ZH_PREP_VERSION,
        "base_model": ZH_BASE_MODEL,
        "rows": digest.hexdigest(),
        "budget": BUDGETS[config.budget],
        "max_length": config.max_length,
        "compress": config.compress and compression_available(),
        "max_accuracy_drop_points": config.max_accuracy_drop_points,
        "gate_rows": ZH_GATE_ROWS,
    }


def prepare_chinese_models(config: PrepConfig, progress: Callable[[str], None] = print) -> Path:
    """Train, compress and measure the Chinese heads unless a cached model matches.

    Returns:
        The served folder (``models_dir/scoring-zh/<fingerprint>/served``).

    Raises:
        ModelPreparationError: me5-small is unavailable, or training / compression failed.
    """
    started = time.perf_counter()
    rows = split_rows(load_demo_headlines_zh())
    return prepare_served_model(
        zh_scoring_root(config.models_dir),
        zh_fingerprint(rows, config),
        lambda folder: _build(folder, rows, config, progress),
        config,
        progress,
        started=started,
        label="Chinese ",
        failure_hint=" (KEEL_FM_CHINESE=false runs English-only)",
        up_to_date_note=lambda version: f"; {heldout_summary(version)}",
        ready_note=lambda version: f"; {heldout_summary(version)}",
    )


def _build(
    folder: Path, rows: ChineseRows, config: PrepConfig, progress: Callable[[str], None]
) -> str:
    from keel.data import LabelledTexts
    from keel.models import model_path, prune_vocabulary

    texts = [r["text"] for r in rows.train]
    topics = [r["topic"] for r in rows.train]
    sentiments = [r["sentiment"] for r in rows.train]
    started = time.perf_counter()
    encoder = folder / "encoder-pruned"
    prune_vocabulary(model_path(ZH_BASE_MODEL), texts, encoder)
    progress(f"pruned the {ZH_BASE_MODEL} vocabulary in {time.perf_counter() - started:.0f}s")
    progress(
        f"training Chinese topic ({len(set(topics))} labels) and sentiment heads on "
        f"{len(texts)} headlines, budget={config.budget}"
    )
    heads = {
        TOPIC_HEAD: LabelledTexts(texts, topics, source=DEMO_FILE),
        SENTIMENT_HEAD: LabelledTexts(texts, sentiments, source=DEMO_FILE),
    }
    fp32 = train_fp32(
        folder,
        heads,
        config,
        progress,
        started=started,
        full_epochs=3,
        base_model=str(encoder),
    )
    shutil.rmtree(encoder, ignore_errors=True)
    gate = {
        TOPIC_HEAD: gate_sample(texts, topics, ZH_GATE_ROWS),
        SENTIMENT_HEAD: gate_sample(texts, sentiments, ZH_GATE_ROWS),
    }
    variant = serve_variant(folder, fp32, gate, config, progress)
    if variant != "fp32":
        shutil.rmtree(fp32, ignore_errors=True)  # the served variant is what runs
    served = folder / SERVED_DIR
    report = evaluate_heldout(load_scoring_model(served, config.num_threads), rows.test)
    report.update(
        {
            "variant": variant,
            "train_rows": len(rows.train),
            "base_model": ZH_BASE_MODEL,
            "budget": config.budget,
            "data": f"bundled {DEMO_FILE} (written for this project; small in-house set)",
        }
    )
    (folder / HELDOUT_FILE).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return variant


def evaluate_heldout(model: ScoringModel, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Topic and sentiment accuracy of ``model`` on labelled rows."""
    from finance_monitor.scoring import score_texts

    if not rows:
        return {"test_rows": 0}
    verdicts = score_texts(model, [r["text"] for r in rows])
    topic = sum(v.topic == r["topic"] for v, r in zip(verdicts, rows, strict=True))
    sentiment = sum(v.sentiment == r["sentiment"] for v, r in zip(verdicts, rows, strict=True))
    return {
        "test_rows": len(rows),
        "topic_accuracy": round(topic / len(rows), 4),
        "sentiment_accuracy": round(sentiment / len(rows), 4),
    }


def heldout_summary(version: Path) -> str:
    """One line with the held-out accuracies stored beside a prepared model."""
    try:
        report = json.loads((Path(version) / HELDOUT_FILE).read_text())
        return (
            f"held-out ({report['test_rows']} headlines): topic accuracy "
            f"{report['topic_accuracy']:.3f}, sentiment accuracy {report['sentiment_accuracy']:.3f}"
        )
    except (OSError, KeyError, ValueError):
        return "held-out accuracy not recorded"


def load_chinese_model(
    served: Path, english: ScoringModel, num_threads: int | None = None, batch_size: int = 256
) -> ScoringModel:
    """Load the Chinese model and check it predicts labels the English model knows.

    Raises:
        ModelPreparationError: unloadable, or a label the English heads do not have.
    """
    model = load_scoring_model(served, num_threads, batch_size)
    unknown = sorted(set(model.topic_labels) - set(english.topic_labels))
    if unknown:
        raise ModelPreparationError(
            f"{served}: Chinese topic labels {unknown} are not English topics "
            f"({english.topic_labels}); the rules and dashboard would not know them"
        )
    return model
