"""Knowledge distillation: a teacher artifact -> a smaller (layer-dropped) student."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keel.compression._artifact_copy import (
    ENCODER_DIR,
    copy_encoder_without_weights,
    prepare_output,
    source_meta,
    write_derived_meta,
)
from keel.compression._student import (
    DistillConfig,
    load_heads_as_torch,
    save_torch_heads,
    train_student,
)
from keel.errors import ConfigError
from keel.inference._artifact import load_heads, read_serving_spec
from keel.models._prefixes import NO_PREFIXES, TextPrefixes, read_prefixes


def distill_into_student(
    teacher_dir: Path,
    student_model: Any,
    tokenizer: Any,
    texts: list[str],
    out_dir: Path,
    config: DistillConfig,
    student_prefixes: TextPrefixes = NO_PREFIXES,
    *,
    targets: Mapping[str, np.ndarray] | None = None,
    heads_from: Path | None = None,
) -> list[float]:
    """Train ``student_model`` (in place) on the teacher's outputs for ``texts``.

    The teacher predictor adds its own prefixes; ``student_prefixes`` (the student
    encoder's, e.g. e5's ``query: ``) are added to the texts the student reads.

    Classifier teachers: every head's logits are distilled and the student's heads
    (initialised from the teacher's, or from ``heads_from``'s) are written to
    ``out_dir``. ``targets`` gives those logits (one row per text, per head) instead of
    running the teacher. Encoder teachers: the pooled embedding is distilled. Returns
    the per-step losses.
    """
    spec = read_serving_spec(teacher_dir)
    teacher_heads = load_heads(teacher_dir, spec)
    head_names = list(teacher_heads)
    student_dim = int(student_model.config.hidden_size)
    embedding_target = None
    if targets is not None:
        widths = {name: len(head.labels) for name, head in teacher_heads.items()}
        logits = _given_targets(targets, widths, len(texts))
    else:
        teacher = _teacher_predictor(teacher_dir)
        logits = {name: teacher.logits(texts, head=name) for name in head_names}
        if not head_names:
            embedding_target = teacher.embed(texts)
    if embedding_target is not None and embedding_target.shape[1] != student_dim:
        raise ConfigError(
            "student_base",
            student_dim,
            f"embedding distillation needs the teacher's size {embedding_target.shape[1]}",
        )
    heads_source = teacher_dir
    if heads_from is not None:
        if read_serving_spec(heads_from).labels != spec.labels:
            raise ConfigError("heads_from", str(heads_from), "must have the teacher's labels")
        heads_source = heads_from
    heads = load_heads_as_torch(heads_source, head_names, dim=student_dim)
    losses = train_student(
        student_model,
        tokenizer,
        heads,
        student_prefixes.apply(texts),
        logits,
        normalize=spec.normalize,
        max_length=spec.max_length,
        config=config,
        embedding_target=embedding_target,
    )
    save_torch_heads(out_dir, heads)
    return losses


def _teacher_predictor(teacher_dir: Path) -> Any:
    from keel.inference import load_predictor
    from keel.inference._encoder_base import EncoderPredictor

    teacher = load_predictor(teacher_dir, batch_size=64)
    if not isinstance(teacher, EncoderPredictor):
        raise ConfigError(
            "teacher_dir", str(teacher_dir), "must be a classifier or encoder artifact"
        )
    return teacher


def _given_targets(
    targets: Mapping[str, np.ndarray], widths: Mapping[str, int], rows: int
) -> dict[str, np.ndarray]:
    """Check caller-supplied teacher logits: one matrix per teacher head (``widths``:
    head -> label count), one row per text and one column per label."""
    if not widths:
        raise ConfigError("targets", sorted(targets), "only classifier teachers take targets")
    if sorted(targets) != sorted(widths):
        raise ConfigError("targets", sorted(targets), f"must name the heads {list(widths)}")
    checked = {}
    for name, width in widths.items():
        matrix = np.asarray(targets[name], dtype=np.float32)
        if matrix.shape != (rows, width):
            raise ConfigError(
                "targets",
                name,
                f"needs one row per text and one column per label ({rows} x {width}), "
                f"got shape {matrix.shape}",
            )
        checked[name] = matrix
    return checked


def distill_classifier(
    teacher_dir: str | Path,
    train_texts: Sequence[str],
    out_dir: str | Path,
    student_layers: int = 3,
    *,
    student_base: str | Path | None = None,
    keep: str | Sequence[int] | None = None,
    config: DistillConfig | None = None,
    targets: Mapping[str, np.ndarray] | None = None,
    heads_from: str | Path | None = None,
    as_parent: bool = False,
) -> Path:
    """Distil a classifier (logits) or encoder (embeddings) artifact into a smaller student.

    The student is the teacher's own encoder with only ``student_layers`` layers
    (spread evenly, first and last kept), or the encoder of ``student_base`` (for
    example ``"minilm"`` under an all-mpnet teacher) cut the same way; its heads
    start from the teacher's. It is trained on the teacher's outputs for
    ``train_texts`` (no labels needed).

    Args:
        targets: the teacher's logits for ``train_texts``, per head (one row per
            text), when the caller already has them (cached, or mixed with gold
            labels); the teacher is then not run. Rows of empty texts are dropped
            with their texts.
        heads_from: an artifact with the teacher's labels whose heads start the
            student's (e.g. a linear probe on the student's own frozen encoder,
            when the teacher's heads live on another encoder's scale).
        as_parent: record the student as an fp32 torch artifact (``variant =
            "fp32"``, ``distilled_student = "L<n>"``), so ``compress`` and
            ``compression_report`` start from it as the served model's parent.

    Returns:
        ``out_dir``, a normal torch artifact (``variant = "student-L<n>"``, or
        ``"fp32"`` with ``as_parent``).
    """
    from keel.compression.pruning import drop_encoder_layers, parse_keep
    from keel.inference._loader import resolve_model_dir
    from keel.inference._torch_backend import load_tokenizer, load_torch_encoder

    if student_layers < 1:
        raise ConfigError("student_layers", student_layers, "must be >= 1")
    kept = [i for i, t in enumerate(train_texts) if isinstance(t, str) and t.strip()]
    texts = [str(train_texts[i]) for i in kept]
    if targets is not None:
        rows = len(train_texts)
        for name, matrix in targets.items():
            if len(matrix) != rows:
                raise ConfigError(
                    "targets", name, f"needs one row per train text ({rows}), got {len(matrix)}"
                )
        targets = {name: np.asarray(matrix)[kept] for name, matrix in targets.items()}
    if not texts:
        raise ConfigError("train_texts", len(train_texts), "needs non-empty texts")
    teacher = Path(teacher_dir)
    target = Path(out_dir)
    meta = source_meta(teacher)
    if meta.get("backend") != "torch":
        raise ConfigError("teacher_dir", str(teacher), "the teacher must be a torch artifact")
    student_encoder = teacher / ENCODER_DIR
    if student_base is not None:
        student_encoder = resolve_model_dir(student_base)
        if (student_encoder / ENCODER_DIR).is_dir():
            student_encoder = student_encoder / ENCODER_DIR
    model = load_torch_encoder(student_encoder)
    n_layers = int(model.config.num_hidden_layers)
    layers = parse_keep(keep if keep is not None else f"spread:{student_layers}", n_layers)
    drop_encoder_layers(model, layers)
    tokenizer = load_tokenizer(student_encoder)
    prepare_output(teacher, target)
    settings = config or DistillConfig()
    losses = distill_into_student(
        teacher,
        model,
        tokenizer,
        texts,
        target,
        settings,
        read_prefixes(student_encoder),
        targets=targets,
        heads_from=Path(heads_from) if heads_from is not None else None,
    )
    copy_encoder_without_weights(student_encoder, target / ENCODER_DIR)
    model.save_pretrained(str(target / ENCODER_DIR))
    depth = f"L{len(layers)}"
    write_derived_meta(
        target,
        meta,
        backend="torch",
        variant="fp32" if as_parent else f"student-{depth}",
        distilled_student=depth if as_parent else None,
        teacher=str(teacher),
        kept_layers=layers,
        epochs=settings.epochs,
        steps=len(losses),
        final_loss=round(losses[-1], 5) if losses else None,
        student_base=str(student_base) if student_base else None,
    )
    return target
