"""Packed (padding-free) encoding gives the padded batch's embeddings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from keel import ConfigError
from keel.inference import EncoderPredictor, load_predictor
from keel.inference._torch_backend import TorchEncoderPredictor
from keel.models import mean_pool
from keel.models._packing import can_pack, forward_cost, pack_groups, packed_mean_pool


def tiny_bert() -> torch.nn.Module:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        type_vocab_size=2,
    )
    return BertModel(config).eval()


def spy_on_packing(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the number of texts of each pack the torch backend runs."""
    import keel.inference._torch_backend as backend

    calls: list[int] = []
    real = backend.packed_mean_pool

    def counting(model: Any, input_ids: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(input_ids))
        return real(model, input_ids, *args, **kwargs)

    monkeypatch.setattr(backend, "packed_mean_pool", counting)
    return calls


def test_forward_cost_prefers_packs_for_mixed_short_texts_and_padding_for_long_alike() -> None:
    d = 384
    # 16 queries of 5-40 tokens: one pack of 240 tokens vs padded half batches.
    assert forward_cost([(1, 240)], d) < forward_cost([(8, 14), (8, 40)], d)
    # 256 tweets of ~41 tokens, sorted: packs of 12 vs buckets padded to 43.
    packs = [(1, 492)] * 21 + [(1, 164)]
    assert forward_cost([(32, 43)] * 8, d) < forward_cost(packs, d)
    # Every call costs something beyond its tokens; no calls cost nothing.
    assert forward_cost([(1, 1)], d) > 1.0 and forward_cost([], d) == 0.0


def test_pack_groups_keep_order_cover_every_text_and_respect_the_budget() -> None:
    lengths = [5, 7, 3, 20, 1, 1, 9]
    packs = pack_groups(lengths, max_tokens=12)
    assert [i for pack in packs for i in pack] == list(range(len(lengths)))
    assert packs == [[0, 1], [2], [3], [4, 5, 6]]
    # A text longer than the budget is a pack of its own, never dropped.
    assert pack_groups([30], max_tokens=12) == [[0]]
    assert pack_groups([], max_tokens=12) == []


def test_packed_row_equals_the_padded_batch() -> None:
    model = tiny_bert()
    rng = np.random.default_rng(1)
    ids = [[1, *rng.integers(3, 50, size=n).tolist(), 2] for n in (0, 4, 11, 2)]
    types = [[0] * len(row) for row in ids]
    types[2] = [0] * 5 + [1] * (len(ids[2]) - 5)  # a text pair: second segment type 1
    width = max(map(len, ids))
    padded = torch.zeros(len(ids), width, dtype=torch.long)
    padded_types = torch.zeros_like(padded)
    mask = torch.zeros_like(padded)
    for row, (seq, seq_types) in enumerate(zip(ids, types, strict=True)):
        padded[row, : len(seq)] = torch.tensor(seq)
        padded_types[row, : len(seq)] = torch.tensor(seq_types)
        mask[row, : len(seq)] = 1
    with torch.inference_mode():
        hidden = model(
            input_ids=padded, token_type_ids=padded_types, attention_mask=mask
        ).last_hidden_state
        expected = mean_pool(hidden, mask)
        packed = packed_mean_pool(model, ids, types)
    assert packed.shape == expected.shape
    torch.testing.assert_close(packed, expected, atol=1e-5, rtol=1e-4)
    # Each text sees only its own tokens: alone, it gets the same vector.
    with torch.inference_mode():
        alone = packed_mean_pool(model, [ids[1]], [types[1]])
    torch.testing.assert_close(alone[0], expected[1], atol=1e-5, rtol=1e-4)


def test_packed_rejects_an_empty_text_and_only_bert_packs() -> None:
    from transformers import RobertaConfig, RobertaModel

    model = tiny_bert()
    with pytest.raises(ValueError, match="at least one token"):
        packed_mean_pool(model, [[1, 2], []])
    assert can_pack(model)
    roberta = RobertaModel(
        RobertaConfig(
            vocab_size=50,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=4,
            intermediate_size=64,
        )
    )
    assert not can_pack(roberta)  # positions offset by the padding index
    assert not can_pack(object())
    model.config.position_embedding_type = "relative_key"
    assert not can_pack(model)


def test_minilm_predictor_packs_batches_and_matches_padding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts = [
        "where is my card?",
        "I was charged twice for the same coffee this morning, please refund one of them",
        "hi",
        "How long does a transfer from a UK bank account take to arrive?",
    ]
    packed = load_predictor("minilm")
    padded = load_predictor("minilm")
    assert isinstance(packed, TorchEncoderPredictor) and isinstance(padded, EncoderPredictor)
    assert packed.packs_texts
    padded.packs_texts = False
    calls = spy_on_packing(monkeypatch)
    np.testing.assert_allclose(packed.embed(texts), padded.embed(texts), atol=1e-5)
    assert calls == [4]  # the four mixed-length queries ran as one pack
    # One text at a time runs the plain path; it agrees with its packed batch.
    np.testing.assert_allclose(packed.embed(texts[1:2])[0], packed.embed(texts)[1], atol=1e-5)
    # A negative budget is refused.
    with pytest.raises(ConfigError, match="pack_tokens"):
        TorchEncoderPredictor(
            packed.model,
            packed.tokenizer,
            heads={},
            max_length=128,
            normalize_features=True,
            pack_tokens=-1,
        )


def test_long_texts_of_one_length_run_padded_not_packed(monkeypatch: pytest.MonkeyPatch) -> None:
    predictor = load_predictor("minilm")
    assert isinstance(predictor, TorchEncoderPredictor) and predictor.packs_texts
    texts = [
        f"quarterly revenue {n} rose while margins fell across every segment " * 4
        for n in range(20)
    ]
    calls = spy_on_packing(monkeypatch)
    vectors = predictor.embed(texts)
    assert calls == []  # similar long texts: padding is cheaper than attention across packs
    predictor.packs_texts = False
    np.testing.assert_allclose(vectors, predictor.embed(texts), atol=1e-5)
