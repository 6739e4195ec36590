"""Train, compress and load the scoring models (topic + sentiment heads over one encoder).

``prepare_models`` is idempotent: it fingerprints the training data and the config and
reuses ``state_dir/models/served`` when the fingerprint matches, so a second run takes
seconds. Training uses ``keel.training.train_multi_head`` (frozen encoder, ``small``
budget; LP-FT fine-tuning, ``full``); the served model is the ONNX int8 export from
``keel.compression`` when available (falls back to the fp32 artifact, and says so).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from finance_monitor.errors import ModelPreparationError
from finance_monitor.scoring import SENTIMENT_HEAD, TOPIC_HEAD, ScoringModel, head_labels
from keel_service import Budget

log = logging.getLogger(__name__)

PREP_VERSION = 1
# The apps' budget -> the keel training strategy.
BUDGETS = {"fast": "head", "full": "full"}
# Twitter financial news sentiment labels -> the PhraseBank names the app uses.
TWITTER_SENTIMENT = {"bearish": "negative", "bullish": "positive", "neutral": "neutral"}


@dataclass(frozen=True)
class PrepConfig:
    """What to train: data source, budget, sequence length."""

    models_dir: Path
    data_dir: Path | None = None
    budget: str = "fast"
    max_length: int = 48
    num_threads: int | None = None
    show_progress: bool = True
    compress: bool = True
    max_train_rows: int | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "budget", Budget(self.budget).value)
        except ValueError:
            raise ModelPreparationError(
                f"budget={self.budget!r}: use one of {sorted(BUDGETS)}"
            ) from None


@dataclass
class TrainingSets:
    """Texts + labels per head, and the files they came from."""

    topic_texts: list[str]
    topic_labels: list[str]
    sentiment_texts: list[str]
    sentiment_labels: list[str]
    sources: list[str]


def load_demo_headlines() -> list[dict[str, Any]]:
    """The bundled demo headlines (``text``, ``topic``, ``sentiment``, ``tickers``)."""
    text = resources.files("finance_monitor").joinpath("demo_data/headlines.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _read_labelled(path: Path, label_col: str) -> tuple[list[str], list[str]]:
    from keel.data import load_labelled

    if not path.is_file():
        raise ModelPreparationError(f"{path}: training file not found (check data_dir)")
    data = load_labelled(path, text_col="text", label_col=label_col)
    return list(data.texts), [str(label) for label in data.labels]


def load_training_sets(data_dir: Path | None, max_rows: int | None = None) -> TrainingSets:
    """Training data: shared data sets when ``data_dir`` is set, bundled demo headlines otherwise.

    With ``data_dir``: topic head from ``twitter_fin_topic/train.csv``; sentiment head from
    ``financial_phrasebank/train.csv`` plus ``twitter_fin_sentiment/train.csv`` (bearish /
    bullish mapped to negative / positive).
    """
    if data_dir is None:
        rows = load_demo_headlines()
        texts = [r["text"] for r in rows]
        return TrainingSets(
            texts,
            [r["topic"] for r in rows],
            texts,
            [r["sentiment"] for r in rows],
            ["bundled:headlines.jsonl"],
        )
    data_dir = Path(data_dir)
    topic_path = data_dir / "twitter_fin_topic" / "train.csv"
    pb_path = data_dir / "financial_phrasebank" / "train.csv"
    tw_path = data_dir / "twitter_fin_sentiment" / "train.csv"
    topic_texts, topic_labels = _read_labelled(topic_path, "label_name")
    pb_texts, pb_labels = _read_labelled(pb_path, "label")
    tw_texts, tw_raw = _read_labelled(tw_path, "label_name")
    tw_labels = [TWITTER_SENTIMENT[label.lower()] for label in tw_raw]
    sets = TrainingSets(
        topic_texts,
        topic_labels,
        pb_texts + tw_texts,
        pb_labels + tw_labels,
        [str(topic_path), str(pb_path), str(tw_path)],
    )
    if max_rows:
        sets.topic_texts, sets.topic_labels = (
            sets.topic_texts[:max_rows],
            sets.topic_labels[:max_rows],
        )
        sets.sentiment_texts = sets.sentiment_texts[:max_rows]
        sets.sentiment_labels = sets.sentiment_labels[:max_rows]
    return sets


def fingerprint_inputs(sets: TrainingSets, config: PrepConfig) -> str:
    """sha256 over the training rows and the config that shapes the model."""
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            {
                "version": PREP_VERSION,
                "budget": BUDGETS[config.budget],
                "max_length": config.max_length,
                "compress": config.compress and compression_available(),
            }
        ).encode()
    )
    for texts, labels in (
        (sets.topic_texts, sets.topic_labels),
        (sets.sentiment_texts, sets.sentiment_labels),
    ):
        for text, label in zip(texts, labels, strict=True):
            digest.update(text.encode())
            digest.update(b"\x1f")
            digest.update(label.encode())
            digest.update(b"\x1e")
    return digest.hexdigest()


def compression_available() -> bool:
    """Whether ``keel.compression.export_onnx`` can be imported (int8 ONNX serving)."""
    try:
        from keel.compression import export_onnx  # noqa: F401
    except ImportError:
        return False
    return True


def served_dir(models_dir: Path) -> Path:
    """Folder of the model the scorer loads."""
    return Path(models_dir) / "served"


def prepare_models(config: PrepConfig, progress: Callable[[str], None] = print) -> Path:
    """Train and compress the models unless cached ones match; return the served folder.

    Raises:
        ModelPreparationError: data missing or training / export failed.
    """
    from keel import KeelError

    started = time.perf_counter()
    models_dir = Path(config.models_dir)
    sets = load_training_sets(config.data_dir, config.max_train_rows)
    fingerprint = fingerprint_inputs(sets, config)
    stamp = models_dir / "fingerprint.json"
    served = served_dir(models_dir)
    cached = stamp.is_file() and (served / "keel.json").is_file()
    if cached and json.loads(stamp.read_text()).get("fingerprint") == fingerprint:
        progress(f"models up to date in {served} (fingerprint {fingerprint[:12]})")
        return served
    progress(
        f"training topic ({len(set(sets.topic_labels))} labels, {len(sets.topic_texts)} rows) and sentiment "
        f"({len(sets.sentiment_texts)} rows) heads, budget={config.budget}"
    )
    try:
        from keel.data import LabelledTexts
        from keel.training import ClassifierConfig, train_multi_head

        train_cfg = ClassifierConfig(
            strategy=BUDGETS[config.budget],
            max_length=config.max_length,
            num_threads=config.num_threads,
            show_progress=config.show_progress,
            epochs=2 if BUDGETS[config.budget] == "full" else None,
        )
        classifier = train_multi_head(
            {
                TOPIC_HEAD: LabelledTexts(
                    sets.topic_texts, sets.topic_labels, source=sets.sources[0]
                ),
                SENTIMENT_HEAD: LabelledTexts(
                    sets.sentiment_texts, sets.sentiment_labels, source=sets.sources[-1]
                ),
            },
            train_cfg,
        )
        fp32 = models_dir / "fp32"
        if fp32.exists():
            shutil.rmtree(fp32)
        classifier.save(fp32)
        progress(f"trained in {time.perf_counter() - started:.0f}s; saved {fp32}")
        tmp = models_dir / "served.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        variant = "fp32"
        if config.compress:
            try:
                from keel.compression import export_onnx
            except ImportError as exc:
                progress(f"keel.compression unavailable ({exc}); serving the fp32 model")
                shutil.copytree(fp32, tmp)
            else:
                calibration = sets.sentiment_texts[:200]
                export_onnx(fp32, tmp, quantize="dynamic", calibration_texts=calibration)
                variant = "onnx-int8"
        else:
            shutil.copytree(fp32, tmp)
    except KeelError as exc:
        raise ModelPreparationError(f"model preparation failed: {exc}") from exc
    if served.exists():
        shutil.rmtree(served)
    tmp.rename(served)
    stamp.write_text(
        json.dumps(
            {"fingerprint": fingerprint, "variant": variant, "config": _plain(config)}, indent=2
        )
    )
    progress(
        f"served model ({variant}) ready in {served} after {time.perf_counter() - started:.0f}s"
    )
    return served


def _plain(config: PrepConfig) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}


def load_scoring_model(
    model_dir: Path, num_threads: int | None = None, batch_size: int = 256
) -> ScoringModel:
    """Load the served model for scoring (one encoder pass feeds both heads).

    Raises:
        ModelPreparationError: the folder is missing or not a two-head artifact.
    """
    from keel import KeelError
    from keel.inference import load_predictor
    from keel.models import read_meta

    try:
        meta = read_meta(model_dir)
        predictor = load_predictor(
            model_dir, backend="auto", num_threads=num_threads, batch_size=batch_size
        )
    except KeelError as exc:
        raise ModelPreparationError(
            f"cannot load the scoring model from {model_dir}: {exc}"
        ) from exc
    try:
        topic, sentiment = head_labels(meta.heads)
    except KeyError as exc:
        raise ModelPreparationError(f"{model_dir}: artifact lacks the {exc} head") from exc
    return ScoringModel(predictor, topic, sentiment)
