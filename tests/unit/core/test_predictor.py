"""The torch ``Predictor``: embeddings, heads, cache, thread safety and load errors."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from keel import ArtifactError, ConfigError, ModelNotFoundError
from keel.inference import EncoderPredictor, FakePredictor, Predictor, load_predictor
from keel.inference._encoder_base import pair_cosines
from keel.models import TextRole
from tests.unit.core._serve_fixtures import (
    EXAMPLES,
    SENTIMENT,
    all_example_texts,
    build_classifier_artifact,
)


@pytest.fixture(scope="session")
def multi_head_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_classifier_artifact(
        tmp_path_factory.getbasetemp() / "serve-multi-head", multi_head=True
    )


@pytest.fixture(scope="module")
def predictor(multi_head_artifact: Path) -> EncoderPredictor:
    loaded = load_predictor(multi_head_artifact, cache_size=64)
    assert isinstance(loaded, EncoderPredictor)
    return loaded


def test_embeddings_match_sentence_transformers(predictor: EncoderPredictor) -> None:
    from keel import load_sentence_encoder

    texts = ["where is my card?", "I need a refund for a double charge"]
    ours = predictor.embed(texts)
    reference = load_sentence_encoder("minilm").encode(texts, normalize_embeddings=True)
    assert ours.dtype == np.float32 and ours.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_classifier_heads_predict_their_examples(predictor: EncoderPredictor) -> None:
    texts, labels = all_example_texts()
    assert predictor.labels == list(EXAMPLES)
    assert predictor.heads == ["default", "sentiment"]
    probabilities = predictor.classify(texts)
    assert probabilities.shape == (len(texts), len(EXAMPLES))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert predictor.predict_labels(texts) == labels
    sentiment_texts = [t for label in SENTIMENT for t in SENTIMENT[label]]
    assert predictor.predict_labels(sentiment_texts, head="sentiment") == [
        label for label in SENTIMENT for _ in SENTIMENT[label]
    ]


def test_classify_heads_runs_the_encoder_once(multi_head_artifact: Path) -> None:
    loaded = load_predictor(multi_head_artifact)
    assert isinstance(loaded, EncoderPredictor)
    calls: list[int] = []
    original = loaded._encode

    def counting(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return original(texts)

    loaded._encode = counting  # type: ignore[method-assign]
    texts = ["my card never came", "thanks, great help"]
    by_head = loaded.classify_heads(texts)
    assert calls == [2]
    assert set(by_head) == {"default", "sentiment"}
    np.testing.assert_allclose(
        by_head["sentiment"], loaded.classify(texts, head="sentiment"), atol=1e-6
    )


def test_lru_cache_serves_repeated_texts(predictor: EncoderPredictor) -> None:
    predictor.cache.clear()
    first = predictor.embed(["cache me please"])
    hits_before = predictor.cache.hits
    second = predictor.embed(["cache me please"])
    assert predictor.cache.hits == hits_before + 1
    np.testing.assert_array_equal(first, second)


def test_is_cached_peeks_without_touching_the_cache(predictor: EncoderPredictor) -> None:
    predictor.cache.clear()
    assert not predictor.is_cached(["peek at me"])
    predictor.classify(["peek at me"])
    hits, misses = predictor.cache.hits, predictor.cache.misses
    assert predictor.is_cached(["peek at me"])
    assert not predictor.is_cached(["peek at me", "not seen yet"])
    assert (predictor.cache.hits, predictor.cache.misses) == (hits, misses)  # a peek
    # Passages are cached under their own prefix, when the encoder has one.
    as_passage = predictor.is_cached(["peek at me"], role=TextRole.PASSAGE)
    assert as_passage == (not predictor.prefixes.enabled)
    assert not predictor.is_cached("peek at me")  # a string is not a list of texts


def test_lru_cache_evicts_least_recently_used() -> None:
    from keel.inference import EmbeddingCache

    cache = EmbeddingCache(2)
    cache.put("a", np.ones(2))
    cache.put("b", np.ones(2))
    assert cache.get("a") is not None  # "a" is now the most recent
    cache.put("c", np.ones(2))
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 2


def test_concurrent_callers_get_their_own_results(predictor: EncoderPredictor) -> None:
    texts = [f"question number {i} about my card" for i in range(12)]
    expected = predictor.embed(texts)
    predictor.cache.clear()
    results: dict[int, np.ndarray] = {}

    def worker(i: int) -> None:
        results[i] = predictor.embed([texts[i]])[0]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i in range(len(texts)):
        np.testing.assert_allclose(results[i], expected[i], atol=1e-5)


def test_packaged_name_gives_an_embedding_only_predictor() -> None:
    base = load_predictor("minilm")
    assert isinstance(base, Predictor)
    assert base.dim == 384 and base.labels == [] and base.heads == []
    with pytest.raises(ArtifactError, match="no classification head"):
        base.classify(["hello"])


def test_score_pairs_ranks_the_related_passage_higher(predictor: EncoderPredictor) -> None:
    scores = predictor.score_pairs(
        [
            ("my card did not arrive", "card delivery takes 3 days"),
            ("my card did not arrive", "we sell cheese"),
        ]
    )
    assert scores.shape == (2,) and scores[0] > scores[1]


def test_load_errors_are_clear(tmp_path: Path, multi_head_artifact: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        load_predictor(tmp_path / "missing")
    with pytest.raises(ConfigError, match="backend"):
        load_predictor(multi_head_artifact, backend="tensorflow")
    with pytest.raises(ArtifactError, match="keel export"):
        load_predictor(multi_head_artifact, backend="onnx")
    (tmp_path / "keel.json").write_text("{not json")
    with pytest.raises(ArtifactError, match=r"keel\.json"):
        load_predictor(tmp_path)


def test_unknown_head_and_string_input_are_config_errors(predictor: EncoderPredictor) -> None:
    with pytest.raises(ConfigError, match="head"):
        predictor.classify(["x"], head="nope")
    with pytest.raises(ConfigError, match="texts"):
        predictor.embed("a single string")  # type: ignore[arg-type]


def test_fake_predictor_is_deterministic_and_keyword_aware() -> None:
    fake = FakePredictor(["card_arrival", "refund"], dim=16)
    assert isinstance(fake, Predictor)
    a = fake.embed(["where is my refund"])
    np.testing.assert_array_equal(a, FakePredictor(["x"], dim=16).embed(["where is my refund"]))
    assert fake.predict_labels(["i want a refund", "card arrival date"]) == [
        "refund",
        "card_arrival",
    ]
    np.testing.assert_allclose(fake.classify(["anything"]).sum(), 1.0, atol=1e-6)
    similar = fake.score_pairs(
        [("refund my card", "card refund"), ("refund my card", "weather today")]
    )
    assert similar[0] > similar[1]


def test_pair_cosines_embeds_each_side_once_and_accepts_no_pairs() -> None:
    fake = FakePredictor(["refund"], dim=16)
    assert pair_cosines([], fake.embed).shape == (0,) and fake.calls == 0
    pairs = [("refund my card", "card refund"), ("a", "a")]
    scores = pair_cosines(pairs, fake.embed)
    assert scores.dtype == np.float32 and fake.calls == 2
    assert scores[1] == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_array_equal(fake.score_pairs(pairs), scores)
    seconds: list[list[str]] = []

    def embed_second(texts: Sequence[str]) -> np.ndarray:
        seconds.append(list(texts))
        return fake.embed(texts)

    pair_cosines(pairs, fake.embed, embed_second)
    assert seconds == [["card refund", "a"]]


def test_text_classifier_artifact_serves_the_same_predictions(tmp_path: Path) -> None:
    from keel.data import LabelledTexts
    from keel.training import ClassifierConfig, TextClassifier, train_classifier

    texts, labels = all_example_texts()
    classifier: TextClassifier = train_classifier(
        LabelledTexts(texts, labels), ClassifierConfig(strategy="head", show_progress=False)
    )
    folder = classifier.save(tmp_path / "trained", measure_latency=False)
    served = load_predictor(folder)
    probe = ["has my card been sent", "give me my money back", "euro to dollar rate"]
    assert served.labels == classifier.labels
    np.testing.assert_allclose(served.classify(probe), classifier.predict_proba(probe), atol=1e-4)
    assert served.predict_labels(probe) == classifier.predict(probe)


def test_length_buckets_group_similar_lengths_and_cover_every_text() -> None:
    from keel.inference._encoder_base import length_buckets

    lengths = [10, 200, 12, 11, 190, 13, 9, 14, 15, 16, 8, 210]
    buckets = length_buckets(lengths, batch_size=64, min_bucket=4)
    assert sorted(i for bucket in buckets for i in bucket) == list(range(len(lengths)))
    assert [sorted(lengths[i] for i in b) for b in buckets] == [
        [8, 9, 10, 11, 12, 13, 14, 15, 16],
        [190, 200, 210],
    ]
    assert all(len(b) <= 2 for b in length_buckets(lengths, batch_size=2))
