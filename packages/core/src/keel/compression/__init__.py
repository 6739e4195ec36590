"""Compression: int8 quantization (torch, ONNX Runtime), layer / FFN pruning,
distillation, static-embedding tiers, the compression report, ``compress`` (pick the fastest good
variant) and ``compress_for_serving`` (the apps' gated ONNX int8 serving variant)."""

from keel.compression._student import DistillConfig
from keel.compression.distillation import distill_classifier
from keel.compression.head_refit import refit_heads, teacher_logits
from keel.compression.onnx_export import OnnxQuantization, export_onnx
from keel.compression.pruning import drop_layers, parse_keep, prune_ffn
from keel.compression.report import (
    SPEED_CRITERIA,
    choose_variant,
    compress,
    compression_report,
    gate_data,
    measure_variants,
    passes_gate,
    plot_report,
)
from keel.compression.serving import SERVING_VARIANT, ServedVariant, compress_for_serving
from keel.compression.static import (
    StaticDistillConfig,
    StaticTrainConfig,
    distill_static,
    train_static,
)
from keel.compression.static_tier import CascadeChoice, build_static_tier, choose_thresholds
from keel.compression.torch_quant import quantize_dynamic_int8

__all__ = [
    "SERVING_VARIANT",
    "SPEED_CRITERIA",
    "CascadeChoice",
    "DistillConfig",
    "OnnxQuantization",
    "ServedVariant",
    "StaticDistillConfig",
    "StaticTrainConfig",
    "build_static_tier",
    "choose_thresholds",
    "choose_variant",
    "compress",
    "compress_for_serving",
    "compression_report",
    "distill_classifier",
    "distill_static",
    "drop_layers",
    "export_onnx",
    "gate_data",
    "measure_variants",
    "parse_keep",
    "passes_gate",
    "plot_report",
    "prune_ffn",
    "quantize_dynamic_int8",
    "refit_heads",
    "teacher_logits",
    "train_static",
]
