"""The recommender service: loads the prepared state and answers rerank / recommend /
event / catalogue calls. Framework-free; ``recommender.api`` adapts it to HTTP."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from keel_service import Budget, PeriodicJob
from keel_service.threads import limit_faiss_threads
from recommender.artifacts import StateLayout, load_signals, resolve_model
from recommender.buckets import RankingConfig, assign_bucket
from recommender.catalogue import Catalogue, CatalogueSnapshot, encoder_tag
from recommender.config import Settings
from recommender.datasets import Item, load_dataset
from recommender.encoder_threads import SAMPLE_TEXTS, EncoderChoice, load_serving_encoder
from recommender.errors import ModelNotReadyError, UnknownItemError
from recommender.features import HistoryBatch, recency_weights
from recommender.metrics import ServiceMetrics
from recommender.prepare import prepare
from recommender.ranking import RankOptions, RankResult, rank_candidates
from recommender.scorer import Signals, candidates_from_rows
from recommender.splits import by_user
from recommender.storage import CatalogueStore, Database, EventStore, RankingLog, StoredEvent

if TYPE_CHECKING:
    from keel.inference import Predictor
    from keel_service.upgrade import ModelUpgrader

log = logging.getLogger(__name__)

POSITIVE_EVENTS = frozenset({"click", "purchase"})
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class EventRejection:
    """Why one event of a batch was not stored.

    Attributes:
        index: position of the event in the batch.
        item_id: the event's item id.
        field: the event field at fault (``timestamp`` or ``item_id``).
        reason: ``future_timestamp``, ``past_timestamp`` or ``unknown_item``.
        message: a sentence for people.
    """

    index: int
    item_id: str
    field: str
    reason: str
    message: str


@dataclass(frozen=True)
class EventsOutcome:
    """Result of :meth:`RecommenderService.record_events`: what was stored, what was not."""

    stored: int
    rejected: list[EventRejection]


@dataclass
class ItemRef:
    """An item in a request: a catalogue id, or an id with its own text.

    Attributes:
        id: item id.
        text: description; when given, the item need not be in the catalogue and its text is
            embedded on the fly (cached by text).
        title / categories: display title and categories for uncatalogued items.
        features: caller numeric features (candidates only).
        timestamp: when the user interacted (history only).
    """

    id: str
    text: str | None = None
    title: str | None = None
    categories: list[str] | None = None
    features: dict[str, float] = field(default_factory=dict)
    timestamp: float | None = None


@dataclass
class RankingResponse:
    """What rerank / recommend return."""

    request_id: str
    user_id: str | None
    bucket: str
    mmr_lambda: float
    result: RankResult
    history_used: int
    took_ms: float


@dataclass(frozen=True)
class ServedModel:
    """What a request ranks with: the encoder, the catalogue embedded by it and the
    learned signals, swapped together (a live upgrade replaces all three at once).

    Attributes:
        predictor: the encoder of uncatalogued texts.
        catalogue: catalogue items with this encoder's vectors, and their index.
        signals: popularity, co-occurrence and the blend.
        choice: the encoder's kernel and thread count, and why.
        tier: ``fast`` or ``full`` (the budget it was trained with).
        manifest: the prepared version's manifest.
    """

    predictor: Predictor
    catalogue: Catalogue
    signals: Signals
    choice: EncoderChoice | None = None
    tier: str = "fast"
    manifest: dict = field(default_factory=dict)
    signals_dir: Path | None = None


class RecommenderService:
    """Holds the encoder, catalogue, signals and stores of one running app.

    Build it with :meth:`start`; it prepares the state directory first if needed.
    """

    def __init__(
        self,
        settings: Settings,
        predictor: Predictor,
        catalogue: Catalogue,
        signals: Signals,
        db: Database,
        manifest: dict,
        demo_histories: dict[str, list[str]],
    ) -> None:
        self.settings = settings
        self._served = ServedModel(
            predictor,
            catalogue,
            signals,
            tier=settings.budget.value,
            manifest=manifest,
            signals_dir=StateLayout(settings.state_dir).signals,
        )
        self.db = db
        # Writers of the in-memory signals (events, catalogue changes, reloads) take this
        # lock; readers never do: they take one reference to ``signals`` / the catalogue
        # snapshot per request and writers swap whole arrays in.
        self._signals_lock = threading.RLock()
        self._applied_event_id = 0
        self._sync_job: PeriodicJob | None = None
        self.events = EventStore(db)
        self.ranking_log = RankingLog(db)
        self.users: dict[str, str] = dict(manifest.get("users", {}))
        self.demo_histories = demo_histories
        self.metrics = ServiceMetrics()
        self.metrics.catalogue_size.set(len(catalogue.snapshot))
        self._clamp_reference(signals)
        self._applied_event_id = self._fold_stored_positives(signals, 0)
        self.metrics.reference_time.set(signals.stats.reference_time)
        #: The live upgrade (``upgrade`` setting, :mod:`recommender.upgrade`), if on.
        self.upgrader: ModelUpgrader | None = None
        self.cross_encoder: Predictor | None = None
        if settings.cross_encoder_dir is not None:
            from keel.inference import load_predictor

            self.cross_encoder = load_predictor(settings.cross_encoder_dir)

    # -- the served model (one reference, replaced whole) ----------------------------------
    @property
    def served(self) -> ServedModel:
        """The model requests rank with now (take it once per request)."""
        return self._served

    @property
    def predictor(self) -> Predictor:
        return self._served.predictor

    @property
    def catalogue(self) -> Catalogue:
        return self._served.catalogue

    @property
    def signals(self) -> Signals:
        return self._served.signals

    @signals.setter
    def signals(self, value: Signals) -> None:
        self._served = replace(self._served, signals=value)

    @property
    def manifest(self) -> dict:
        """The served version's manifest (paths, training report)."""
        return self._served.manifest

    @property
    def encoder_choice(self) -> EncoderChoice | None:
        """The encoder's kernel and thread count, and why (``/healthz``)."""
        return self._served.choice

    @classmethod
    def start(cls, settings: Settings, show_progress: bool = False) -> RecommenderService:
        """Prepare the state directory if needed, then load everything into memory."""
        from keel.inference import limit_blas_threads

        # Request-sized matrix products (50 x 384 x 100) are far faster single-threaded;
        # multi-threaded BLAS only adds wake-ups and spinning on a busy 2-core machine.
        limit_blas_threads()
        manifest = prepare(settings, show_progress=show_progress)
        layout = StateLayout(settings.state_dir)
        serving = resolve_model(manifest["serving_model"], layout.root)
        dataset = load_dataset(settings.data_dir)
        # The encoder runs on the kernel (ONNX int8 or fp32) and thread count (the cores
        # shared among the uvicorn workers, or one) measured fastest here at start-up;
        # faiss searches one query vector per request on one thread.
        limit_faiss_threads(1)
        predictor, encoder_choice = load_serving_encoder(
            manifest,
            layout.root,
            settings.num_threads,
            [it.document for it in dataset.items[:SAMPLE_TEXTS]],
            cache_size=settings.embed_cache_size,
        )
        # The catalogue's vectors are tagged with the prepared serving model whichever
        # kernel runs: the kernels compute the same function (int8 passed a cosine gate).
        tag = encoder_tag(serving) if isinstance(serving, Path) else serving
        db = Database(settings.resolved_database_url)
        store = CatalogueStore(db)
        # A state dir prepared against another database (a copy for a new replica, or a
        # fresh PostgreSQL): the data set's items go in once, embedded by ``load``.
        if store.seed(dataset.items):
            log.info("seeded the catalogue with %d data set items", len(dataset.items))
        catalogue = Catalogue(store, predictor, tag, layout.index)
        catalogue.load()
        signals = load_signals(layout.signals)
        histories = {
            user: [r.item_id for r in rows if r.positive]
            for user, rows in by_user(dataset.interactions).items()
        }
        service = cls(settings, predictor, catalogue, signals, db, manifest, histories)
        service._served = replace(service._served, choice=encoder_choice)
        service.start_sync()
        return service

    def start_sync(self) -> None:
        """Start the background job that applies other processes' catalogue changes and
        events every ``catalogue_poll_interval_s`` (:meth:`sync`)."""
        if self._sync_job is None:
            self._sync_job = PeriodicJob(
                "rec-catalogue-sync", self.settings.catalogue_poll_interval_s, self.sync
            )
            self._sync_job.start()

    def close(self) -> None:
        """Stop the upgrade and the sync job, flush logs and close the database."""
        if self.upgrader is not None:
            self.upgrader.close()
            self.upgrader = None
        if self._sync_job is not None:
            self._sync_job.stop()
            self._sync_job = None
        self.ranking_log.close()
        self.db.close()

    def sync(self) -> dict[str, int]:
        """Catch up with the other processes sharing the database: apply their catalogue
        changes (new catalogue version) and count their events into popularity.

        Returns:
            ``{"upserted": n, "deleted": m, "catalogue_version": v, "event_id": e}``.
        """
        upserted, deleted = self.catalogue.sync()
        if upserted:
            with self._signals_lock:
                for item_id in upserted:
                    self.signals.ensure_row(item_id)
        if upserted or deleted:
            log.info(
                "catalogue version %d: %d items changed, %d deleted by other processes",
                self.catalogue.version,
                len(upserted),
                len(deleted),
            )
            self.metrics.catalogue_size.set(len(self.catalogue.snapshot))
        event_id = self.sync_events()
        return {
            "upserted": len(upserted),
            "deleted": len(deleted),
            "catalogue_version": self.catalogue.version,
            "event_id": event_id,
        }

    @property
    def ready(self) -> bool:
        """True once models and catalogue are loaded."""
        return self.predictor is not None and self.catalogue.index is not None

    # -- helpers ---------------------------------------------------------------------
    def bucket_for(self, user_id: str | None) -> RankingConfig:
        """A/B bucket of a user (anonymous requests use the first configured bucket)."""
        names = self.settings.bucket_configs
        if not user_id:
            from recommender.buckets import RANKING_CONFIGS

            return RANKING_CONFIGS[names[0]]
        return assign_bucket(user_id, names)

    def _max_reference(self) -> float:
        return time.time() + self.settings.max_future_skew_s

    def _clamp_reference(self, signals: Signals) -> None:
        signals.stats.clamp_reference(self._max_reference())

    def _fold_stored_positives(self, signals: Signals, after_id: int) -> int:
        """Count the positive events stored after row ``after_id`` (by any process sharing
        the database) into ``signals``; returns the last row id applied."""
        while True:
            rows = self.events.positives_after(after_id)
            if not rows:
                return after_id
            signal_rows = np.array([signals.ensure_row(item_id) for _, item_id, _ in rows])
            stamps = np.array([ts for _, _, ts in rows], dtype=np.float64)
            signals.stats.record_many(signal_rows, stamps, self._max_reference())
            after_id = int(rows[-1][0])

    def sync_events(self) -> int:
        """Fold positives stored since the last call (also by other processes on the same
        database) into popularity and trending. :meth:`sync` calls it periodically; each
        process applies each event exactly once.

        Returns:
            The id of the newest event applied.
        """
        with self._signals_lock:
            signals = self.signals
            self._applied_event_id = self._fold_stored_positives(signals, self._applied_event_id)
            self.metrics.reference_time.set(signals.stats.reference_time)
            return self._applied_event_id

    def stored_history(self, user_id: str, limit: int) -> list[str]:
        """Positive items of a user: the logged data set history, then stored events."""
        items = list(self.demo_histories.get(user_id, []))
        items += [
            e.item_id for e in self.events.for_user(user_id, limit) if e.type in POSITIVE_EVENTS
        ]
        return items[-limit:]

    def _embed_refs(
        self,
        refs: list[ItemRef],
        field_name: str,
        snap: CatalogueSnapshot,
        predictor: Predictor,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Vectors and catalogue rows of request items: catalogue vectors for ids, the
        encoder (with its text LRU cache) for items sent with text."""
        rows = snap.row_of([r.id for r in refs])
        need_text = [k for k, r in enumerate(refs) if r.text]
        unknown = [refs[k].id for k in np.flatnonzero(rows < 0) if not refs[k].text]
        if unknown:
            raise UnknownItemError(field_name, unknown)
        vectors = np.empty((len(refs), snap.vectors.shape[1]), dtype=np.float32)
        cat = np.flatnonzero(rows >= 0)
        vectors[cat] = snap.vectors[rows[cat]]
        if need_text:
            docs = [
                Item(
                    refs[k].id,
                    refs[k].title or refs[k].id,
                    refs[k].text or "",
                    refs[k].categories or [],
                ).document
                for k in need_text
            ]
            self.metrics.uncached_texts.inc(len(docs))
            vectors[need_text] = predictor.embed(docs)
            rows[need_text] = -1  # the caller's text wins over the catalogue's
        return vectors, rows

    def _history_batch(
        self, refs: list[ItemRef], snap: CatalogueSnapshot, signals: Signals, predictor: Predictor
    ) -> HistoryBatch:
        vectors, rows = self._embed_refs(refs, "history", snap, predictor)
        ids = [r.id for r in refs]
        cats = [
            frozenset(r.categories)
            if r.categories is not None
            else (snap.categories[row] if row >= 0 else frozenset())
            for r, row in zip(refs, rows, strict=True)
        ]
        titles = [
            r.title or (snap.items[row].title if row >= 0 else r.id)
            for r, row in zip(refs, rows, strict=True)
        ]
        return HistoryBatch(
            ids=ids,
            vectors=vectors,
            weights=recency_weights(len(refs), signals.history_half_life),
            rows=signals.rows_of(ids),
            categories=cats,
            titles=titles,
        )

    def _second_pass(
        self, history: HistoryBatch, docs: list[str]
    ) -> Callable[[np.ndarray], np.ndarray] | None:
        ce = self.cross_encoder
        if ce is None or not len(history):
            return None
        profile = "; ".join(history.titles[-5:])

        def rescore(indices: np.ndarray) -> np.ndarray:
            scores = ce.score_pairs([(profile, docs[i]) for i in indices])
            return (scores - scores.mean()) / (scores.std() + 1e-6)

        return rescore

    # -- use cases -------------------------------------------------------------------
    def rerank(
        self,
        user_id: str | None,
        history: list[ItemRef],
        candidates: list[ItemRef],
        options: RankOptions | None,
        mmr_lambda: float | None = None,
        as_of: float | None = None,
        endpoint: str = "rerank",
        snapshot: CatalogueSnapshot | None = None,
        served: ServedModel | None = None,
    ) -> RankingResponse:
        """Score, order and explain ``candidates`` for a user.

        Args:
            user_id: optional; picks the A/B bucket and, if ``history`` is empty, the
                stored history.
            history: the user's items, oldest first.
            candidates: items to rank.
            options: rules and limits (its ``mmr_lambda`` is replaced by the bucket's unless
                ``mmr_lambda`` is given).
            mmr_lambda: explicit MMR λ (overrides the bucket).
            as_of: ranking time for trending/freshness (default: newest history timestamp,
                else the end of the interaction log).
            endpoint: for metrics and the ranking log.
            snapshot: the catalogue version to rank against (default: the current one;
                ``recommend`` passes the one it retrieved from, so an item deleted
                meanwhile cannot turn into an unknown-item error).
            served: the model to rank with (default: the current one; ``recommend``
                passes the one it retrieved with, so a live upgrade swapping the model
                meanwhile cannot mix two encoders' vectors).

        Raises:
            UnknownItemError: an id without text is not in the catalogue.
        """
        started = time.perf_counter()
        # One model, snapshot and signals object for the whole request: concurrent catalogue
        # changes, reloads or a live upgrade swap in new ones and never mix two versions.
        model = self._served if served is None else served
        snap = model.catalogue.snapshot if snapshot is None else snapshot
        signals = model.signals
        bucket = self.bucket_for(user_id)
        if not history and user_id:
            history = [ItemRef(i) for i in self.stored_history(user_id, self.settings.max_history)]
            history = [h for h in history if h.id in snap.rows]
        lam = bucket.mmr_lambda if mmr_lambda is None else mmr_lambda
        opts = options or RankOptions()
        opts = RankOptions(**{**opts.__dict__, "mmr_lambda": lam})
        hist = self._history_batch(history, snap, signals, model.predictor)
        vectors, rows = self._embed_refs(candidates, "candidates", snap, model.predictor)
        numeric_names = sorted({k for c in candidates for k in c.features})
        numeric = {
            name: np.array([c.features.get(name, 0.0) for c in candidates], dtype=np.float64)
            for name in numeric_names
        }
        stamps = [h.timestamp for h in history if h.timestamp is not None]
        when = as_of if as_of is not None else (max(stamps) if stamps else None)
        cats = [
            frozenset(c.categories)
            if c.categories is not None
            else (snap.categories[r] if r >= 0 else frozenset())
            for c, r in zip(candidates, rows, strict=True)
        ]
        titles = [
            c.title or (snap.items[r].title if r >= 0 else c.id)
            for c, r in zip(candidates, rows, strict=True)
        ]
        cands = candidates_from_rows(
            snap,
            signals,
            [c.id for c in candidates],
            rows,
            vectors,
            categories=cats,
            titles=titles,
            numeric=numeric,
            as_of=when,
        )
        second = None
        if bucket.use_cross_encoder and self.cross_encoder is not None:
            docs = [
                Item(c.id, t, c.text or "", list(k)).document
                for c, t, k in zip(candidates, titles, cats, strict=True)
            ]
            second = self._second_pass(hist, docs)
        result = rank_candidates(hist, cands, signals.blend, signals.similarity, opts, second)
        request_id = uuid.uuid4().hex
        self.ranking_log.log(
            request_id, user_id, bucket.name, endpoint, [i.id for i in result.items]
        )
        took = time.perf_counter() - started
        self.metrics.requests.labels(endpoint, bucket.name).inc()
        self.metrics.latency.labels(endpoint).observe(took)
        self.metrics.candidates.observe(len(candidates))
        unknown = sum(1 for c in candidates if c.id not in snap.rows)
        self.metrics.candidate_items.labels("false").inc(unknown)
        self.metrics.candidate_items.labels("true").inc(len(candidates) - unknown)
        if len(hist) == 0:
            self.metrics.cold_requests.inc()
        log.debug(
            "ranked %d candidates for user=%s bucket=%s", len(candidates), user_id, bucket.name
        )
        return RankingResponse(
            request_id, user_id, bucket.name, lam, result, len(hist), took * 1000
        )

    def recommend(
        self,
        user_id: str | None,
        history: list[ItemRef],
        options: RankOptions,
        pool_size: int = 200,
        mmr_lambda: float | None = None,
    ) -> RankingResponse:
        """Retrieve candidates from the FAISS index by the user's interest vector, then
        rerank them (seen items excluded unless ``options.exclude_seen`` is False)."""
        model = self._served
        snap = model.catalogue.snapshot
        if not history and user_id:
            history = [ItemRef(i) for i in self.stored_history(user_id, self.settings.max_history)]
            history = [h for h in history if h.id in snap.rows]
        if model.catalogue.index is None:
            raise ModelNotReadyError("the catalogue index is not loaded")
        if history:
            hist = self._history_batch(history, snap, model.signals, model.predictor)
            profile = (hist.weights[:, None] * hist.vectors).sum(axis=0)
            profile /= max(float(np.linalg.norm(profile)), 1e-12)
            hits = model.catalogue.search(profile, k=pool_size + len(history))
            ids = [h.id for h in hits if h.id in snap.rows]  # same catalogue version
        else:  # cold start: the most popular items, then the rest of the catalogue
            ranked = dict.fromkeys(i for i in model.signals.by_popularity() if i in snap.rows)
            ranked.update(dict.fromkeys(it.id for it in snap.items[: pool_size + len(ranked)]))
            ids = list(ranked)[:pool_size]
        if not ids:
            raise ModelNotReadyError("the catalogue is empty: nothing to recommend")
        return self.rerank(
            user_id,
            history,
            [ItemRef(i) for i in ids],
            options,
            mmr_lambda,
            endpoint="recommend",
            snapshot=snap,
            served=model,
        )

    def check_event(
        self, index: int, event: StoredEvent, now: float, known: frozenset[str] | set[str]
    ) -> EventRejection | None:
        """Why ``event`` must not be stored, or None when it may be.

        Args:
            index: position of the event in its batch (for the report).
            event: the event.
            now: the server's clock (Unix seconds).
            known: item ids known to exist (catalogue snapshot or database).
        """
        skew = self.settings.max_future_skew_s
        if event.timestamp > now + skew:
            return EventRejection(
                index,
                event.item_id,
                "timestamp",
                "future_timestamp",
                f"timestamp {event.timestamp:.0f} is {event.timestamp - now:.0f} s ahead of"
                f" the server clock (at most {skew:.0f} s allowed)",
            )
        days = self.settings.max_past_skew_days
        if days > 0 and event.timestamp < now - days * SECONDS_PER_DAY:
            return EventRejection(
                index,
                event.item_id,
                "timestamp",
                "past_timestamp",
                f"timestamp {event.timestamp:.0f} is more than {days:g} days in the past",
            )
        if event.item_id not in known:
            return EventRejection(
                index,
                event.item_id,
                "item_id",
                "unknown_item",
                f"item_id {event.item_id!r} is not in the catalogue; upsert it first",
            )
        return None

    def record_events(self, events: list[StoredEvent], now: float | None = None) -> EventsOutcome:
        """Store the acceptable events of a batch; report the others one by one.

        An event is refused when its timestamp is more than ``max_future_skew_s`` ahead of
        the clock or more than ``max_past_skew_days`` behind it, or when its item is in
        neither the catalogue snapshot nor the database. Refused events are never stored and
        never move the reference time. Accepted clicks and purchases update popularity at
        once (one batched update, no co-occurrence rebuild).

        Args:
            events: the batch, in the caller's order.
            now: the clock to judge timestamps by (default: ``time.time()``).
        """
        now = time.time() if now is None else now
        snap = self.catalogue.snapshot
        missing = [e.item_id for e in events if e.item_id not in snap.rows]
        # Another process sharing the database may have added items this one has not
        # loaded yet: one indexed query per batch, not one per event.
        known = set(snap.rows.keys() & {e.item_id for e in events})
        if missing:
            known |= self.catalogue.store.existing(missing)
        accepted: list[StoredEvent] = []
        rejected: list[EventRejection] = []
        for k, event in enumerate(events):
            problem = self.check_event(k, event, now, known)
            if problem is None:
                accepted.append(event)
            else:
                rejected.append(problem)
                self.metrics.events_rejected.labels(problem.reason).inc()
        if accepted:
            self.events.add(accepted)
            for e in accepted:
                self.metrics.events.labels(e.type).inc()
            self.sync_events()
        return EventsOutcome(len(accepted), rejected)

    def upsert_items(self, items: list[Item]) -> tuple[int, int]:
        """Add or update catalogue items (embedded once, persisted, indexed).

        Raises:
            DuplicateItemError: an id occurs more than once in ``items``.
        """
        result = self.catalogue.upsert(items)
        with self._signals_lock:
            for it in items:
                self.signals.ensure_row(it.id)
        self.metrics.catalogue_size.set(len(self.catalogue.snapshot))
        return result

    def delete_items(self, item_ids: list[str]) -> int:
        """Remove items from the catalogue and the index."""
        removed = self.catalogue.delete(item_ids)
        self.metrics.catalogue_size.set(len(self.catalogue.snapshot))
        return removed

    def reload(self) -> None:
        """Re-read the catalogue from the database and the learned signals from the state dir
        (after a new ``prepare``, or to pick up another process's catalogue changes).

        Requests in flight finish on the old catalogue and signals; the new ones are built
        aside and swapped in. Stored positive events are folded into the new signals.
        """
        self.catalogue.load()
        with self._signals_lock:
            folder = self._served.signals_dir or StateLayout(self.settings.state_dir).signals
            signals = load_signals(folder)
            self._clamp_reference(signals)
            applied = self._fold_stored_positives(signals, 0)
            self.signals = signals
            self._applied_event_id = applied
            self.metrics.cooccurrence_rebuilds.inc()
            self.metrics.reference_time.set(signals.stats.reference_time)
        self.metrics.catalogue_size.set(len(self.catalogue.snapshot))

    def apply_retention(self, now: float | None = None) -> dict[str, int]:
        """Delete stored events and served-ranking logs older than
        ``event_retention_days`` (0 = keep forever). Safe to call periodically from any
        thread or process.

        Popularity already counted stays counted until the next restart or reload, which
        rebuilds it from the data set and the events still stored.

        Returns:
            ``{"events": n, "rankings": m}``: how many rows were deleted.
        """
        days = self.settings.event_retention_days
        if days <= 0:
            return {"events": 0, "rankings": 0}
        cutoff = (time.time() if now is None else now) - days * SECONDS_PER_DAY
        events = self.events.delete_before(cutoff)
        rankings = self.events.delete_rankings_before(cutoff)
        self.metrics.events_pruned.inc(events)
        log.info(
            "retention: deleted %d events and %d rankings before %.0f", events, rankings, cutoff
        )
        return {"events": events, "rankings": rankings}

    def run_maintenance(self) -> dict[str, int]:
        """The periodic job: fold other processes' events in, then apply retention."""
        self.sync_events()
        return self.apply_retention()

    # -- live upgrade (recommender.upgrade) ------------------------------------------------
    def start_upgrade(self) -> None:
        """Build the production model in the background (``upgrade`` on, ``fast`` budget)."""
        if self.upgrader is not None or not self.settings.upgrade:
            return
        if self.settings.budget is not Budget.FAST:
            log.info(
                "live upgrade: off (the served model already has budget %s)", self.settings.budget
            )
            return
        from recommender.upgrade import make_upgrader

        served_model = self.manifest["serving_model"]
        root = StateLayout(self.settings.state_dir).root
        model = resolve_model(served_model, root)
        self.upgrader = make_upgrader(
            self.settings, lambda: str(model), lambda folder, _result: self.swap_model(folder)
        )
        self.upgrader.start()

    def swap_model(self, folder: Path) -> None:
        """Serve the prepared version in ``folder`` (a live upgrade's accepted candidate).

        Everything is loaded aside first: the encoder (its kernel and threads timed as at
        start-up), the catalogue re-embedded by it (its index in ``folder/index``) and the
        signals with the stored positive events folded in; then the served model is
        replaced in one assignment. Requests in flight finish on the old model.
        """
        from recommender.upgrade import read_candidate

        manifest = read_candidate(folder)
        predictor, choice = load_serving_encoder(
            manifest,
            folder,
            self.settings.num_threads,
            [it.document for it in self.catalogue.snapshot.items[:SAMPLE_TEXTS]],
            cache_size=self.settings.embed_cache_size,
        )
        serving = resolve_model(manifest["serving_model"], folder)
        tag = encoder_tag(serving) if isinstance(serving, Path) else str(serving)
        catalogue = Catalogue(CatalogueStore(self.db), predictor, tag, folder / "index")
        embedded = catalogue.load()
        with self._signals_lock:
            signals = load_signals(folder / "signals")
            for item_id in catalogue.snapshot.rows:
                signals.ensure_row(item_id)
            self._clamp_reference(signals)
            applied = self._fold_stored_positives(signals, 0)
            self._served = ServedModel(
                predictor,
                catalogue,
                signals,
                choice,
                tier=str(manifest.get("tier", "full")),
                manifest={**self.manifest, **manifest, "serving_model": str(serving)},
                signals_dir=folder / "signals",
            )
            self._applied_event_id = applied
            self.metrics.reference_time.set(signals.stats.reference_time)
        self.metrics.catalogue_size.set(len(catalogue.snapshot))
        log.info(
            "live upgrade: serving %s (%s tier; %d catalogue items re-embedded)",
            serving,
            self._served.tier,
            embedded,
        )

    def model_status(self) -> dict[str, Any]:
        """Tier, validation score and upgrade progress of the served model (``/healthz``)."""
        from keel_service.upgrade import ServedModel as ServedTier
        from recommender.upgrade import METRIC, MODEL_NAME

        if self.upgrader is not None:
            return {"name": MODEL_NAME, **self.upgrader.snapshot()}
        tier = ServedTier(self._served.tier, None, METRIC)
        return {"name": MODEL_NAME, **tier.as_dict(), "upgrade": {"state": "off"}}
