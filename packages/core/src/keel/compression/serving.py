"""``compress_for_serving``: the one way an app picks the variant it serves after training.

The apps, and the bench's production recipe, serve the ONNX int8 export of a trained
model only when it passes the accuracy (or cosine) gate, else the fp32 model. This
module runs ``compress`` with that single candidate, drops the measured copies of the
variants (the chosen one is copied to ``out_dir``; the report stays) and reads the
chosen variant's name back from the served ``keel.json``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.compression.report import BASELINE, REPORT_FILE, compress

#: The variant apps serve when it passes the gate.
SERVING_VARIANT = "onnx-int8"


@dataclass(frozen=True)
class ServedVariant:
    """What ``compress_for_serving`` put in place.

    Attributes:
        path: the served model folder (``out_dir``), a normal artifact.
        chosen: the served variant's name as its ``keel.json`` records it
            (``config.compress.chosen``): ``variant`` when it passed the gate, else
            ``fp32``.
        metrics: the served ``keel.json``'s metrics (validation accuracy and drop,
            ``val_cosine_to_fp32`` for an embedding model, per-head rows).
        report: the compression report (``compression_report.json``), which is kept.
    """

    path: Path
    chosen: str
    metrics: dict[str, Any]
    report: Path


def compress_for_serving(
    model_dir: str | Path,
    out_dir: str | Path,
    val: Any,
    max_drop_points: float = 0.5,
    *,
    min_cosine: float | None = None,
    variant: str = SERVING_VARIANT,
    work_dir: str | Path | None = None,
    keep_measured: bool = False,
    num_threads: int | None = None,
    latency_inputs: int = 16,
    log: Any = print,
) -> ServedVariant:
    """Serve ``variant`` of ``model_dir`` (ONNX int8 by default) when it passes the gate,
    else the fp32 model, in ``out_dir``; and say which one serves.

    Runs ``compress`` with ``variant`` as the only candidate and the preferred one, so a
    timing race never swaps it for fp32 once it is within the gate (see ``compress``
    for the shapes of ``val``, ``max_drop_points`` and ``min_cosine``). Then, unless
    ``keep_measured``, deletes the measured copies of the variants under
    ``<work_dir>/variants``: the chosen one is already copied to ``out_dir`` and they
    would double the folder's size; ``compression_report.json`` and its plot stay.

    Args:
        model_dir: the fp32 torch artifact.
        out_dir: where the served variant is copied (replaced if present).
        val: the gate's validation data (as ``compress`` takes it).
        max_drop_points: the largest accuracy drop allowed, in points.
        min_cosine: for an embedding model, the smallest mean cosine to fp32 allowed.
        variant: the one candidate measured against fp32.
        work_dir: where the report goes (default ``<out_dir>-variants``).
        keep_measured: keep the measured copies under ``<work_dir>/variants``.
        num_threads: threads for the measurements.
        latency_inputs: how many inputs the latency is timed on.
        log: where the progress lines go.

    Returns:
        The served folder, the chosen variant's name (read back from its
        ``keel.json``), its metrics and the report's path.

    Raises:
        ConfigError: a bound out of range, or ``val`` of no supported shape.
    """
    from keel.models.artifact import read_meta

    target = Path(out_dir)
    work = Path(work_dir) if work_dir is not None else target.with_name(target.name + "-variants")
    compress(
        model_dir,
        target,
        val,
        max_drop_points=max_drop_points,
        min_cosine=min_cosine,
        candidates=[variant],
        prefer=variant,
        work_dir=work,
        num_threads=num_threads,
        latency_inputs=latency_inputs,
        log=log,
    )
    if not keep_measured:
        shutil.rmtree(work / "variants", ignore_errors=True)
    meta = read_meta(target)
    chosen = str(meta.config.get("compress", {}).get("chosen", BASELINE))
    return ServedVariant(
        path=target, chosen=chosen, metrics=dict(meta.metrics), report=work / REPORT_FILE
    )
