"""Compressed variants agree with the fp32 model; exports round-trip through load_predictor.

The source model is MiniLM cut to 2 layers with a nearest-centroid head (fast, real
weights). Agreement thresholds are stated per variant in ``AGREEMENT``.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from keel import ArtifactError, ConfigError
from keel.compression import (
    SERVING_VARIANT,
    DistillConfig,
    choose_variant,
    compress,
    compress_for_serving,
    distill_classifier,
    drop_layers,
    export_onnx,
    parse_keep,
    prune_ffn,
    quantize_dynamic_int8,
)
from keel.inference import load_predictor
from tests.unit.core._serve_fixtures import EXAMPLES, all_example_texts, build_classifier_artifact

# Share of the 16 example texts whose top label must equal the fp32 model's.
AGREEMENT = {
    "onnx-fp32": 1.0,
    "onnx-int8": 0.9,
    "onnx-int8-static": 0.75,
    "torch-int8": 0.85,
}
# Mean cosine between a variant's embeddings and fp32's.
MIN_COSINE = {"onnx-fp32": 0.9999, "onnx-int8": 0.95, "onnx-int8-static": 0.85, "torch-int8": 0.9}


@pytest.fixture(scope="session")
def small_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_classifier_artifact(
        tmp_path_factory.getbasetemp() / "serve-small-2layer", multi_head=True, layers=2
    )


@pytest.fixture(scope="session")
def variants(small_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("variants")
    texts, _ = all_example_texts()
    return {
        "onnx-fp32": export_onnx(small_artifact, root / "onnx-fp32"),
        "onnx-int8": export_onnx(small_artifact, root / "onnx-int8", quantize="dynamic"),
        "onnx-int8-static": export_onnx(
            small_artifact, root / "onnx-int8-static", quantize="static", calibration_texts=texts
        ),
        "torch-int8": quantize_dynamic_int8(small_artifact, root / "torch-int8"),
    }


@pytest.mark.parametrize("name", list(AGREEMENT))
def test_variant_agrees_with_fp32(
    name: str, small_artifact: Path, variants: dict[str, Path]
) -> None:
    texts, _ = all_example_texts()
    reference = load_predictor(small_artifact)
    variant = load_predictor(variants[name])
    agreement = np.mean(
        np.array(variant.predict_labels(texts)) == np.array(reference.predict_labels(texts))
    )
    assert agreement >= AGREEMENT[name], f"{name}: agreement {agreement:.2f} < {AGREEMENT[name]}"
    cosine = float(np.mean((variant.embed(texts) * reference.embed(texts)).sum(axis=1)))
    assert cosine >= MIN_COSINE[name], f"{name}: cosine {cosine:.4f}"


@pytest.mark.parametrize("name", list(AGREEMENT))
def test_export_round_trips_through_load_predictor(name: str, variants: dict[str, Path]) -> None:
    folder = variants[name]
    meta = json.loads((folder / "keel.json").read_text())
    assert meta["variant"] == name and meta["size_mb"] > 0
    predictor = load_predictor(folder)
    assert predictor.backend == ("onnx" if name.startswith("onnx") else "torch")
    assert predictor.labels == list(EXAMPLES)
    assert predictor.heads == ["default", "sentiment"]
    assert set(predictor.classify_heads(["where is my card"])) == {"default", "sentiment"}
    if name.startswith("onnx"):
        assert (folder / "model.onnx").is_file()
        assert not (folder / "encoder" / "model.safetensors").exists()


def test_onnx_export_fuses_attention(variants: dict[str, Path]) -> None:
    """Eager-attention tracing lets onnxruntime fuse attention; SDPA's trace would leave
    an unfused masked softmax of ``Where`` / ``IsNaN`` / ``Softmax`` nodes."""
    import onnx

    def op_types(name: str) -> set[str]:
        graph = onnx.load(str(variants[name] / "model.onnx")).graph
        return {node.op_type for node in graph.node}

    assert "Attention" in op_types("onnx-fp32")
    assert "QAttention" in op_types("onnx-int8")
    assert not {"IsNaN", "Softmax"} & op_types("onnx-int8")


def test_int8_variants_are_smaller(small_artifact: Path, variants: dict[str, Path]) -> None:
    fp32 = json.loads((variants["onnx-fp32"] / "keel.json").read_text())["size_mb"]
    int8 = json.loads((variants["onnx-int8"] / "keel.json").read_text())["size_mb"]
    assert int8 < 0.35 * fp32


def test_onnx_predictor_serves_on_its_own_backend_only(variants: dict[str, Path]) -> None:
    with pytest.raises(ArtifactError, match="onnx"):
        load_predictor(variants["onnx-int8"], backend="torch")


def test_static_quantization_needs_calibration_texts(small_artifact: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="calibration_texts"):
        export_onnx(small_artifact, tmp_path / "x", quantize="static")
    with pytest.raises(ConfigError, match="quantize"):
        export_onnx(small_artifact, tmp_path / "x", quantize="int4")


def test_parse_keep_specs() -> None:
    assert parse_keep("bottom:3", 6) == [0, 1, 2]
    assert parse_keep("every:2", 6) == [1, 3, 5]
    assert parse_keep("spread:3", 6) == [0, 2, 5]
    assert parse_keep([0, 5], 6) == [0, 5]
    with pytest.raises(ConfigError, match="keep"):
        parse_keep("top:2", 6)
    with pytest.raises(ConfigError, match="keep"):
        parse_keep([7], 6)


def test_drop_layers_and_ffn_pruning_give_loadable_smaller_models(
    small_artifact: Path, tmp_path: Path
) -> None:
    texts, _ = all_example_texts()
    dropped = drop_layers(
        small_artifact,
        tmp_path / "drop",
        keep="bottom:1",
        recovery_texts=texts,
        recovery_steps=2,
        show_progress=False,
    )
    config = json.loads((dropped / "encoder" / "config.json").read_text())
    assert config["num_hidden_layers"] == 1
    assert load_predictor(dropped).classify(texts).shape == (len(texts), len(EXAMPLES))
    pruned = prune_ffn(
        small_artifact, tmp_path / "ffn", 0.5, importance_texts=texts, show_progress=False
    )
    assert json.loads((pruned / "encoder" / "config.json").read_text())["intermediate_size"] == 768
    reference = load_predictor(small_artifact).predict_labels(texts)
    agreement = np.mean(
        np.array(load_predictor(pruned).predict_labels(texts)) == np.array(reference)
    )
    assert agreement >= 0.5, f"FFN pruning to 50% without recovery kept {agreement:.2f} agreement"


def test_distilled_student_learns_the_teacher(small_artifact: Path, tmp_path: Path) -> None:
    texts, _ = all_example_texts()
    student = distill_classifier(
        small_artifact,
        texts * 4,
        tmp_path / "student",
        student_layers=1,
        config=DistillConfig(epochs=4, batch_size=16, learning_rate=2e-4, show_progress=False),
    )
    meta = json.loads((student / "keel.json").read_text())
    assert meta["variant"] == "student-L1"
    history = meta["config"]["compression"][-1]
    assert history["steps"] == 16
    teacher = load_predictor(small_artifact).predict_labels(texts)
    agreement = np.mean(
        np.array(load_predictor(student).predict_labels(texts)) == np.array(teacher)
    )
    assert agreement >= 0.75, f"student agrees with its teacher on {agreement:.2f} of the examples"


def test_a_student_learns_given_targets_and_can_be_recorded_as_the_parent(
    small_artifact: Path, tmp_path: Path
) -> None:
    """``targets`` replace the teacher's logits (here: every label shifted by one, which
    the teacher never says), rows of empty texts are dropped with them, and
    ``as_parent`` records the student as an fp32 artifact that compression starts from."""
    texts, _ = all_example_texts()
    teacher = load_predictor(small_artifact)
    labels = list(teacher.labels)  # the default head's; the sentiment head keeps its own
    shifted = [labels[(labels.index(y) + 1) % len(labels)] for y in teacher.predict_labels(texts)]
    rows = texts * 4 + [""]
    logits = np.zeros((len(rows), len(labels)), dtype=np.float32)
    for i, label in enumerate(shifted * 4):
        logits[i, labels.index(label)] = 8.0
    sentiment = teacher.logits(rows, head="sentiment")
    student = distill_classifier(
        small_artifact,
        rows,
        tmp_path / "student",
        student_layers=1,
        config=DistillConfig(epochs=6, batch_size=16, learning_rate=5e-4, show_progress=False),
        targets={"default": logits, "sentiment": sentiment},
        as_parent=True,
    )
    meta = json.loads((student / "keel.json").read_text())
    assert meta["variant"] == "fp32"
    assert meta["config"]["compression"][-1]["distilled_student"] == "L1"
    learned = np.mean(np.array(load_predictor(student).predict_labels(texts)) == np.array(shifted))
    assert learned >= 0.75, f"the student follows the given targets on {learned:.2f}"
    with pytest.raises(ConfigError, match="targets"):
        distill_classifier(small_artifact, rows, tmp_path / "bad", targets={"default": logits[:-2]})
    with pytest.raises(ConfigError, match="targets"):
        distill_classifier(small_artifact, rows, tmp_path / "bad", targets={"default": logits})
    with pytest.raises(ConfigError, match="one column per label"):
        distill_classifier(
            small_artifact,
            rows,
            tmp_path / "bad",
            targets={"default": logits[:, :-1], "sentiment": sentiment},
        )


def test_compress_picks_the_fastest_variant_within_the_drop(
    small_artifact: Path, tmp_path: Path
) -> None:
    texts, labels = all_example_texts()
    val = SimpleNamespace(texts=texts, labels=labels)  # what keel.data.LabelledTexts provides
    out = compress(
        small_artifact,
        tmp_path / "best",
        val,
        max_drop_points=100.0,
        latency_inputs=8,
        log=lambda _: None,
    )
    report = json.loads((tmp_path / "best-variants" / "compression_report.json").read_text())
    rows = report["variants"]
    assert set(rows) == {"fp32", "torch-int8", "onnx-fp32", "onnx-int8"}
    assert rows["fp32"]["accuracy"] == 1.0 and rows["fp32"]["accuracy_drop_points"] == 0.0
    assert (tmp_path / "best-variants" / "compression_report.png").stat().st_size > 0
    meta = json.loads((out / "keel.json").read_text())
    chosen = meta["config"]["compress"]["chosen"]
    assert chosen == max(rows, key=lambda n: rows[n]["throughput_batch32"])
    assert meta["config"]["compress"]["speed"] == "throughput"
    assert meta["latency_ms"]["p95_batch1"] == rows[chosen]["p95_ms_batch1"]
    assert load_predictor(out).predict_labels(texts) == load_predictor(
        rows[chosen]["path"]
    ).predict_labels(texts)


def test_choose_variant_respects_the_accuracy_limit() -> None:
    rows = {
        "fp32": {"accuracy_drop_points": 0.0, "throughput_batch32": 100.0},
        "fast-but-bad": {"accuracy_drop_points": 2.0, "throughput_batch32": 900.0},
        "good": {"accuracy_drop_points": 0.4, "throughput_batch32": 400.0},
    }
    assert choose_variant(rows, 0.5) == "good"
    assert choose_variant(rows, 5.0) == "fast-but-bad"
    assert choose_variant(rows, 0.0) == "fp32"


def test_choose_variant_ranks_by_latency_for_interactive_models() -> None:
    # Two variants tie on batch throughput; one answers a single text twice as fast.
    rows = {
        "fp32": {"accuracy_drop_points": 0.0, "throughput_batch32": 542.0, "p50_ms_batch1": 11.2},
        "onnx-fp32": {
            "accuracy_drop_points": 0.0,
            "throughput_batch32": 538.0,
            "p50_ms_batch1": 5.9,
        },
        "onnx-int8": {
            "accuracy_drop_points": 2.0,
            "throughput_batch32": 856.0,
            "p50_ms_batch1": 3.0,
        },
    }
    assert choose_variant(rows, 1.0) == "fp32"
    assert choose_variant(rows, 1.0, speed="latency") == "onnx-fp32"
    assert choose_variant(rows, 2.0, speed="latency") == "onnx-int8"
    with pytest.raises(ConfigError, match="speed"):
        choose_variant(rows, 1.0, speed="fastest")


def test_encoder_artifacts_are_distilled_on_embeddings(
    small_artifact: Path, tmp_path: Path
) -> None:
    import shutil

    encoder = tmp_path / "encoder-artifact"
    shutil.copytree(small_artifact / "encoder", encoder / "encoder")
    meta = json.loads((small_artifact / "keel.json").read_text())
    meta.update(task="encoder", labels=[], heads={})
    (encoder / "keel.json").write_text(json.dumps(meta))
    texts, _ = all_example_texts()
    student = distill_classifier(
        encoder,
        texts * 2,
        tmp_path / "encoder-student",
        student_layers=1,
        config=DistillConfig(epochs=3, batch_size=16, learning_rate=2e-4, show_progress=False),
    )
    teacher_vectors = load_predictor(encoder).embed(texts)
    student_predictor = load_predictor(student)
    assert student_predictor.heads == []
    cosine = float(np.mean((student_predictor.embed(texts) * teacher_vectors).sum(axis=1)))
    assert cosine >= 0.8, f"student embeddings have mean cosine {cosine:.3f} to the teacher's"


def test_head_refit_moves_an_int8_model_towards_the_teacher(
    small_artifact: Path, variants: dict[str, Path], tmp_path: Path
) -> None:
    import shutil

    from keel.compression import refit_heads, teacher_logits

    texts, _ = all_example_texts()
    targets = teacher_logits(small_artifact, texts)
    copy = tmp_path / "refit"
    shutil.copytree(variants["onnx-int8-static"], copy)
    teacher_probs = load_predictor(small_artifact).classify_heads(texts)

    def mean_kl(folder: Path) -> float:
        probs = load_predictor(folder).classify_heads(texts)
        return float(
            np.mean(
                [
                    np.sum(
                        teacher_probs[h]
                        * (np.log(teacher_probs[h] + 1e-9) - np.log(probs[h] + 1e-9)),
                        axis=1,
                    ).mean()
                    for h in teacher_probs
                ]
            )
        )

    before = mean_kl(copy)
    refit_heads(copy, texts, targets, steps=100)
    after = mean_kl(copy)
    assert after < before, f"KL to the teacher went from {before:.5f} to {after:.5f}"
    assert json.loads((copy / "keel.json").read_text())["variant"] == "onnx-int8-static+refit"


def _sentiment_val() -> SimpleNamespace:
    from tests.unit.core._serve_fixtures import SENTIMENT

    texts = [t for label in SENTIMENT for t in SENTIMENT[label]]
    labels = [label for label in SENTIMENT for _ in SENTIMENT[label]]
    return SimpleNamespace(texts=texts, labels=labels)


def test_multi_head_gate_refuses_a_variant_that_breaks_one_head(
    small_artifact: Path, variants: dict[str, Path], tmp_path: Path
) -> None:
    import shutil

    from keel.compression import measure_variants
    from keel.models import read_head_tensors, write_head_tensors

    texts, labels = all_example_texts()
    val = {"default": SimpleNamespace(texts=texts, labels=labels), "sentiment": _sentiment_val()}
    # An int8 variant whose topic head is intact but whose sentiment head is inverted.
    broken = tmp_path / "broken-sentiment"
    shutil.copytree(variants["onnx-int8"], broken)
    weight, bias = read_head_tensors(broken / "head-sentiment.safetensors")
    write_head_tensors(broken / "head-sentiment.safetensors", -weight, -bias)
    rows = measure_variants(
        {"fp32": small_artifact, "broken": broken}, val, latency_inputs=4, log=lambda _: None
    )
    assert rows["broken"]["head_drop_points"]["sentiment"] == 100.0
    assert rows["broken"]["accuracy_drop_points"] == 100.0  # the worst head counts
    assert rows["broken"]["head_drop_points"]["default"] <= 25.0
    assert choose_variant(rows, max_drop_points=50.0, prefer="broken") == "fp32"


def test_compress_gates_every_head_of_a_multi_head_model(
    small_artifact: Path, tmp_path: Path
) -> None:
    texts, labels = all_example_texts()
    val = {"default": SimpleNamespace(texts=texts, labels=labels), "sentiment": _sentiment_val()}
    out = compress(
        small_artifact,
        tmp_path / "served",
        val,
        max_drop_points=30.0,
        candidates=["onnx-int8"],
        prefer="onnx-int8",
        latency_inputs=4,
        log=lambda _: None,
    )
    report = json.loads((tmp_path / "served-variants" / "compression_report.json").read_text())
    rows = report["variants"]
    assert set(rows) == {"fp32", "onnx-int8"}
    assert set(rows["onnx-int8"]["head_drop_points"]) == {"default", "sentiment"}
    meta = json.loads((out / "keel.json").read_text())
    chosen = meta["config"]["compress"]["chosen"]
    assert all(drop <= 30.0 for drop in rows[chosen]["head_drop_points"].values())
    if max(rows["onnx-int8"]["head_drop_points"].values()) <= 30.0:
        assert chosen == "onnx-int8"  # the fast variant serves whenever it passes
    assert "sentiment.val_accuracy" in meta["metrics"]


@pytest.fixture(scope="session")
def encoder_artifact(small_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import shutil

    encoder = tmp_path_factory.mktemp("gate") / "encoder-artifact"
    shutil.copytree(small_artifact / "encoder", encoder / "encoder")
    meta = json.loads((small_artifact / "keel.json").read_text())
    meta.update(task="encoder", labels=[], heads={})
    (encoder / "keel.json").write_text(json.dumps(meta))
    return encoder


def test_embedding_gate_refuses_int8_below_the_cosine_bound(
    encoder_artifact: Path, tmp_path: Path
) -> None:
    texts, _ = all_example_texts()
    out = compress(
        encoder_artifact,
        tmp_path / "strict",
        texts,  # plain held-out texts: the cosine gate
        min_cosine=1.0,  # only an exact copy of the fp32 embeddings passes
        candidates=["onnx-int8"],
        prefer="onnx-int8",
        latency_inputs=4,
        log=lambda _: None,
    )
    meta = json.loads((out / "keel.json").read_text())
    rows = json.loads((tmp_path / "strict-variants" / "compression_report.json").read_text())[
        "variants"
    ]
    assert rows["onnx-int8"]["cosine"] < 1.0
    assert meta["config"]["compress"]["chosen"] == "fp32"
    assert load_predictor(out).variant == "fp32"


def test_embedding_gate_keeps_int8_within_the_cosine_bound(
    encoder_artifact: Path, tmp_path: Path
) -> None:
    texts, _ = all_example_texts()
    out = compress(
        encoder_artifact,
        tmp_path / "served",
        texts,
        min_cosine=0.9,
        candidates=["onnx-int8"],
        prefer="onnx-int8",
        latency_inputs=4,
        log=lambda _: None,
    )
    meta = json.loads((out / "keel.json").read_text())
    assert meta["config"]["compress"]["chosen"] == "onnx-int8"
    assert meta["metrics"]["val_cosine_to_fp32"] >= 0.9
    vectors = load_predictor(out).embed(texts[:2])
    assert vectors.shape == (2, 384)


def test_compress_for_serving_prunes_the_measured_copies_and_names_the_served_variant(
    small_artifact: Path, tmp_path: Path
) -> None:
    texts, labels = all_example_texts()
    val = SimpleNamespace(texts=texts, labels=labels)
    served = compress_for_serving(
        small_artifact,
        tmp_path / "served",
        val,
        max_drop_points=100.0,  # every variant passes: the preferred int8 one serves
        work_dir=tmp_path / "work",
        latency_inputs=4,
        log=lambda _: None,
    )
    meta = json.loads((tmp_path / "served" / "keel.json").read_text())
    assert served.path == tmp_path / "served"
    assert served.chosen == meta["config"]["compress"]["chosen"] == SERVING_VARIANT
    assert served.metrics == meta["metrics"]
    assert not (tmp_path / "work" / "variants").exists()  # the measured copies are gone
    assert served.report == tmp_path / "work" / "compression_report.json"
    assert set(json.loads(served.report.read_text())["variants"]) == {"fp32", SERVING_VARIANT}
    assert load_predictor(served.path).variant == SERVING_VARIANT


def test_compress_for_serving_falls_back_to_fp32_and_can_keep_the_measured_copies(
    encoder_artifact: Path, tmp_path: Path
) -> None:
    texts, _ = all_example_texts()
    served = compress_for_serving(
        encoder_artifact,
        tmp_path / "served",
        texts,
        min_cosine=1.0,  # only an exact copy of the fp32 embeddings passes
        keep_measured=True,
        latency_inputs=4,
        log=lambda _: None,
    )
    meta = json.loads((served.path / "keel.json").read_text())
    assert served.chosen == meta["config"]["compress"]["chosen"] == "fp32"
    assert served.metrics["val_cosine_to_fp32"] == meta["metrics"]["val_cosine_to_fp32"]
    assert (tmp_path / "served-variants" / "variants" / SERVING_VARIANT / "keel.json").is_file()
    assert served.report == tmp_path / "served-variants" / "compression_report.json"


def test_compress_rejects_a_val_of_no_supported_shape(small_artifact: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="val"):
        compress(small_artifact, tmp_path / "x", 42, log=lambda _: None)
    with pytest.raises(ConfigError, match="min_cosine"):
        compress(small_artifact, tmp_path / "x", ["a text"], min_cosine=2.0, log=lambda _: None)
    with pytest.raises(ConfigError, match="speed"):
        compress(small_artifact, tmp_path / "x", ["a text"], speed="fastest", log=lambda _: None)


def test_report_adds_the_static_tier_and_its_cascade(small_artifact: Path, tmp_path: Path) -> None:
    from keel.compression import StaticDistillConfig, compression_report

    texts, labels = all_example_texts()
    val = {"default": SimpleNamespace(texts=texts, labels=labels), "sentiment": _sentiment_val()}
    report = compression_report(
        small_artifact,
        val,
        tmp_path / "report",
        candidates=["onnx-int8"],
        static_train=val,
        # A capped vocabulary keeps the test quick; the default distils every token.
        static_config=StaticDistillConfig(max_tokens=3000, show_progress=False),
        latency_inputs=4,
        log=lambda _: None,
    )
    rows = report["variants"]
    assert rows["static"]["tier"] == "static"
    assert set(rows["static"]["head_accuracy"]) == {"default", "sentiment"}
    cascades = [name for name, row in rows.items() if row.get("tier") == "cascade"]
    tier = json.loads(
        (tmp_path / "report" / "variants" / "static" / "static_tier.json").read_text()
    )
    assert tier["cascade"]["enabled"] == bool(cascades)
    for name in cascades:
        assert name == "cascade:onnx-int8"
        assert 0.0 <= rows[name]["static_share"] <= 1.0
        assert set(rows[name]["thresholds"]) == {"default", "sentiment"}
    assert Path(report["plot"]).is_file()
    # Reported, never chosen: compress picks among the artifact variants only.
    assert choose_variant({k: v for k, v in rows.items() if "tier" not in v}, 100.0) in rows
