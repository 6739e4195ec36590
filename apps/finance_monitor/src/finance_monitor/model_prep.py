"""Train, compress and load the scoring models (topic + sentiment heads over one encoder).

``prepare_models`` is idempotent: it fingerprints the training data and the config and
prepares ``models_dir/scoring/<fingerprint>/`` once with ``keel.models.prepare_artifact``
(built beside the published version, published atomically, one builder at a time when
several processes start together), so a second run takes seconds. Training uses
``keel.training.train_multi_head`` (frozen encoder, ``fast`` budget; LP-FT fine-tuning,
``full``); ``keel.compress`` then serves the ONNX int8 variant when the accuracy of
every head stays within ``max_accuracy_drop_points`` of the fp32 model's, and the fp32
model otherwise. With ``static_tier`` (default on) a static-embedding first tier is
distilled from the served encoder into ``served/static``
(``keel.compression.build_static_tier``): ``load_scoring_model`` wraps the served
predictor in a cascade that answers the rows the static heads are sure of and sends the
others to the transformer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
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

PREP_VERSION = 2
SCORING_DIR = "scoring"
SERVED_DIR = "served"
STATIC_DIR = "static"
# Texts per head the compression gate compares int8 with fp32 on.
GATE_ROWS = 300
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
    max_accuracy_drop_points: float = 2.0
    #: Build the static-embedding first tier (English heads) and serve the cascade.
    static_tier: bool = True
    #: Distil the static table from the first N vocabulary ids only (tests); None: all.
    static_max_tokens: int | None = None

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
                "max_accuracy_drop_points": config.max_accuracy_drop_points,
                "static_tier": config.static_tier,
                "static_max_tokens": config.static_max_tokens if config.static_tier else None,
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


def scoring_root(models_dir: Path) -> Path:
    """Folder ``prepare_artifact`` keeps the scoring model versions in."""
    return Path(models_dir) / SCORING_DIR


def gate_sample(texts: list[str], labels: list[str], size: int = GATE_ROWS) -> Any:
    """A seeded sample of one head's rows for the compression gate.

    Every labelled row trains the model, so the gate compares the int8 variant with the
    fp32 model on training rows: the drop it measures is what quantization changed,
    which is what the gate is about.
    """
    from keel.data import LabelledTexts

    keep = sorted(random.Random(13).sample(range(len(texts)), min(size, len(texts))))
    return LabelledTexts([texts[i] for i in keep], [labels[i] for i in keep])


def prepare_models(config: PrepConfig, progress: Callable[[str], None] = print) -> Path:
    """Train and compress the models unless cached ones match; return the served folder.

    Raises:
        ModelPreparationError: data missing or training / compression failed.
    """
    started = time.perf_counter()
    models_dir = Path(config.models_dir)
    sets = load_training_sets(config.data_dir, config.max_train_rows)
    fingerprint = fingerprint_inputs(sets, config)

    def build(folder: Path) -> str:
        variant = _build_models(folder, sets, config, progress)
        (folder / "prep.json").write_text(
            json.dumps(
                {"fingerprint": fingerprint, "variant": variant, "config": _plain(config)},
                indent=2,
            )
        )
        return variant

    return prepare_served_model(
        scoring_root(models_dir),
        fingerprint,
        build,
        config,
        progress,
        started=started,
        up_to_date_note=lambda version: f" (fingerprint {fingerprint[:12]})",
        cleanup=lambda: _remove_legacy_layout(models_dir),
    )


def prepare_served_model(
    root: Path,
    fingerprint: str | dict[str, Any],
    build: Callable[[Path], str],
    config: PrepConfig,
    progress: Callable[[str], None],
    *,
    started: float,
    label: str = "",
    failure_hint: str = "",
    up_to_date_note: Callable[[Path], str] = lambda version: "",
    ready_note: Callable[[Path], str] = lambda version: "",
    cleanup: Callable[[], None] | None = None,
) -> Path:
    """Prepare one scoring model (English or Chinese) under ``root`` with
    ``keel.models.prepare_artifact`` unless the version for ``fingerprint`` is there.

    ``build(folder)`` fills the version's folder and returns the served variant's name;
    ``label`` ("Chinese ") and the notes shape the progress lines and errors; ``cleanup``
    runs once the version is in place.

    Returns:
        The served folder (``root/<fingerprint>/served``).

    Raises:
        ModelPreparationError: the build failed, or the folder cannot be written.
    """
    from keel import KeelError
    from keel.models import prepare_artifact

    built: list[str] = []
    try:
        version = prepare_artifact(root, fingerprint, lambda folder: built.append(build(folder)))
    except KeelError as exc:
        raise ModelPreparationError(
            f"{label}model preparation failed: {exc}{failure_hint}"
        ) from exc
    except OSError as exc:
        raise ModelPreparationError(
            f"{config.models_dir}: cannot write the {label}models: {exc}"
        ) from exc
    if cleanup is not None:
        cleanup()
    served = version / SERVED_DIR
    if not built:
        progress(f"{label}models up to date in {served}{up_to_date_note(version)}")
    else:
        progress(
            f"{label}served model ({built[0]}) ready in {served} after "
            f"{time.perf_counter() - started:.0f}s{ready_note(version)}"
        )
    return served


def train_fp32(
    folder: Path,
    heads: dict[str, Any],
    config: PrepConfig,
    progress: Callable[[str], None],
    *,
    started: float,
    full_epochs: int,
    base_model: str | None = None,
) -> Path:
    """Train the topic and sentiment heads (``heads``: ``LabelledTexts`` per head) with
    the budget's strategy (``full_epochs`` epochs for ``full``) and save the classifier to
    ``folder/fp32``; returns that folder."""
    from keel.training import ClassifierConfig, train_multi_head

    strategy = BUDGETS[config.budget]
    options: dict[str, Any] = {} if base_model is None else {"base_model": base_model}
    classifier = train_multi_head(
        heads,
        ClassifierConfig(
            strategy=strategy,
            max_length=config.max_length,
            num_threads=config.num_threads,
            show_progress=config.show_progress,
            epochs=full_epochs if strategy == "full" else None,
            **options,
        ),
    )
    fp32 = folder / "fp32"
    classifier.save(fp32)
    progress(f"trained in {time.perf_counter() - started:.0f}s; saved {fp32}")
    return fp32


def serve_variant(
    folder: Path,
    fp32: Path,
    gate: dict[str, Any],
    config: PrepConfig,
    progress: Callable[[str], None],
) -> str:
    """Put the served variant of ``fp32`` in ``folder/served``: the ONNX int8 model when
    compression is on and every head's accuracy on ``gate`` stays within
    ``max_accuracy_drop_points``, else a copy of the fp32 model. Returns its name."""
    served = folder / SERVED_DIR
    if not (config.compress and compression_available()):
        shutil.copytree(fp32, served)
        return "fp32"
    from keel.compression import compress_for_serving

    # Keeps the report, drops the measured copies of the variants (the chosen one is in
    # ``served``): they would double the folder's size.
    return compress_for_serving(
        fp32,
        served,
        gate,
        max_drop_points=config.max_accuracy_drop_points,
        work_dir=folder / "variants",
        num_threads=config.num_threads,
        log=progress,
    ).chosen


def _build_models(
    folder: Path, sets: TrainingSets, config: PrepConfig, progress: Callable[[str], None]
) -> str:
    """Train into ``folder/fp32`` and put the served variant in ``folder/served``.

    Returns:
        The served variant's name (``onnx-int8`` or ``fp32``).
    """
    from keel.data import LabelledTexts

    started = time.perf_counter()
    progress(
        f"training topic ({len(set(sets.topic_labels))} labels, {len(sets.topic_texts)} rows) "
        f"and sentiment ({len(sets.sentiment_texts)} rows) heads, budget={config.budget}"
    )
    heads = {
        TOPIC_HEAD: LabelledTexts(sets.topic_texts, sets.topic_labels, source=sets.sources[0]),
        SENTIMENT_HEAD: LabelledTexts(
            sets.sentiment_texts, sets.sentiment_labels, source=sets.sources[-1]
        ),
    }
    fp32 = train_fp32(folder, heads, config, progress, started=started, full_epochs=2)
    gate = {
        TOPIC_HEAD: gate_sample(sets.topic_texts, sets.topic_labels),
        SENTIMENT_HEAD: gate_sample(sets.sentiment_texts, sets.sentiment_labels),
    }
    variant = serve_variant(folder, fp32, gate, config, progress)
    if config.static_tier:
        build_static(folder / SERVED_DIR, sets, config, progress)
    return variant


def build_static(
    served: Path, sets: TrainingSets, config: PrepConfig, progress: Callable[[str], None]
) -> dict[str, Any]:
    """Distil the static tier from the served encoder into ``served/static`` and record
    its cascade (thresholds, expected static share, held-out slice accuracies, or why it
    is off) in ``served/keel.json`` under ``config.static_tier``.

    A failure leaves the transformer serving alone (recorded, not raised): the tier
    is an accelerator, not a requirement.
    """
    from keel import KeelError
    from keel.compression import StaticDistillConfig, build_static_tier
    from keel.data import LabelledTexts
    from keel.inference import load_predictor

    target = served / STATIC_DIR
    try:
        transformer = load_predictor(served, num_threads=config.num_threads, batch_size=256)
        choice = build_static_tier(
            served,
            transformer,
            {
                TOPIC_HEAD: LabelledTexts(sets.topic_texts, sets.topic_labels),
                SENTIMENT_HEAD: LabelledTexts(sets.sentiment_texts, sets.sentiment_labels),
            },
            target,
            distill_config=StaticDistillConfig(
                max_tokens=config.static_max_tokens, show_progress=config.show_progress
            ),
            log=progress,
        )
        summary = choice.as_dict()
    except (KeelError, ImportError, OSError, ValueError) as exc:
        shutil.rmtree(target, ignore_errors=True)
        progress(f"static tier not built ({type(exc).__name__}: {exc}); transformer only")
        summary = {"enabled": False, "reason": f"build failed: {type(exc).__name__}: {exc}"}
    meta_path = served / "keel.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta.setdefault("config", {})["static_tier"] = summary
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return summary


def _remove_legacy_layout(models_dir: Path) -> None:
    """Delete what the first layout kept directly in ``models_dir`` (``fingerprint.json``,
    ``served/``, ``fp32/``, ``served.tmp/``): the model now lives under ``scoring/``."""
    stamp = models_dir / "fingerprint.json"
    if not stamp.is_file():
        return
    for name in ("served", "fp32", "served.tmp"):
        shutil.rmtree(models_dir / name, ignore_errors=True)
    stamp.unlink(missing_ok=True)


def _plain(config: PrepConfig) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}


def load_scoring_model(
    model_dir: Path,
    num_threads: int | None = None,
    batch_size: int = 256,
    *,
    static_tier: bool = True,
) -> ScoringModel:
    """Load the served model for scoring (one encoder pass feeds both heads).

    When the folder has a static tier whose cascade is on (and ``static_tier``), the
    predictor is the cascade: static heads for the rows they are sure of, the
    transformer for the others (counted in ``finance_texts_scored_by_tier_total``).

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
    tier = dict(meta.config.get("static_tier") or {}) or None
    static_dir = Path(model_dir) / STATIC_DIR
    if static_tier and tier and tier.get("enabled") and static_dir.is_dir():
        from finance_monitor.metrics import record_tier_route
        from keel.inference import load_cascade

        try:
            cascade = load_cascade(predictor, static_dir, on_route=record_tier_route)
        except KeelError as exc:
            raise ModelPreparationError(
                f"cannot load the static tier from {static_dir}: {exc}"
            ) from exc
        if cascade is not None:
            predictor = cascade
    elif tier is not None and not static_tier:
        tier = {**tier, "enabled": False, "reason": "KEEL_FM_STATIC_TIER=off"}
    return ScoringModel(predictor, topic, sentiment, static_tier=tier)
