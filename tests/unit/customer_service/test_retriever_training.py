"""``train-retriever``: pairs file loading, its errors, and a tiny end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from customer_service import engine, prepare
from customer_service.cli import main
from customer_service.config import Settings
from customer_service.retriever_training import (
    RetrieverOptions,
    read_retriever_manifest,
    sample_pairs,
    set_search_mode,
)
from keel.errors import DataError

PAIRS = [
    ("How do I block my card?", "Open the app, choose the card and tap Block."),
    ("Can I change my PIN?", "Yes: any cash machine of the bank can change your PIN."),
    ("What is the daily transfer limit?", "Transfers are limited to 5,000 a day."),
    ("How do I close my account?", "Visit a branch with an ID to close the account."),
]


def _printed_json(out: str) -> dict[str, Any]:
    """The JSON object the command prints last (training log lines come before it)."""
    result: dict[str, Any] = json.loads(out[out.rindex("{\n") :])
    return result


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_pairs_load_from_csv_and_jsonl(tmp_path: Path) -> None:
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text(
        "question,passage\n" + "".join(f'"{q}","{p}"\n' for q, p in PAIRS), encoding="utf-8"
    )
    assert engine.load_text_pairs(csv_file) == PAIRS
    jsonl = _write_jsonl(tmp_path / "pairs.jsonl", [{"text": q, "answer": p} for q, p in PAIRS])
    assert engine.load_text_pairs(jsonl, "text", "answer") == PAIRS


def test_pairs_errors_name_the_file_and_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match=rf"{empty}:1: empty file"):
        engine.load_text_pairs(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("question,passage\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"{header_only}: no data rows"):
        engine.load_text_pairs(header_only)
    missing = _write_jsonl(tmp_path / "missing.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(DataError, match=rf"{missing}:1: missing column 'passage'"):
        engine.load_text_pairs(missing)
    blank = tmp_path / "blank.csv"
    blank.write_text("question,passage\nq1,p1\nq2,\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"{blank}:3: empty"):
        engine.load_text_pairs(blank)
    with pytest.raises(DataError, match="file not found"):
        engine.load_text_pairs(tmp_path / "nope.csv")


def test_cli_reports_a_bad_pairs_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "pairs.csv"
    bad.write_text("q,passage\nhello,world\n", encoding="utf-8")
    code = main(["train-retriever", "--state-dir", str(tmp_path / "s"), "--pairs", str(bad)])
    assert code == 2
    assert f"{bad}:2: missing column 'question'" in capsys.readouterr().err


def test_sample_pairs_is_seeded_and_keeps_order() -> None:
    pairs = [(f"q{i}", f"p{i}") for i in range(50)]
    sample = sample_pairs(pairs, 10)
    assert sample == sample_pairs(pairs, 10)
    assert len(sample) == 10
    assert sample == sorted(sample, key=pairs.index)
    assert sample_pairs(pairs, None) == pairs
    with pytest.raises(ValueError, match="max_pairs"):
        RetrieverOptions(max_pairs=1)


def test_no_manifest_keeps_the_base_encoder(tmp_path: Path, monkeypatch: Any) -> None:
    loaded: list[str] = []
    monkeypatch.setattr(engine, "load_model", lambda path, **_: loaded.append(str(path)) or path)
    settings = Settings(state_dir=tmp_path)
    intent: Any = type("Intent", (), {"model_dir": "intent-dir", "fingerprint": "f"})()
    models = prepare.load_serving_models(settings, intent)
    assert models.embedder_id == "intent-f"  # head budget: the intent encoder
    assert read_retriever_manifest(settings.models_dir) is None


def test_train_retriever_end_to_end_tiny(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    pairs = _write_jsonl(
        tmp_path / "pairs.jsonl", [{"question": q, "passage": p} for q, p in PAIRS]
    )
    state = tmp_path / "state"
    args = ["train-retriever", "--state-dir", str(state), "--pairs", str(pairs)]
    args += ["--batch-size", "2", "--max-length", "16"]
    assert main(args) == 0
    printed = _printed_json(capsys.readouterr().out)
    assert printed["pairs"] == 4
    artifacts = read_retriever_manifest(state / "models")
    assert artifacts is not None
    assert artifacts.model_dir == printed["retrieval_encoder"]
    from keel.models import read_meta

    # keel.compress chose the variant: int8 when its embeddings pass the cosine gate.
    chosen = read_meta(artifacts.model_dir).config["compress"]
    assert chosen["min_cosine"] == 0.95 and chosen["chosen"] in {"onnx-int8", "fp32"}
    vectors = engine.load_model(artifacts.model_dir).embed(["block my card", "PIN change"])
    assert vectors.shape == (2, 384)
    # The same pairs and options again: cached, not retrained.
    assert main(args) == 0
    assert _printed_json(capsys.readouterr().out)["retrieval_encoder"] == artifacts.model_dir
    # The knowledge base is now embedded with the fine-tuned encoder.
    loaded: list[str] = []
    monkeypatch.setattr(engine, "load_model", lambda path, **_: loaded.append(str(path)) or path)
    intent: Any = type("Intent", (), {"model_dir": "intent-dir", "fingerprint": "f"})()
    models = prepare.load_serving_models(Settings(state_dir=state), intent)
    assert models.embedder_id == f"retriever-{artifacts.fingerprint}"
    assert loaded == ["intent-dir", artifacts.model_dir]


def test_recorded_search_mode_is_served(tmp_path: Path, monkeypatch: Any) -> None:
    from dataclasses import asdict

    from customer_service.retriever_training import RECORD, RetrieverArtifacts
    from keel.inference.fake import FakePredictor
    from keel.models import prepare_artifact
    from keel.retrieval import SearchMode

    settings = Settings(state_dir=tmp_path)

    def build(folder: Path) -> None:
        (folder / "serving").mkdir()
        (folder / "serving" / "keel.json").write_text("{}", encoding="utf-8")
        record = RetrieverArtifacts("serving", "abc", 4, 1, 1.0, 1.0, "pairs.csv", {})
        (folder / RECORD).write_text(json.dumps(asdict(record)), encoding="utf-8")

    prepare_artifact(settings.models_dir / "retriever", "abc", build)
    with pytest.raises(ValueError, match="search_mode"):
        set_search_mode(settings.models_dir, "bm25-only")
    assert set_search_mode(settings.models_dir, "vector").search_mode == "vector"
    embedder = FakePredictor(labels=["a"])
    monkeypatch.setattr(engine, "load_model", lambda path, **_: embedder)
    intent: Any = type("Intent", (), {"model_dir": "intent-dir", "fingerprint": "f"})()
    models = prepare.load_serving_models(settings, intent)
    assert (models.embedder_id, models.search_mode) == ("retriever-abc", "vector")
    # The mode is kept beside the published version: reading it back gives the same.
    again = read_retriever_manifest(settings.models_dir)
    assert again is not None and again.search_mode == "vector"
    kb = prepare.open_knowledge_base(
        settings, models.embedder, models.embedder_id, models.search_mode
    )
    assert kb.retriever.mode is SearchMode.VECTOR  # type: ignore[attr-defined]
    other = prepare.open_knowledge_base(settings, embedder, "intent-f")
    assert other.retriever.mode is SearchMode.HYBRID  # type: ignore[attr-defined]


def test_an_encoder_recorded_by_the_first_layout_is_still_served(tmp_path: Path) -> None:
    from dataclasses import asdict

    from customer_service.retriever_training import RetrieverArtifacts

    settings = Settings(state_dir=tmp_path)
    model_dir = tmp_path / "models" / "retriever" / "0123456789abcdef" / "onnx-int8"
    model_dir.mkdir(parents=True)
    (model_dir / "keel.json").write_text("{}", encoding="utf-8")
    legacy = RetrieverArtifacts(str(model_dir), "old", 4, 1, 1.0, 1.0, "pairs.csv", {}, "vector")
    (model_dir.parents[1] / "current.json").write_text(json.dumps(asdict(legacy)))
    artifacts = read_retriever_manifest(settings.models_dir)
    assert artifacts is not None
    assert (artifacts.model_dir, artifacts.search_mode) == (str(model_dir), "vector")
