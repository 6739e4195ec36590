"""``BatchTokenizer`` gives transformers' ids, type ids and mask without its call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from keel.inference._tokens import BatchTokenizer
from keel.inference._torch_backend import load_tokenizer
from keel.models import model_path

TEXTS = [
    "What can I do if my card still hasn't arrived after 2 weeks?",
    "",
    "ok",
    "   leading and trailing spaces   ",
    "Ünïcödé àccents, emoji 🙂 and tabs\tinside",
    "我的信用卡被拒了，怎么办？今天沪深300指数上涨2%。",
    "全角标点：ＡＢＣ１２３，测试！",
    # Longer than every max_length below: truncated, with the closing special token kept.
    " ".join(f"word{i} token{i}," for i in range(200)),
]


def hf_batch(tokenizer: Any, texts: list[str], max_length: int) -> dict[str, np.ndarray]:
    batch = tokenizer(
        texts, padding=True, truncation=True, max_length=max_length, return_tensors="np"
    )
    return {name: np.asarray(batch[name], dtype=np.int64) for name in batch}


@pytest.fixture(scope="module", params=["minilm", "me5-small"])
def tokenizer(request: pytest.FixtureRequest) -> Any:
    folder = Path(model_path(request.param))
    return load_tokenizer(folder / "encoder" if (folder / "encoder").is_dir() else folder)


@pytest.mark.parametrize("max_length", [8, 64, 512])
def test_padded_batch_equals_transformers_call(tokenizer: Any, max_length: int) -> None:
    ours = BatchTokenizer(tokenizer, max_length)
    assert ours.fast
    expected = hf_batch(tokenizer, TEXTS, max_length)
    got = ours.padded(TEXTS)
    assert set(got) == set(expected)
    for name, array in expected.items():
        assert got[name].dtype == np.int64
        np.testing.assert_array_equal(got[name], array, err_msg=name)
    # Truncated texts keep the budget.
    assert got["input_ids"].shape[1] <= max_length


def test_ids_equal_transformers_unpadded_ids_and_survive_repeated_calls(tokenizer: Any) -> None:
    ours = BatchTokenizer(tokenizer, 64)
    expected = tokenizer(TEXTS, truncation=True, max_length=64)
    for _ in range(2):  # the private backend keeps no state between batches
        ids, types = ours.ids(TEXTS)
        assert ids == list(expected["input_ids"])
        if "token_type_ids" in expected:
            assert types == list(expected["token_type_ids"])
        else:
            assert types is None
    # The caller's tokenizer is not reconfigured (it still pads when asked to).
    assert tokenizer(["a", "a longer text"], padding=True)["input_ids"][0][-1] == (
        tokenizer.pad_token_id
    )


def test_batch_tokenizer_falls_back_to_the_transformers_call_without_a_rust_backend(
    tokenizer: Any,
) -> None:
    class SlowTokenizer:
        """Only transformers' call API (no ``backend_tokenizer``)."""

        pad_token_id = tokenizer.pad_token_id
        model_input_names = tokenizer.model_input_names

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return tokenizer(*args, **kwargs)

    ours = BatchTokenizer(SlowTokenizer(), 16)
    assert not ours.fast
    expected = hf_batch(tokenizer, TEXTS, 16)
    got = ours.padded(TEXTS)
    for name, array in expected.items():
        np.testing.assert_array_equal(got[name], array, err_msg=name)
