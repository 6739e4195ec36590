"""Hostile input and concurrent writers against the framework-free service.

The service runs on a real database (SQLite, and PostgreSQL where a test takes the
``database_url`` fixture); only the text encoder is a stand-in (hashed vectors), since no
test here depends on what the vectors mean.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from recommender import cooccurrence
from recommender.blend import BlendModel
from recommender.catalogue import Catalogue
from recommender.config import Settings
from recommender.datasets import Item
from recommender.errors import DuplicateItemError
from recommender.features import BASE_FEATURES
from recommender.scorer import Signals
from recommender.service import ItemRef, RecommenderService
from recommender.stats import ItemStats
from recommender.storage import CatalogueStore, Database, StoredEvent

DAY = 86_400.0
YEAR = 365 * DAY


class HashEncoder:
    """Deterministic unit vectors from a text hash (stands in for the bi-encoder)."""

    dim = 8

    def embed(self, docs: list[str]) -> np.ndarray:
        out = np.empty((len(docs), self.dim), dtype=np.float32)
        for k, doc in enumerate(docs):
            seed = int.from_bytes(hashlib.sha256(doc.encode()).digest()[:4], "little")
            v = np.random.default_rng(seed).normal(size=self.dim)
            out[k] = v / np.linalg.norm(v)
        return out


def items(ids: list[str]) -> list[Item]:
    return [Item(i, f"Title {i}", f"About {i}", ["cat"]) for i in ids]


def build_service(
    tmp_path: Path,
    db_name: str = "rec.db",
    reference_time: float | None = None,
    url: str | None = None,
    **settings,
) -> RecommenderService:
    settings = Settings(state_dir=tmp_path, api_key="unit-key", **settings)
    db = Database(url or tmp_path / db_name)
    encoder = HashEncoder()
    catalogue = Catalogue(CatalogueStore(db), encoder, "hash", tmp_path / "index")
    catalogue.load()
    if not len(catalogue.snapshot):
        catalogue.upsert(items([f"i{k}" for k in range(20)]))
    ref = time.time() - DAY if reference_time is None else reference_time
    signals = Signals(
        item_index={},
        stats=ItemStats.empty(0, reference_time=ref),
        similarity=cooccurrence.ItemSimilarity(sparse.csr_matrix((0, 0), dtype=np.float32)),
        blend=BlendModel.prior(list(BASE_FEATURES)),
    )
    return RecommenderService(settings, encoder, catalogue, signals, db, {}, {})


@pytest.fixture()
def service(tmp_path: Path, database_url: str) -> Iterator[RecommenderService]:
    svc = build_service(tmp_path, url=database_url)
    yield svc
    svc.close()


def click(item: str, ts: float, user: str = "u1") -> StoredEvent:
    return StoredEvent(user, item, "click", ts)


def test_future_and_past_events_are_rejected_and_never_move_the_reference_time(
    service: RecommenderService,
) -> None:
    now = time.time()
    before = service.signals.stats.reference_time
    outcome = service.record_events(
        [click("i1", now), click("i2", now + 10 * YEAR), click("i3", now - 20 * YEAR)], now=now
    )
    assert outcome.stored == 1
    assert [(r.index, r.field, r.reason) for r in outcome.rejected] == [
        (1, "timestamp", "future_timestamp"),
        (2, "timestamp", "past_timestamp"),
    ]
    ref = service.signals.stats.reference_time
    assert before <= ref <= now + service.settings.max_future_skew_s
    assert [e.item_id for e in service.events.for_user("u1")] == ["i1"]
    # only the accepted click counts towards popularity
    assert service.signals.stats.counts.sum() == 1.0


def test_events_within_the_skew_are_accepted(service: RecommenderService) -> None:
    now = time.time()
    outcome = service.record_events([click("i1", now + 500), click("i2", now - 9 * YEAR)], now=now)
    assert outcome.stored == 2 and outcome.rejected == []


def test_reference_time_is_clamped_to_clock_plus_skew(tmp_path: Path) -> None:
    # a data set stamped years ahead must not age every item on start-up
    svc = build_service(tmp_path, reference_time=time.time() + 5 * YEAR)
    try:
        assert svc.signals.stats.reference_time <= time.time() + svc.settings.max_future_skew_s
    finally:
        svc.close()
    stats = ItemStats.empty(3, reference_time=100.0)
    stats.record_many(np.array([0, 1]), np.array([200.0, 9e9]), max_reference=300.0)
    assert stats.reference_time == 300.0


def test_batched_record_matches_one_by_one() -> None:
    rows = np.array([2, 0, 2, 5])
    stamps = np.array([1.7e9, 1.6e9, 1.65e9, 1.75e9])
    batched = ItemStats.empty(3)
    batched.record_many(rows, stamps)
    single = ItemStats.empty(3)
    for r, t in zip(rows, stamps, strict=True):
        single.record(int(r), float(t))
    assert np.array_equal(batched.counts, single.counts)
    assert np.array_equal(batched.keys, single.keys)
    assert batched.reference_time == single.reference_time == 1.75e9


def test_unknown_items_are_rejected_per_event_without_rebuilding_cooccurrence(
    service: RecommenderService, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = []
    original = cooccurrence.ItemSimilarity.__init__

    def counting_init(self, matrix):  # type: ignore[no-untyped-def]
        built.append(matrix.shape)
        original(self, matrix)

    monkeypatch.setattr(cooccurrence.ItemSimilarity, "__init__", counting_init)
    now = time.time()
    batch = [click(f"ghost-{k}", now) for k in range(500)] + [click("i4", now)]
    outcome = service.record_events(batch, now=now)
    assert outcome.stored == 1
    assert len(outcome.rejected) == 500
    assert {r.reason for r in outcome.rejected} == {"unknown_item"}
    assert {r.field for r in outcome.rejected} == {"item_id"}
    assert "ghost-0" not in service.signals.item_index
    # new catalogue items get signal rows without a rebuild either
    service.upsert_items(items([f"new-{k}" for k in range(50)]))
    service.record_events([click(f"new-{k}", now) for k in range(50)], now=now)
    assert built == []
    assert service.metrics.cooccurrence_rebuilds._value.get() == 0
    assert service.metrics.events_rejected.labels("unknown_item")._value.get() == 500
    # and ranking still works with rows past the end of the similarity matrix
    resp = service.rerank("u1", [ItemRef("new-1")], [ItemRef("new-2"), ItemRef("i4")], None)
    assert {i.id for i in resp.result.items} == {"new-2", "i4"}


def test_item_added_by_another_process_is_accepted(
    service: RecommenderService, tmp_path: Path
) -> None:
    # a second handle on the same file, as another worker process would have
    other_db = Database(service.db.url)
    other = Catalogue(CatalogueStore(other_db), HashEncoder(), "hash", tmp_path / "index")
    other.load()
    other.upsert(items(["from-other"]))
    other_db.close()
    outcome = service.record_events([click("from-other", time.time())])
    assert outcome.stored == 1 and outcome.rejected == []


def test_duplicate_ids_in_an_upsert_are_refused(service: RecommenderService) -> None:
    size = len(service.catalogue.snapshot)
    with pytest.raises(DuplicateItemError) as err:
        service.upsert_items(items(["d1", "d2", "d1", "d2", "d3"]))
    assert err.value.item_ids == ["d1", "d2"]
    assert "'d1'" in str(err.value)
    assert len(service.catalogue.snapshot) == size  # nothing half-applied


def test_concurrent_writers_and_readers_lose_no_event(service: RecommenderService) -> None:
    threads_n, batches, per_batch = 8, 25, 4
    errors: list[BaseException] = []
    now = time.time()
    start = threading.Barrier(threads_n + 2)

    def write_events(t: int) -> None:
        try:
            start.wait()
            for b in range(batches):
                batch = [click(f"i{(t + b + k) % 20}", now, user=f"w{t}") for k in range(per_batch)]
                assert service.record_events(batch, now=now).stored == per_batch
        except BaseException as exc:  # reported below: a thread must not hide a failure
            errors.append(exc)

    def change_catalogue() -> None:
        try:
            start.wait()
            for k in range(10):
                service.upsert_items(items([f"c{k}"]))
                service.delete_items([f"c{k - 1}"]) if k else None
        except BaseException as exc:
            errors.append(exc)

    def read() -> None:
        try:
            start.wait()
            for _ in range(30):
                ranked = service.rerank("w0", [], [ItemRef("i1"), ItemRef("i2")], None)
                recommended = service.recommend(None, [], service_options())
                scores = [i.score for r in (ranked, recommended) for i in r.result.items]
                assert np.isfinite(scores).all(), scores
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=write_events, args=(t,)) for t in range(threads_n)]
    workers += [threading.Thread(target=change_catalogue), threading.Thread(target=read)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    assert not errors, errors
    total = threads_n * batches * per_batch
    assert service.events.count() == total
    assert sum(len(service.events.for_user(f"w{t}", 1000)) for t in range(threads_n)) == total
    assert service.signals.stats.counts.sum() == total  # every click counted exactly once


def service_options():  # type: ignore[no-untyped-def]
    from recommender.ranking import RankOptions

    return RankOptions(top_k=5)


def test_two_processes_on_one_database_lose_no_event(tmp_path: Path, database_url: str) -> None:
    # two services on one database stand in for two worker processes or replicas (the
    # integration tests run real servers); each folds the other's clicks into its popularity
    first = build_service(tmp_path, url=database_url)
    second = build_service(tmp_path, url=database_url)
    now = time.time()
    errors: list[BaseException] = []

    def write(svc: RecommenderService, user: str) -> None:
        try:
            for k in range(40):
                svc.record_events([click(f"i{k % 20}", now, user), click("i0", now, user)], now=now)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(svc, f"p{n}-{t}"))
        for n, svc in enumerate((first, second))
        for t in range(3)
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not errors, errors
        assert first.events.count() == second.events.count() == 2 * 3 * 40 * 2
        first.sync_events()
        second.sync_events()
        assert first.signals.stats.counts.sum() == second.signals.stats.counts.sum() == 480
    finally:
        first.close()
        second.close()


def test_retention_deletes_old_events_only_when_set(tmp_path: Path, database_url: str) -> None:
    svc = build_service(tmp_path, url=database_url, event_retention_days=30)
    try:
        now = time.time()
        svc.record_events([click("i1", now - 40 * DAY), click("i2", now - DAY)], now=now)
        assert svc.apply_retention(now=now)["events"] == 1
        assert [e.item_id for e in svc.events.for_user("u1")] == ["i2"]
    finally:
        svc.close()
    forever = build_service(tmp_path, db_name="forever.db")
    try:
        forever.record_events([click("i1", time.time() - 400 * DAY)])
        assert forever.apply_retention() == {"events": 0, "rankings": 0}
        assert forever.events.count() == 1
    finally:
        forever.close()


def test_restart_counts_stored_clicks_once(tmp_path: Path, database_url: str) -> None:
    svc = build_service(tmp_path, url=database_url)
    svc.record_events([click("i1", time.time()), click("i1", time.time())])
    svc.close()
    again = build_service(tmp_path, url=database_url)
    try:
        row = again.signals.item_index["i1"]
        assert again.signals.stats.counts[row] == 2.0
    finally:
        again.close()


def test_a_replica_follows_catalogue_changes_and_counts_events(
    tmp_path: Path, database_url: str
) -> None:
    # two services on one database with their own state dirs stand in for two replicas;
    # the second applies the first's changes from its periodic sync job
    first = build_service(tmp_path / "a", url=database_url)
    second = build_service(tmp_path / "b", url=database_url, catalogue_poll_interval_s=0.1)
    second.start_sync()
    try:
        now = time.time()
        first.upsert_items([Item("n1", "Kiln basics", "Glazes and firing.", ["craft"])])
        assert first.record_events([click("n1", now), click("n1", now)], now=now).stored == 2

        def caught_up() -> bool:
            row = second.signals.item_index.get("n1")
            return row is not None and second.signals.stats.counts[row] == 2.0

        deadline = time.monotonic() + 60
        while not caught_up() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert caught_up()
        assert second.catalogue.snapshot.items[second.catalogue.snapshot.rows["n1"]].title == (
            "Kiln basics"
        )
        ranked = second.rerank("u9", [ItemRef("i1")], [ItemRef("n1"), ItemRef("i2")], None)
        assert {i.id for i in ranked.result.items} == {"n1", "i2"}
        assert first.delete_items(["n1"]) == 1
        target = first.catalogue.store.version()
        deadline = time.monotonic() + 60
        while second.catalogue.version < target and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.catalogue.version == target
        assert "n1" not in second.catalogue.snapshot.rows
        assert second.metrics.catalogue_size._value.get() == len(second.catalogue.snapshot)
    finally:
        first.close()
        second.close()
