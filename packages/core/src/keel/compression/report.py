"""Compression report (every variant measured side by side) and ``compress`` (pick one).

The accuracy gate has three modes, chosen by what ``val`` is:

* labelled texts (``.texts`` / ``.labels``): accuracy of the default head;
* a mapping ``{head: labelled texts}``: accuracy of every named head, and a variant's
  drop is its worst head's drop (a multi-head classifier);
* plain texts (a sequence of ``str``): the mean cosine between a variant's embeddings
  and the fp32 model's on those (held-out) texts (an embedding model); with
  ``min_cosine`` that bound is the gate.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keel.compression._artifact_copy import artifact_size_mb, source_meta
from keel.compression._measure import accuracy, measure_speed, sixteen_word_inputs
from keel.compression._student import DistillConfig
from keel.errors import ConfigError, KeelError

REPORT_FILE = "compression_report.json"
PLOT_FILE = "compression_report.png"
BASELINE = "fp32"


def _texts_and_labels(val: Any, name: str = "val") -> tuple[list[str], list[Any]]:
    texts = list(getattr(val, "texts", []))
    labels = list(getattr(val, "labels", []))
    if not texts or len(texts) != len(labels):
        raise ConfigError(
            name, type(val).__name__, "needs .texts and .labels of equal, non-zero length"
        )
    return texts, labels


@dataclass(frozen=True)
class GateData:
    """What the accuracy gate measures a variant on (see the module docstring).

    Attributes:
        texts: texts timed for speed, and compared by cosine in embedding mode.
        heads: ``{head: (texts, gold labels)}``; ``None`` is the default head; empty
            in embedding mode.
    """

    texts: list[str]
    heads: dict[str | None, tuple[list[str], list[Any]]] = field(default_factory=dict)

    @property
    def embedding_mode(self) -> bool:
        """Whether the gate is cosine agreement (no labels given)."""
        return not self.heads


def gate_data(val: Any) -> GateData:
    """Read ``val`` as labelled texts, ``{head: labelled texts}`` or plain texts.

    Raises:
        ConfigError: ``val`` is none of these, or empty.
    """
    if isinstance(val, Mapping):
        if not val:
            raise ConfigError("val", {}, "give at least one head's labelled texts")
        heads: dict[str | None, tuple[list[str], list[Any]]] = {
            str(name): _texts_and_labels(data, f"val[{name!r}]") for name, data in val.items()
        }
        texts = list(dict.fromkeys(t for head_texts, _ in heads.values() for t in head_texts))
        return GateData(texts, heads)
    if isinstance(val, Sequence) and not isinstance(val, str):
        texts = [t for t in val if isinstance(t, str) and t.strip()]
        if not texts or len(texts) != len(val):
            raise ConfigError("val", type(val).__name__, "plain texts must be non-empty strings")
        return GateData(texts)
    texts, labels = _texts_and_labels(val)
    return GateData(texts, {None: (texts, labels)})


# How report students are distilled unless the caller says otherwise. Chosen on
# Banking77 valid (1-layer student of the frozen-MiniLM classifier, heads re-fitted, ONNX
# int8; fp32 0.917): 3 epochs at 1e-4 scored 0.898, 6 at 2e-4 0.914, 6 at 5e-4 0.920 and
# 6 at 1e-3 0.917 (bench/suites/core_serving.py, 2026-11-30).
STUDENT_DISTILL = DistillConfig(epochs=6, learning_rate=5e-4)


def build_variants(
    model_dir: Path,
    work_dir: Path,
    *,
    train_texts: Sequence[str] | None = None,
    student_layers: Sequence[int] = (3,),
    distill_config: DistillConfig | None = None,
    include_static: bool = True,
    calibration_size: int = 300,
    refit: bool = True,
    refit_size: int = 5000,
    candidates: Sequence[str] | None = None,
    log: Any = print,
) -> dict[str, Path]:
    """Write every compressed variant of ``model_dir`` under ``work_dir``.

    ``candidates`` limits the build to the named variants (the fp32 baseline is always
    kept); an app that knows what serves it fast saves the time of the others.
    Always: torch dynamic int8, ONNX fp32, ONNX dynamic int8. With ``train_texts``:
    ONNX static int8 (calibrated on up to ``calibration_size`` of them), per entry of
    ``student_layers`` a distilled student and its ONNX int8 export, and (with
    ``refit``) a copy of every int8 classifier whose heads are re-fitted to the fp32
    teacher's logits on up to ``refit_size`` training texts (suffix ``+refit``).
    Students are distilled with ``distill_config`` (default ``STUDENT_DISTILL``).
    """
    from keel.compression.distillation import distill_classifier
    from keel.compression.onnx_export import export_onnx
    from keel.compression.torch_quant import quantize_dynamic_int8

    def wanted(name: str) -> bool:
        return candidates is None or name in candidates

    work_dir.mkdir(parents=True, exist_ok=True)
    variants: dict[str, Path] = {BASELINE: model_dir}
    if wanted("torch-int8"):
        log("variant torch-int8")
        variants["torch-int8"] = quantize_dynamic_int8(model_dir, work_dir / "torch-int8")
    if wanted("onnx-fp32"):
        log("variant onnx-fp32")
        variants["onnx-fp32"] = export_onnx(model_dir, work_dir / "onnx-fp32")
    if wanted("onnx-int8"):
        log("variant onnx-int8")
        variants["onnx-int8"] = export_onnx(model_dir, work_dir / "onnx-int8", quantize="dynamic")
    texts = [t for t in (train_texts or []) if t.strip()]
    if texts and include_static and wanted("onnx-int8-static"):
        rng = np.random.default_rng(13)
        sample = [texts[i] for i in rng.permutation(len(texts))[:calibration_size]]
        log("variant onnx-int8-static")
        variants["onnx-int8-static"] = export_onnx(
            model_dir, work_dir / "onnx-int8-static", quantize="static", calibration_texts=sample
        )
    for layers in student_layers if texts else ():
        name = f"student-L{layers}"
        if not (wanted(name) or wanted(f"{name}+onnx-int8")):
            continue
        log(f"variant {name} (distillation on {len(texts)} texts)")
        student = distill_classifier(
            model_dir, texts, work_dir / name, layers, config=distill_config or STUDENT_DISTILL
        )
        variants[name] = student
        log(f"variant {name}+onnx-int8")
        variants[f"{name}+onnx-int8"] = export_onnx(
            student, work_dir / f"{name}+onnx-int8", quantize="dynamic"
        )
    if texts and refit and source_meta(model_dir).get("task") == "classifier":
        _add_refitted(variants, model_dir, work_dir, texts, refit_size, log)
    return variants


def _add_refitted(
    variants: dict[str, Path],
    model_dir: Path,
    work_dir: Path,
    texts: list[str],
    size: int,
    log: Any,
) -> None:
    from keel.compression.head_refit import refit_heads, teacher_logits

    rng = np.random.default_rng(13)
    sample = [texts[i] for i in rng.permutation(len(texts))[:size]]
    log(f"teacher logits on {len(sample)} texts for head re-fitting")
    targets = teacher_logits(model_dir, sample)
    for name in [n for n in variants if "int8" in n]:
        refitted = work_dir / f"{name}+refit"
        if refitted.exists():
            shutil.rmtree(refitted)
        shutil.copytree(variants[name], refitted)
        log(f"variant {name}+refit")
        variants[f"{name}+refit"] = refit_heads(refitted, sample, targets)


def measure_variants(
    variants: dict[str, Path],
    val: Any,
    *,
    num_threads: int | None = None,
    latency_inputs: int = 64,
    extra: Mapping[str, tuple[Any, Path]] | None = None,
    log: Any = print,
) -> dict[str, dict[str, Any]]:
    """Size, speed and validation accuracy of every variant (same threads, same inputs).

    ``extra`` adds already-loaded predictors as rows (``{name: (predictor, folder)}``,
    measured after the variants): the static tier and its cascade, which are not
    artifacts ``load_predictor`` opens.

    Each entry has ``size_mb``, ``size_ratio``, ``p50_ms_batch1``, ``p95_ms_batch1``
    (16-word inputs), ``throughput_batch32``, ``speedup`` (throughput / fp32's),
    ``accuracy``, ``accuracy_drop_points`` (fp32 accuracy minus this, x100) and
    ``agreement`` (share of predictions equal to fp32's). With ``{head: data}``,
    ``head_accuracy`` / ``head_drop_points`` per head and the worst head's drop as
    ``accuracy_drop_points``. For encoder artifacts, or when ``val`` is plain texts,
    ``cosine`` (mean cosine to the fp32 embeddings) replaces accuracy.
    """
    from keel.inference import load_predictor

    gate = gate_data(val)
    short = sixteen_word_inputs(gate.texts, latency_inputs)
    rows: dict[str, dict[str, Any]] = {}
    reference_predictions: dict[str | None, list[Any]] = {}
    reference_embeddings: np.ndarray | None = None
    loaded: list[tuple[str, Path, Any]] = [
        (name, folder, None) for name, folder in variants.items()
    ] + [(name, Path(folder), p) for name, (p, folder) in (extra or {}).items()]
    for name, folder, given in loaded:
        log(f"measure {name}")
        predictor: Any = given or load_predictor(folder, num_threads=num_threads)
        if hasattr(predictor, "static_rows"):  # a cascade: its share on the gate texts
            predictor.static_rows = predictor.fallback_rows = 0
        has_heads = bool(predictor.heads)
        timing = measure_speed(predictor, short, gate.texts, classify=has_heads)
        row: dict[str, Any] = {
            "path": str(folder),
            "variant": predictor.variant,
            "backend": predictor.backend,
            "size_mb": artifact_size_mb(folder),
            **timing.as_dict(),
        }
        if has_heads and not gate.embedding_mode:
            head_accuracy: dict[str | None, float] = {}
            agreements = []
            for head, (texts, labels) in gate.heads.items():
                predictions = predictor.predict_labels(texts, head=head)
                head_accuracy[head] = accuracy(predictions, labels)
                reference = reference_predictions.setdefault(head, predictions)
                agreements.append(accuracy(predictions, reference))
            row["accuracy"] = float(np.mean(list(head_accuracy.values())))
            row["agreement"] = float(np.mean(agreements))
            if None not in head_accuracy:
                row["head_accuracy"] = head_accuracy
        else:
            embeddings = predictor.embed(gate.texts)
            if reference_embeddings is None:
                reference_embeddings = embeddings
            row["cosine"] = float(np.mean((embeddings * reference_embeddings).sum(axis=1)))
            row["accuracy"] = row["cosine"]
            row["agreement"] = row["cosine"]
        if hasattr(predictor, "static_share"):
            row["tier"] = "cascade"
            row["static_share"] = round(float(predictor.static_share), 4)
            row["thresholds"] = dict(predictor.thresholds)
        elif getattr(predictor, "backend", "") == "static":
            row["tier"] = "static"
        rows[name] = row
        del predictor
    base = rows[next(iter(rows))]
    for row in rows.values():
        row["size_ratio"] = round(row["size_mb"] / base["size_mb"], 4)
        row["speedup"] = round(row["throughput_batch32"] / base["throughput_batch32"], 3)
        if "head_accuracy" in row:
            # A multi-head model is as good as its worst head: the gate uses the largest drop.
            drops = {
                head: round((base["head_accuracy"][head] - value) * 100, 3)
                for head, value in row["head_accuracy"].items()
            }
            row["head_drop_points"] = drops
            row["accuracy_drop_points"] = max(drops.values())
        else:
            row["accuracy_drop_points"] = round((base["accuracy"] - row["accuracy"]) * 100, 3)
    return rows


def plot_report(rows: dict[str, dict[str, Any]], path: Path, title: str = "") -> Path:
    """Accuracy vs batch-1 latency (p50) of every variant, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name, row in rows.items():
        marker = {"static": "s", "cascade": "D"}.get(str(row.get("tier")), "o")
        ax.scatter(
            row["p50_ms_batch1"], row["accuracy"] * 100, s=30 + row["size_mb"] * 2, marker=marker
        )
        ax.annotate(
            f"{name}\n{row['speedup']:.1f}x, {row['size_mb']:.0f} MB",
            (row["p50_ms_batch1"], row["accuracy"] * 100),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.set_xlabel("latency p50, batch 1, 16-word input (ms, log scale)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(
        title
        or "Keel compression: accuracy vs latency\n(marker size = MB; square: static tier, diamond: cascade)"
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def compression_report(
    model_dir: str | Path,
    val: Any,
    out_dir: str | Path,
    *,
    train_texts: Sequence[str] | None = None,
    student_layers: Sequence[int] = (3,),
    distill_config: DistillConfig | None = None,
    num_threads: int | None = None,
    latency_inputs: int = 64,
    candidates: Sequence[str] | None = None,
    static_train: Any = None,
    static_config: Any = None,
    log: Any = print,
) -> dict[str, Any]:
    """Build every variant of a torch fp32 artifact and measure them side by side.

    Args:
        model_dir: the fp32 torch classifier (or encoder) artifact.
        val: validation data: ``LabelledTexts`` (default head), ``{head: LabelledTexts}``
            (every named head), or plain held-out texts (embedding cosine).
        out_dir: variants go to ``out_dir/variants/<name>``; the report to
            ``compression_report.json`` and ``compression_report.png``.
        train_texts: training texts for static-int8 calibration and distillation
            (without them only quantized variants are built).
        student_layers: layer counts of the distilled students.
        num_threads: CPU threads for every variant (None: library default).
        latency_inputs: how many 16-word inputs the batch-1 latency is timed on.
        candidates: build only these variants (besides the fp32 baseline).
        static_train: labelled training rows (``LabelledTexts`` or ``{head:
            LabelledTexts}``) to build the static-embedding tier from
            (``keel.compression.static_tier``): adds the rows ``static`` (static heads
            alone) and ``cascade:<variant>`` (static first, the fastest int8 ONNX variant
            built, else fp32, for the unsure rows), marked ``tier`` and never chosen
            by ``compress``.
        static_config: ``StaticDistillConfig`` of the static table.

    Returns:
        ``{"model": ..., "variants": {name: row}, "report": path, "plot": path}``.
    """
    source = Path(model_dir)
    target = Path(out_dir)
    meta = source_meta(source)
    if meta.get("backend") != "torch" or str(meta.get("variant") or "fp32") != "fp32":
        raise ConfigError("model_dir", str(source), "the report starts from an fp32 torch artifact")
    variants = build_variants(
        source,
        target / "variants",
        train_texts=train_texts,
        student_layers=student_layers,
        distill_config=distill_config,
        candidates=candidates,
        log=log,
    )
    extra = (
        _static_rows(source, variants, static_train, static_config, target, num_threads, log)
        if static_train is not None
        else None
    )
    rows = measure_variants(
        variants,
        val,
        num_threads=num_threads,
        latency_inputs=latency_inputs,
        extra=extra,
        log=log,
    )
    report = {
        "model": str(source),
        "validation_size": len(gate_data(val).texts),
        "num_threads": num_threads,
        "variants": rows,
    }
    report_path = target / REPORT_FILE
    report_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot_path = plot_report(rows, target / PLOT_FILE)
    report["report"] = str(report_path)
    report["plot"] = str(plot_path)
    return report


def _static_rows(
    source: Path,
    variants: dict[str, Path],
    train: Any,
    config: Any,
    target: Path,
    num_threads: int | None,
    log: Any,
) -> dict[str, tuple[Any, Path]]:
    """Build the static tier (teacher: the fp32 source) and load it and its cascade."""
    from keel.compression.static_tier import build_static_tier
    from keel.inference import CascadePredictor, load_predictor, load_static_predictor

    fallback_name = next((n for n in ("onnx-int8", "onnx-int8-static") if n in variants), BASELINE)
    fallback: Any = load_predictor(variants[fallback_name], num_threads=num_threads)
    if isinstance(train, Mapping):
        heads = {str(name): data for name, data in train.items()}
    else:
        _texts_and_labels(train, "static_train")
        heads = {fallback.heads[0]: train}
    folder = target / "variants" / "static"
    log("variant static (static-embedding tier)")
    choice = build_static_tier(source, fallback, heads, folder, distill_config=config, log=log)
    static = load_static_predictor(folder)
    out: dict[str, tuple[Any, Path]] = {"static": (static, folder)}
    if choice.enabled:
        cascade = CascadePredictor(static, fallback, choice.thresholds)
        out[f"cascade:{fallback_name}"] = (cascade, folder)
    else:
        log(f"cascade off: {choice.reason}")
    return out


def passes_gate(
    row: dict[str, Any], max_drop_points: float, min_cosine: float | None = None
) -> bool:
    """Whether a measured variant is within the bound: mean cosine >= ``min_cosine`` for
    an embedding row when that is given, else accuracy drop <= ``max_drop_points`` (the
    worst head's drop for a multi-head row)."""
    if min_cosine is not None and "cosine" in row:
        return bool(row["cosine"] >= min_cosine)
    return bool(row["accuracy_drop_points"] <= max_drop_points)


# What "fastest" means when a variant is chosen: batch-32 throughput (texts/s, for
# streams scored in batches) or the median single-text latency (for interactive
# requests, which reach the model one or a few at a time).
SPEED_CRITERIA = ("throughput", "latency")


def _check_speed(speed: str) -> None:
    if speed not in SPEED_CRITERIA:
        raise ConfigError("speed", speed, f"must be one of {', '.join(SPEED_CRITERIA)}")


def _speed_key(speed: str) -> Any:
    if speed == "throughput":
        return lambda row: row["throughput_batch32"]
    return lambda row: -row["p50_ms_batch1"]


def choose_variant(
    rows: dict[str, dict[str, Any]],
    max_drop_points: float,
    *,
    min_cosine: float | None = None,
    prefer: str | None = None,
    speed: str = "throughput",
) -> str:
    """The fastest variant within the gate (see ``passes_gate``): the highest batch-32
    throughput, or with ``speed="latency"`` the lowest median single-text latency.

    With ``prefer``, that variant wins whenever it passes the gate (a timing race on a
    busy machine must not swap a known-fast variant for a slower one). The fp32
    baseline (drop 0, cosine 1) always qualifies, so there is always an answer.

    Raises:
        ConfigError: ``speed`` is not one of ``SPEED_CRITERIA``.
    """
    _check_speed(speed)
    allowed = {
        n: r
        for n, r in rows.items()
        if n == BASELINE or passes_gate(r, max_drop_points, min_cosine)
    }
    if not allowed:  # pragma: no cover - the baseline has drop 0
        raise KeelError("no variant is within the accuracy limit")
    if prefer is not None and prefer in allowed:
        return prefer
    key = _speed_key(speed)
    return max(allowed, key=lambda n: key(allowed[n]))


def compress(
    model_dir: str | Path,
    out_dir: str | Path,
    val: Any,
    max_drop_points: float = 0.5,
    *,
    train_texts: Sequence[str] | None = None,
    student_layers: Sequence[int] = (3,),
    distill_config: DistillConfig | None = None,
    work_dir: str | Path | None = None,
    num_threads: int | None = None,
    latency_inputs: int = 64,
    min_cosine: float | None = None,
    candidates: Sequence[str] | None = None,
    prefer: str | None = None,
    speed: str = "throughput",
    static_train: Any = None,
    log: Any = print,
) -> Path:
    """Build and measure every variant, keep the fastest within the accuracy gate.

    The chosen variant is copied to ``out_dir`` as a normal artifact whose
    ``keel.json`` records the measured accuracy, latency and size (``load_predictor``
    loads it). The full report stays in ``work_dir`` (default ``<out_dir>-variants``).
    A variant that breaks the bound is never chosen; the fp32 model always passes.

    Args:
        model_dir: the fp32 torch artifact.
        out_dir: where the chosen variant is copied (replaced if present).
        val: ``LabelledTexts`` (accuracy of the default head), ``{head: LabelledTexts}``
            (accuracy of every head; the worst head's drop counts) or plain held-out
            texts (mean cosine of the embeddings to fp32's).
        max_drop_points: the largest accuracy drop allowed, in points (x100).
        min_cosine: for an embedding model, the smallest mean cosine to the fp32
            embeddings allowed (replaces ``max_drop_points`` for such rows).
        candidates: build and measure only these variants (plus fp32).
        prefer: serve this variant whenever it passes the gate.
        speed: what "fastest" means: ``"throughput"`` (batch 32, for models that score
            batches) or ``"latency"`` (median single-text latency, for a model behind
            interactive requests).
        static_train: labelled training rows: the report also measures the static tier
            and its cascade (see ``compression_report``); they are never the chosen
            variant.

    Returns:
        ``out_dir``.

    Raises:
        ConfigError: a bound out of range, an unknown ``speed``, or ``val`` of no
            supported shape.
    """
    if max_drop_points < 0:
        raise ConfigError("max_drop_points", max_drop_points, "must be >= 0")
    if min_cosine is not None and not -1.0 <= min_cosine <= 1.0:
        raise ConfigError("min_cosine", min_cosine, "must be in [-1, 1]")
    _check_speed(speed)
    gate_data(val)  # reject a bad ``val`` before minutes of exports
    target = Path(out_dir)
    work = Path(work_dir) if work_dir is not None else target.with_name(target.name + "-variants")
    report = compression_report(
        model_dir,
        val,
        work,
        train_texts=train_texts,
        student_layers=student_layers,
        distill_config=distill_config,
        num_threads=num_threads,
        latency_inputs=latency_inputs,
        candidates=candidates,
        static_train=static_train,
        log=log,
    )
    # The static tier and its cascade are reported, not served by ``compress``.
    rows = {n: r for n, r in report["variants"].items() if "tier" not in r}
    for name, candidate in rows.items():
        if name != BASELINE and not passes_gate(candidate, max_drop_points, min_cosine):
            log(f"rejected: {name} (drop {candidate['accuracy_drop_points']} points)")
    chosen = choose_variant(
        rows, max_drop_points, min_cosine=min_cosine, prefer=prefer, speed=speed
    )
    row = rows[chosen]
    log(
        f"chosen: {chosen} ({row['speedup']}x at batch 32, p50 {row['p50_ms_batch1']:.1f} ms "
        f"at batch 1, drop {row['accuracy_drop_points']} points; fastest by {speed})"
    )
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(Path(row["path"]), target)
    meta_path = target / "keel.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["latency_ms"] = {
        "p50_batch1": row["p50_ms_batch1"],
        "p95_batch1": row["p95_ms_batch1"],
        "throughput_batch32_per_s": row["throughput_batch32"],
    }
    metrics = dict(meta.get("metrics") or {})
    metrics.update(
        {
            "val_accuracy": row["accuracy"],
            "val_accuracy_drop_points": row["accuracy_drop_points"],
            "speedup_vs_fp32": row["speedup"],
        }
    )
    if "cosine" in row:
        metrics["val_cosine_to_fp32"] = row["cosine"]
    for head, value in (row.get("head_accuracy") or {}).items():
        metrics[f"{head}.val_accuracy"] = value
        metrics[f"{head}.val_accuracy_drop_points"] = row["head_drop_points"][head]
    meta["metrics"] = metrics
    meta["size_mb"] = artifact_size_mb(target)
    config = dict(meta.get("config") or {})
    config["compress"] = {
        "chosen": chosen,
        "max_drop_points": max_drop_points,
        "min_cosine": min_cosine,
        "speed": speed,
        "report": report["report"],
    }
    meta["config"] = config
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return target
