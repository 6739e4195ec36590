from pathlib import Path

import pytest

from customer_service.documents import Document
from customer_service.engine import load_retriever
from customer_service.errors import DocumentNotFoundError
from customer_service.knowledge_base import KnowledgeBase
from keel.inference import FakePredictor


def _kb(directory: Path, embedder: FakePredictor) -> KnowledgeBase:
    return KnowledgeBase(directory, load_retriever(directory / "index", embedder))


@pytest.fixture()
def embedder() -> FakePredictor:
    return FakePredictor(dim=32)


def test_ingest_search_and_cite(
    tmp_path: Path, articles_dir: Path, embedder: FakePredictor
) -> None:
    kb = _kb(tmp_path / "kb", embedder)
    report = kb.ingest(articles_dir)
    assert sorted(report.added) == ["cards-lost-card", "cheques", "vaults"]
    (hit, *_) = kb.search("safe deposit boxes", k=2)
    assert hit.doc_id == "vaults" and hit.url == "/kb/vaults" and hit.title == "Safe deposit boxes"
    assert kb.get("vaults").text[hit.start : hit.end] == hit.text


def test_reingesting_unchanged_files_embeds_nothing(
    tmp_path: Path, articles_dir: Path, embedder: FakePredictor
) -> None:
    kb = _kb(tmp_path / "kb", embedder)
    kb.ingest(articles_dir)
    calls = embedder.calls
    report = kb.ingest(articles_dir)
    assert report.unchanged and not report.changed
    assert embedder.calls == calls

    (articles_dir / "cheques.txt").write_text(
        "Paying in cheques\n\nCheques up to £1,000 by photo.\n"
    )
    (articles_dir / "vaults.html").unlink()
    report = kb.ingest(articles_dir)
    assert report.updated == ["cheques"] and report.removed == ["vaults"]
    assert embedder.calls == calls + 1  # one batched pass for the changed file
    assert all(hit.doc_id != "vaults" for hit in kb.search("safe deposit boxes", k=5))


def test_state_survives_a_reload(
    tmp_path: Path, articles_dir: Path, embedder: FakePredictor
) -> None:
    kb = _kb(tmp_path / "kb", embedder)
    kb.ingest(articles_dir)
    reloaded = _kb(tmp_path / "kb", embedder)
    assert len(reloaded) == 3
    calls = embedder.calls
    assert not reloaded.ingest(articles_dir).changed
    assert embedder.calls == calls


def test_admin_documents_survive_folder_ingest_and_can_be_deleted(
    tmp_path: Path, articles_dir: Path, embedder: FakePredictor
) -> None:
    kb = _kb(tmp_path / "kb", embedder)
    doc = Document(
        "pets", "Pet insurance", "We do not sell pet insurance.", "/kb/pets", "admin", "text"
    )
    assert kb.upsert_document(doc) == "added"
    assert kb.upsert_document(doc) == "unchanged"
    kb.ingest(articles_dir)
    assert kb.get("pets").title == "Pet insurance"
    kb.delete_document("pets")
    with pytest.raises(DocumentNotFoundError):
        kb.get("pets")
    with pytest.raises(DocumentNotFoundError):
        kb.delete_document("pets")
