"""Export an artifact's encoder (+ mean pooling, + normalisation) to ONNX; int8 variants."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from enum import StrEnum
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
from keel.errors import ArtifactError, ConfigError
from keel.inference._artifact import ONNX_FILE
from keel.models._prefixes import read_prefixes

OPSET = 17


class OnnxQuantization(StrEnum):
    """How ``export_onnx`` quantizes: dynamic int8 (weights int8, activations on the fly)
    or static int8 (activation ranges calibrated on sample texts)."""

    DYNAMIC = "dynamic"
    STATIC = "static"


def _pooled_encoder(model: Any, normalize: bool) -> Any:
    import torch

    from keel.models._pooling import mean_pool

    class PooledEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            pooled = mean_pool(hidden, attention_mask)
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
            return pooled

    return PooledEncoder().eval()


def export_encoder_graph(encoder_dir: Path, onnx_file: Path, *, normalize: bool) -> None:
    """Trace ``encoder_dir`` (transformers encoder) + pooling to ``onnx_file`` (fp32).

    Graph inputs ``input_ids``, ``attention_mask``, ``token_type_ids`` ([batch, seq],
    int64); output ``sentence_embedding`` [batch, dim].

    The encoder is traced with eager attention: transformers' default (SDPA) traces to a
    masked-softmax pattern (``Where``/``IsNaN``) that onnxruntime's transformer optimizer
    does not recognise, so attention would stay a dozen separate nodes per layer. Eager
    attention is the same computation and fuses to ``Attention`` (``QAttention`` after
    dynamic int8).
    """
    import torch

    from keel.inference._torch_backend import load_tokenizer, load_torch_encoder

    model = load_torch_encoder(encoder_dir, attn_implementation="eager")
    tokenizer = load_tokenizer(encoder_dir)
    sample = tokenizer(
        ["a short example", "a second, somewhat longer example text"],
        padding=True,
        return_tensors="pt",
    )
    token_type_ids = sample.get("token_type_ids", torch.zeros_like(sample["input_ids"]))
    wrapper = _pooled_encoder(model, normalize)
    dynamic = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (sample["input_ids"], sample["attention_mask"], token_type_ids),
            str(onnx_file),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["sentence_embedding"],
            dynamic_axes={
                "input_ids": dynamic,
                "attention_mask": dynamic,
                "token_type_ids": dynamic,
                "sentence_embedding": {0: "batch"},
            },
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def optimize_transformer_graph(
    onnx_file: Path, out_file: Path, *, num_heads: int, hidden_size: int
) -> bool:
    """Fuse attention / LayerNorm / GELU with onnxruntime's transformer optimizer.

    Returns False (and leaves ``out_file`` unwritten) when the optimizer is unavailable.
    """
    try:
        from onnxruntime.transformers import optimizer
    except ImportError:
        return False
    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    optimized = optimizer.optimize_model(
        str(onnx_file),
        model_type="bert",
        num_heads=num_heads,
        hidden_size=hidden_size,
        opt_level=1,
        use_gpu=False,
    )
    optimized.save_model_to_file(str(out_file))
    return True


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization logs advice on the root logger; keep it out of our output."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_onnx_dynamic(onnx_file: Path, out_file: Path) -> None:
    """Dynamic int8: int8 weights for MatMul/Gather, activations quantized at run time."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_root_logger():
        quantize_dynamic(
            str(onnx_file),
            str(out_file),
            weight_type=QuantType.QInt8,
            per_channel=True,
            # Fused graphs hold com.microsoft ops that ONNX shape inference cannot type.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


class _TextCalibration:
    """onnxruntime ``CalibrationDataReader`` over tokenized sample texts."""

    def __init__(
        self, tokenizer: Any, texts: Sequence[str], max_length: int, batch_size: int = 16
    ) -> None:
        self._batches: Iterator[dict[str, np.ndarray]] = iter(
            self._tokenize(tokenizer, list(texts[i : i + batch_size]), max_length)
            for i in range(0, len(texts), batch_size)
        )

    @staticmethod
    def _tokenize(tokenizer: Any, texts: list[str], max_length: int) -> dict[str, np.ndarray]:
        batch = tokenizer(
            texts, padding=True, truncation=True, max_length=max_length, return_tensors="np"
        )
        ids = np.asarray(batch["input_ids"], dtype=np.int64)
        return {
            "input_ids": ids,
            "attention_mask": np.asarray(batch["attention_mask"], dtype=np.int64),
            "token_type_ids": np.asarray(
                batch.get("token_type_ids", np.zeros_like(ids)), dtype=np.int64
            ),
        }

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def rewind(self) -> None:  # pragma: no cover - part of onnxruntime's reader protocol
        raise NotImplementedError


def quantize_onnx_static(
    onnx_file: Path,
    out_file: Path,
    tokenizer: Any,
    calibration_texts: Sequence[str],
    max_length: int,
) -> None:
    """Static int8 (QDQ): activation ranges from ``calibration_texts``; per-channel weights.

    Only MatMul / Gather / Attention ops are quantized: LayerNorm and Softmax stay in
    float, which is where static int8 loses most accuracy on transformers.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(onnx_file), str(prepared), skip_symbolic_shape=True)
        with _quiet_root_logger():
            quantize_static(
                str(prepared),
                str(out_file),
                _TextCalibration(tokenizer, calibration_texts, max_length),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul", "Gather", "Attention"],
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
            )


def export_onnx(
    model_dir: str | Path,
    out_dir: str | Path,
    quantize: str | None = None,
    calibration_texts: Sequence[str] | None = None,
    *,
    optimize: bool = True,
) -> Path:
    """Export a torch artifact to an onnx artifact (``model.onnx`` + tokenizer + heads).

    Args:
        model_dir: a torch classifier or encoder artifact.
        out_dir: where the new artifact goes (``load_predictor`` loads it on onnxruntime).
        quantize: None (fp32), ``"dynamic"`` or ``"static"`` int8.
        calibration_texts: sample texts for ``"static"`` (a few hundred training texts).
        optimize: fuse attention / LayerNorm / GELU with onnxruntime's transformer
            optimizer before quantizing.

    Returns:
        ``out_dir``.

    Raises:
        ConfigError: unknown ``quantize``, or ``"static"`` without calibration texts.
        ArtifactError: the source cannot be exported.
    """
    source = Path(model_dir)
    target = Path(out_dir)
    mode: OnnxQuantization | None = None
    if quantize is not None:
        try:
            mode = OnnxQuantization(quantize)
        except ValueError:
            raise ConfigError("quantize", quantize, "use None, 'dynamic' or 'static'") from None
    if mode is OnnxQuantization.STATIC and not calibration_texts:
        raise ConfigError("calibration_texts", None, "static int8 needs sample texts to calibrate")
    meta = source_meta(source)
    if meta.get("backend") != "torch":
        raise ArtifactError(
            f"{source}: export needs a torch artifact (this one is {meta.get('backend')})"
        )
    encoder_dir = source / ENCODER_DIR
    prepare_output(source, target)
    copy_encoder_without_weights(encoder_dir, target / ENCODER_DIR)
    normalize = bool(meta.get("normalize", False))
    max_length = int(meta.get("max_length") or 128)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_encoder_graph(encoder_dir, fp32, normalize=normalize)
        graph = fp32
        if optimize:
            import json

            config = json.loads((encoder_dir / "config.json").read_text())
            fused = Path(tmp) / "fused.onnx"
            if optimize_transformer_graph(
                fp32,
                fused,
                num_heads=int(config["num_attention_heads"]),
                hidden_size=int(config["hidden_size"]),
            ):
                graph = fused
        final = target / ONNX_FILE
        if mode is OnnxQuantization.DYNAMIC:
            quantize_onnx_dynamic(graph, final)
        elif mode is OnnxQuantization.STATIC:
            from keel.inference._torch_backend import load_tokenizer

            quantize_onnx_static(
                fp32,
                final,
                load_tokenizer(encoder_dir),
                read_prefixes(encoder_dir).apply(list(calibration_texts or [])),
                max_length,
            )
        else:
            final.write_bytes(graph.read_bytes())
    variant = {
        None: "onnx-fp32",
        OnnxQuantization.DYNAMIC: "onnx-int8",
        OnnxQuantization.STATIC: "onnx-int8-static",
    }[mode]
    base_variant = str(meta.get("variant") or "fp32")
    if base_variant not in ("fp32", ""):
        variant = f"{base_variant}+{variant}"
    write_derived_meta(
        target,
        meta,
        backend="onnx",
        variant=variant,
        quantize=mode.value if mode else None,
        optimized=optimize,
    )
    return target
