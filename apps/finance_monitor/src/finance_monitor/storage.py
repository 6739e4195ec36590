"""The monitor's store on SQLite or PostgreSQL (SQLAlchemy Core + Alembic): alerts with a
delivery outbox, silences, rules, trend points, and per-partition trend checkpoints.

SQLite (WAL) is the embedded default, shared by the API and any trend processes on one
host; PostgreSQL lets trend processes on several hosts share one store. The trend stage
writes a batch's closed windows, new alerts and its partition checkpoints (state + next
offset) in ONE transaction, so the stored state always matches the offsets it reflects.
Alerts are inserted with ``ON CONFLICT DO NOTHING`` on their stable key: a replayed window
can never create, or deliver, an alert twice.

Checkpoints are fenced: a trend process claims a partition on assignment
(:meth:`MonitorStore.claim_partition`, which bumps the partition's epoch), and every later
write for that partition must carry that epoch; a process that lost the partition (a
zombie that missed a rebalance) gets :class:`PartitionFencedError` and writes nothing.

Multi-statement changes that other processes may race (claims, queueing) are conditional
UPDATEs whose row counts decide the winner, so they hold on both back ends.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from finance_monitor.errors import FinanceMonitorError, NotFoundError
from finance_monitor.rules import Alert, Resolution, RuleSpec
from finance_monitor.silencing import Matcher, Silence, is_silenced
from finance_monitor.windows import ClosedWindow
from keel_service.db import WriteGate, is_sqlite, make_engine, migrate, sqlite_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_finance_monitor"

metadata = sa.MetaData()

# Epoch seconds are doubles (PostgreSQL's REAL would drop sub-second precision).
_TIME = sa.Double

checkpoints_table = sa.Table(
    "checkpoints",
    metadata,
    sa.Column("consumer_group", sa.Text, primary_key=True),
    sa.Column("topic", sa.Text, primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
    sa.Column("state", sa.Text, nullable=False),  # JSON
    sa.Column("updated_at", _TIME, nullable=False),
)

# Who may write a partition's checkpoint: the epoch grows with every claim.
partition_owners_table = sa.Table(
    "partition_owners",
    metadata,
    sa.Column("consumer_group", sa.Text, primary_key=True),
    sa.Column("topic", sa.Text, primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("epoch", sa.BigInteger, nullable=False),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("claimed_at", _TIME, nullable=False),
)

alerts_table = sa.Table(
    "alerts",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("rule_id", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("series", sa.Text, nullable=False),
    sa.Column("severity", sa.Text, nullable=False),
    sa.Column("window_spec", sa.Text, nullable=False),
    sa.Column("window_start", _TIME, nullable=False),
    sa.Column("window_end", _TIME, nullable=False),
    sa.Column("value", sa.Double, nullable=False),
    sa.Column("baseline", sa.Double, nullable=False),
    sa.Column("threshold", sa.Double, nullable=False),
    sa.Column("volume", sa.Integer, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("labels", sa.Text, nullable=False),  # JSON
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="firing"),
    sa.Column("ack_by", sa.Text),
    sa.Column("ack_at", _TIME),
    sa.Column("dispatch_state", sa.Text, nullable=False, server_default="pending"),
    sa.Column("dispatch_owner", sa.Text),
    sa.Column("dispatch_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("dispatch_error", sa.Text),
    sa.Column("sent_at", _TIME),
    # Insertion order for incremental reads: an identity column on PostgreSQL (filled by
    # the database); SQLite uses the table's rowid and leaves this NULL.
    sa.Column("seq", sa.BigInteger),
    # Lifecycle (migration 0002): wall-clock time the condition cleared (NULL: firing), and
    # the resolved notification's progress (pending -> queued; skipped when silenced).
    sa.Column("resolved_at", _TIME),
    sa.Column("resolve_state", sa.Text),
)
sa.Index("alerts_dispatch", alerts_table.c.dispatch_state, alerts_table.c.created_at)
sa.Index("alerts_resolve", alerts_table.c.resolve_state)

# The messages behind each alert, most negative first (migration 0002).
alert_evidence_table = sa.Table(
    "alert_evidence",
    metadata,
    sa.Column("alert_key", sa.Text, primary_key=True),
    sa.Column("rank", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("message_id", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("sentiment", sa.Text, nullable=False),
    sa.Column("probability", sa.Double, nullable=False),
    sa.Column("negative", sa.Double, nullable=False),
    sa.Column("event_time", _TIME, nullable=False),
)

silences_table = sa.Table(
    "silences",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("matchers", sa.Text, nullable=False),  # JSON
    sa.Column("starts_at", _TIME, nullable=False),
    sa.Column("ends_at", _TIME, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
)

rules_table = sa.Table(
    "rules",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),  # JSON
    sa.Column("updated_at", _TIME, nullable=False),
)

meta_table = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

trend_points_table = sa.Table(
    "trend_points",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("series", sa.Text, nullable=False),
    sa.Column("start", _TIME, nullable=False),
    sa.Column("end", _TIME, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("negative", sa.Integer, nullable=False),
    sa.Column("neutral", sa.Integer, nullable=False),
    sa.Column("positive", sa.Integer, nullable=False),
    sa.Column("negative_share", sa.Double, nullable=False),
    sa.Column("sentiment_index", sa.Double, nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
    sa.UniqueConstraint("spec", "series", "start"),
    sqlite_autoincrement=True,
)
sa.Index("trend_points_created", trend_points_table.c.created_at)

deliveries_table = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("receiver", sa.Text, nullable=False),
    sa.Column("receiver_label", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # JSON
    sa.Column("state", sa.Text, nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", _TIME, nullable=False),
    sa.Column("claimed_by", sa.Text),
    sa.Column("claimed_at", _TIME),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("sent_at", _TIME),
    sqlite_autoincrement=True,
)
sa.Index(
    "deliveries_due",
    deliveries_table.c.receiver,
    deliveries_table.c.state,
    deliveries_table.c.next_attempt_at,
)

delivery_alerts_table = sa.Table(
    "delivery_alerts",
    metadata,
    sa.Column("alert_key", sa.Text, primary_key=True),
    sa.Column("delivery_id", sa.Integer, primary_key=True, autoincrement=False),
)
sa.Index("delivery_alerts_delivery", delivery_alerts_table.c.delivery_id)

_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s;,]+")


class PartitionFencedError(FinanceMonitorError):
    """A checkpoint write for partitions this process no longer owns (another process
    claimed them since); nothing of the batch was written."""

    def __init__(self, partitions: list[int]) -> None:
        self.partitions = sorted(partitions)
        super().__init__(f"trend partitions {self.partitions} were claimed by another process")


def scrub_urls(text: str | None) -> str | None:
    """Replace every URL in ``text`` by its host (older rows stored full URLs)."""
    if not text:
        return text
    from finance_monitor.webhooks import redact_url

    return _URL.sub(lambda m: redact_url(m.group()), text)


def database_url_for(target: str | Path) -> str:
    """A SQLAlchemy URL for ``target``: a URL is kept, a file path becomes ``sqlite:///``."""
    if isinstance(target, str) and "://" in target:
        return target
    return sqlite_url(Path(target))


@dataclass(frozen=True)
class Receiver:
    """A delivery target: ``id`` is stable and URL-free, ``label`` is for display (host)."""

    id: str
    label: str


@dataclass(frozen=True)
class Delivery:
    """One queued notification (a group of alerts) for one receiver."""

    id: int
    receiver: str
    receiver_label: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class Checkpoint:
    """A partition's trend state and the next offset to read after it."""

    next_offset: int
    state: dict[str, Any]


@dataclass(frozen=True)
class PartitionClaim:
    """A partition taken over by one process: its write epoch and its stored checkpoint."""

    epoch: int
    checkpoint: Checkpoint | None


_ALERT_FIELDS = (
    "key",
    "rule_id",
    "kind",
    "series",
    "severity",
    "window_spec",
    "window_start",
    "window_end",
    "value",
    "baseline",
    "threshold",
    "volume",
    "summary",
    "labels",
)
_ALERT_COLUMNS = [alerts_table.c[name] for name in _ALERT_FIELDS]
# Every column shown by the API (``seq`` is internal; ``rowid`` is added per back end).
_ALERT_VISIBLE = [c for c in alerts_table.c if c.name != "seq"]


def _alert_from_row(row: Mapping[str, Any]) -> Alert:
    return Alert(
        key=row["key"],
        rule_id=row["rule_id"],
        kind=row["kind"],
        series=row["series"],
        severity=row["severity"],
        window_spec=row["window_spec"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        value=row["value"],
        baseline=row["baseline"],
        threshold=row["threshold"],
        volume=row["volume"],
        summary=row["summary"],
        labels=json.loads(row["labels"]),
    )


def _alert_values(a: Alert, now: float, state: str) -> dict[str, Any]:
    values = {name: getattr(a, name) for name in _ALERT_FIELDS}
    values["labels"] = json.dumps(a.labels)
    values.update(created_at=now, dispatch_state=state)
    return values


def _alert_row_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    data = dict(row)
    data["labels"] = json.loads(data["labels"])
    data["resolved"] = data.get("resolved_at") is not None
    data.pop("dispatch_owner", None)
    data["dispatch_error"] = scrub_urls(data.get("dispatch_error"))
    return data


class MonitorStore:
    """Thread-safe access to the store (an engine's pool; SQLite writers serialised).

    Args:
        target: a SQLAlchemy URL (``sqlite:///PATH``, ``postgresql://…``) or a SQLite
            file path. The schema is brought up to date (Alembic) on open.
    """

    def __init__(self, target: str | Path) -> None:
        self.url = database_url_for(target)
        self.engine: Engine = make_engine(self.url)
        self._sqlite = is_sqlite(self.engine)
        self._write = WriteGate(self.engine)
        migrate(self.engine, MIGRATIONS_DIR, VERSION_TABLE)

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def _insert(self, table: sa.Table) -> Any:
        """The dialect's INSERT (with ``on_conflict_do_nothing`` / ``_do_update``)."""
        return sqlite.insert(table) if self._sqlite else postgresql.insert(table)

    def _alert_seq(self) -> Any:
        return sa.literal_column("alerts.rowid") if self._sqlite else alerts_table.c.seq

    # ---- rules -----------------------------------------------------------------
    def seed_rules(self, rules: Iterable[RuleSpec]) -> bool:
        """Store the default rules once (first start); returns whether it seeded.

        The ``rules_seeded`` marker is inserted first, so of several processes starting
        at once exactly one seeds.
        """
        with self._write(), self.engine.begin() as db:
            # RETURNING, not rowcount: psycopg reports no row count for such INSERTs.
            marker = db.execute(
                self._insert(meta_table)
                .values(key="rules_seeded", value="1")
                .on_conflict_do_nothing()
                .returning(meta_table.c.key)
            ).first()
            if marker is None:
                return False
            now = time.time()
            for rule in rules:
                self._put_rule(db, rule, now)
            self._bump_rules_version(db)
        return True

    def _put_rule(self, db: Connection, rule: RuleSpec, now: float) -> None:
        stmt = self._insert(rules_table).values(
            id=rule.id, spec=json.dumps(rule.as_dict()), updated_at=now
        )
        db.execute(
            stmt.on_conflict_do_update(
                index_elements=[rules_table.c.id],
                set_={"spec": stmt.excluded.spec, "updated_at": stmt.excluded.updated_at},
            )
        )

    def _bump_rules_version(self, db: Connection) -> None:
        stmt = self._insert(meta_table).values(key="rules_version", value="1")
        db.execute(
            stmt.on_conflict_do_update(
                index_elements=[meta_table.c.key],
                set_={"value": sa.cast(sa.cast(meta_table.c.value, sa.Integer) + 1, sa.Text)},
            )
        )

    def rules_version(self) -> int:
        """Counter bumped by every rule change (workers reload when it moves)."""
        with self.engine.connect() as db:
            value = db.execute(
                sa.select(meta_table.c.value).where(meta_table.c.key == "rules_version")
            ).scalar()
        return int(value) if value is not None else 0

    def list_rules(self) -> list[RuleSpec]:
        """All stored rules, by id."""
        with self.engine.connect() as db:
            specs = db.execute(sa.select(rules_table.c.spec).order_by(rules_table.c.id)).scalars()
            return [RuleSpec.from_dict(json.loads(s)) for s in specs]

    def get_rule(self, rule_id: str) -> RuleSpec:
        """One rule. Raises NotFoundError."""
        with self.engine.connect() as db:
            spec = db.execute(
                sa.select(rules_table.c.spec).where(rules_table.c.id == rule_id)
            ).scalar()
        if spec is None:
            raise NotFoundError(f"rule {rule_id!r} not found")
        return RuleSpec.from_dict(json.loads(spec))

    def upsert_rule(self, rule: RuleSpec) -> bool:
        """Create or replace a rule; returns True when it was created."""
        with self._write(), self.engine.begin() as db:
            existed = (
                db.execute(sa.select(rules_table.c.id).where(rules_table.c.id == rule.id)).first()
                is not None
            )
            self._put_rule(db, rule, time.time())
            self._bump_rules_version(db)
        return not existed

    def delete_rule(self, rule_id: str) -> None:
        """Delete a rule. Raises NotFoundError."""
        with self._write(), self.engine.begin() as db:
            gone = db.execute(sa.delete(rules_table).where(rules_table.c.id == rule_id))
            if gone.rowcount == 0:
                raise NotFoundError(f"rule {rule_id!r} not found")
            self._bump_rules_version(db)

    # ---- silences --------------------------------------------------------------
    def add_silence(
        self,
        matchers: list[Matcher],
        starts_at: float,
        ends_at: float,
        created_by: str,
        comment: str,
    ) -> Silence:
        """Create a silence (validated by ``Silence``)."""
        silence = Silence(
            uuid.uuid4().hex[:12], tuple(matchers), starts_at, ends_at, created_by, comment
        )
        with self._write(), self.engine.begin() as db:
            db.execute(
                sa.insert(silences_table).values(
                    id=silence.id,
                    matchers=json.dumps([m.__dict__ for m in matchers]),
                    starts_at=starts_at,
                    ends_at=ends_at,
                    created_by=created_by,
                    comment=comment,
                    created_at=time.time(),
                )
            )
        return silence

    def list_silences(self, active_at: float | None = None) -> list[Silence]:
        """All silences, or only those active at ``active_at``."""
        with self.engine.connect() as db:
            rows = (
                db.execute(sa.select(silences_table).order_by(silences_table.c.created_at))
                .mappings()
                .all()
            )
        silences = [
            Silence(
                r["id"],
                tuple(Matcher(**m) for m in json.loads(r["matchers"])),
                r["starts_at"],
                r["ends_at"],
                r["created_by"],
                r["comment"],
            )
            for r in rows
        ]
        return [s for s in silences if active_at is None or s.active(active_at)]

    def expire_silence(self, silence_id: str) -> None:
        """End a silence now. Raises NotFoundError."""
        now = time.time()
        earliest = now - 1e-3
        starts = silences_table.c.starts_at
        with self._write(), self.engine.begin() as db:
            done = db.execute(
                sa.update(silences_table)
                .where(silences_table.c.id == silence_id)
                .values(ends_at=now, starts_at=sa.case((starts < earliest, starts), else_=earliest))
            )
            if done.rowcount == 0:
                raise NotFoundError(f"silence {silence_id!r} not found")

    # ---- trend partitions and batch commit -------------------------------------
    def claim_partition(
        self, consumer_group: str, topic: str, partition: int, owner: str
    ) -> PartitionClaim:
        """Take a partition over: bump its epoch and read its checkpoint, atomically.

        Every later :meth:`commit_trend_batch` for the partition must carry the returned
        epoch; the previous owner's writes are refused from now on. On PostgreSQL the
        epoch row stays locked until this commits, so a previous owner's batch either
        commits before (and this reads its checkpoint) or is fenced.
        """
        key = (
            (partition_owners_table.c.consumer_group == consumer_group)
            & (partition_owners_table.c.topic == topic)
            & (partition_owners_table.c.partition == partition)
        )
        now = time.time()
        with self._write(), self.engine.begin() as db:
            for _ in range(2):  # a concurrent first claim may insert between the two
                bumped = db.execute(
                    sa.update(partition_owners_table)
                    .where(key)
                    .values(epoch=partition_owners_table.c.epoch + 1, owner=owner, claimed_at=now)
                )
                if bumped.rowcount:
                    break
                inserted = db.execute(
                    self._insert(partition_owners_table)
                    .values(
                        consumer_group=consumer_group,
                        topic=topic,
                        partition=partition,
                        epoch=1,
                        owner=owner,
                        claimed_at=now,
                    )
                    .on_conflict_do_nothing()
                    .returning(partition_owners_table.c.epoch)
                ).first()
                if inserted is not None:
                    break
            epoch = db.execute(sa.select(partition_owners_table.c.epoch).where(key)).scalar_one()
            row = db.execute(
                sa.select(checkpoints_table.c.next_offset, checkpoints_table.c.state).where(
                    (checkpoints_table.c.consumer_group == consumer_group)
                    & (checkpoints_table.c.topic == topic)
                    & (checkpoints_table.c.partition == partition)
                )
            ).first()
        checkpoint = Checkpoint(int(row.next_offset), json.loads(row.state)) if row else None
        return PartitionClaim(int(epoch), checkpoint)

    def partition_epoch(self, consumer_group: str, topic: str, partition: int) -> int | None:
        """The current write epoch of a partition (None before its first claim)."""
        with self.engine.connect() as db:
            return db.execute(
                sa.select(partition_owners_table.c.epoch).where(
                    (partition_owners_table.c.consumer_group == consumer_group)
                    & (partition_owners_table.c.topic == topic)
                    & (partition_owners_table.c.partition == partition)
                )
            ).scalar()

    def _check_fences(
        self, db: Connection, consumer_group: str, topic: str, epochs: Mapping[int, int]
    ) -> None:
        lost = []
        for partition, epoch in sorted(epochs.items()):  # sorted: one lock order for all
            # A no-op UPDATE rather than a SELECT: on PostgreSQL it locks the row until
            # commit, so a claim by another process waits for this batch.
            held = db.execute(
                sa.update(partition_owners_table)
                .where(
                    (partition_owners_table.c.consumer_group == consumer_group)
                    & (partition_owners_table.c.topic == topic)
                    & (partition_owners_table.c.partition == partition)
                    & (partition_owners_table.c.epoch == epoch)
                )
                .values(epoch=partition_owners_table.c.epoch)
            )
            if held.rowcount != 1:
                lost.append(partition)
        if lost:
            raise PartitionFencedError(lost)

    def commit_trend_batch(
        self,
        consumer_group: str,
        topic: str,
        checkpoints: Mapping[int, Checkpoint],
        closed: list[ClosedWindow],
        alerts: list[Alert],
        epochs: Mapping[int, int] | None = None,
        resolved: Iterable[Resolution] = (),
    ) -> list[Alert]:
        """Atomically store windows, alerts (with their evidence), resolutions and
        checkpoints; return the alerts that are new.

        An alert matching an active silence is stored as ``silenced`` and never delivered.
        A resolution marks a firing alert resolved (once: a replayed one changes nothing)
        and, unless the alert was silenced, queues its resolved notification.

        Args:
            epochs: partition -> the epoch its claim returned, for every partition the
                batch comes from. None skips fencing (a single writer, tests).

        Raises:
            PartitionFencedError: a partition in ``epochs`` was claimed by another
                process since; nothing was written.
        """
        now = time.time()
        new: list[Alert] = []
        silences = self.list_silences(active_at=now) if alerts else []
        with self._write(), self.engine.begin() as db:
            if epochs:
                self._check_fences(db, consumer_group, topic, epochs)
            if closed:
                stmt = self._insert(trend_points_table)
                db.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[
                            trend_points_table.c.spec,
                            trend_points_table.c.series,
                            trend_points_table.c.start,
                        ],
                        set_={
                            name: stmt.excluded[name]
                            for name in (
                                "end",
                                "count",
                                "negative",
                                "neutral",
                                "positive",
                                "negative_share",
                                "sentiment_index",
                                "created_at",
                            )
                        },
                    ),
                    [
                        {
                            "spec": w.spec,
                            "series": w.series,
                            "start": w.start,
                            "end": w.end,
                            "count": w.count,
                            "negative": w.negative,
                            "neutral": w.neutral,
                            "positive": w.positive,
                            "negative_share": w.negative_share,
                            "sentiment_index": w.sentiment_index,
                            "created_at": now,
                        }
                        for w in closed
                    ],
                )
            for a in alerts:
                state = "silenced" if is_silenced(a.labels, silences, now) else "pending"
                created = db.execute(
                    self._insert(alerts_table)
                    .values(**_alert_values(a, now, state))
                    .on_conflict_do_nothing(index_elements=[alerts_table.c.key])
                    .returning(alerts_table.c.key)
                ).first()
                if created is not None:
                    new.append(a)
                    self._insert_evidence(db, a)
            for r in resolved:
                a_ = alerts_table.c
                db.execute(
                    sa.update(alerts_table)
                    .where((a_.key == r.key) & a_.resolved_at.is_(None))
                    .values(
                        resolved_at=now,
                        resolve_state=sa.case(
                            (a_.dispatch_state == "silenced", "skipped"), else_="pending"
                        ),
                    )
                )
            for partition, cp in checkpoints.items():
                stmt = self._insert(checkpoints_table).values(
                    consumer_group=consumer_group,
                    topic=topic,
                    partition=partition,
                    next_offset=cp.next_offset,
                    state=json.dumps(cp.state),
                    updated_at=now,
                )
                db.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[
                            checkpoints_table.c.consumer_group,
                            checkpoints_table.c.topic,
                            checkpoints_table.c.partition,
                        ],
                        set_={
                            "next_offset": stmt.excluded.next_offset,
                            "state": stmt.excluded.state,
                            "updated_at": stmt.excluded.updated_at,
                        },
                    )
                )
        return new

    def _insert_evidence(self, db: Connection, alert: Alert) -> None:
        rows = [
            {
                "alert_key": alert.key,
                "rank": rank,
                "message_id": str(e.get("id", "")),
                "text": str(e.get("text", "")),
                "source": str(e.get("source", "")),
                "sentiment": str(e.get("sentiment", "")),
                "probability": float(e.get("probability", 0.0)),
                "negative": float(e.get("negative", 0.0)),
                "event_time": float(e.get("event_time", 0.0)),
            }
            for rank, e in enumerate(alert.evidence)
        ]
        if rows:
            db.execute(self._insert(alert_evidence_table).on_conflict_do_nothing(), rows)

    def alert_evidence(self, key: str) -> list[dict[str, Any]]:
        """The messages behind an alert, most negative first."""
        e = alert_evidence_table.c
        query = sa.select(alert_evidence_table).where(e.alert_key == key).order_by(e.rank)
        with self.engine.connect() as db:
            rows = db.execute(query).mappings().all()
        return [
            {
                "id": r["message_id"],
                "text": r["text"],
                "source": r["source"],
                "sentiment": r["sentiment"],
                "probability": r["probability"],
                "negative": r["negative"],
                "event_time": r["event_time"],
            }
            for r in rows
        ]

    def load_checkpoint(self, consumer_group: str, topic: str, partition: int) -> Checkpoint | None:
        """The stored checkpoint of one partition, if any."""
        with self.engine.connect() as db:
            row = db.execute(
                sa.select(checkpoints_table.c.next_offset, checkpoints_table.c.state).where(
                    (checkpoints_table.c.consumer_group == consumer_group)
                    & (checkpoints_table.c.topic == topic)
                    & (checkpoints_table.c.partition == partition)
                )
            ).first()
        return Checkpoint(int(row.next_offset), json.loads(row.state)) if row else None

    # ---- alert delivery outbox -------------------------------------------------
    def _pending_alerts(self, db: Connection, older_than: float, limit: int) -> list[Alert]:
        rows = (
            db.execute(
                sa.select(*_ALERT_COLUMNS)
                .where(
                    (alerts_table.c.dispatch_state == "pending")
                    & (alerts_table.c.created_at <= older_than)
                )
                .order_by(alerts_table.c.created_at, alerts_table.c.key)
                .limit(limit)
            )
            .mappings()
            .all()
        )
        return [_alert_from_row(r) for r in rows]

    def _take_alert(self, db: Connection, key: str, state: str, **values: Any) -> bool:
        """Move one alert out of ``pending``; False when another process took it first."""
        taken = db.execute(
            sa.update(alerts_table)
            .where((alerts_table.c.key == key) & (alerts_table.c.dispatch_state == "pending"))
            .values(dispatch_state=state, **values)
        )
        return taken.rowcount == 1

    def claim_pending_alerts(self, owner: str, older_than: float, limit: int = 100) -> list[Alert]:
        """Atomically take pending alerts created before ``older_than`` for delivery."""
        with self._write(), self.engine.begin() as db:
            candidates = self._pending_alerts(db, older_than, limit)
            return [
                a
                for a in candidates
                if self._take_alert(db, a.key, "claimed", dispatch_owner=owner)
            ]

    def mark_delivered(self, keys: list[str], attempts: int, error: str | None) -> None:
        """Record the outcome of a delivery (``sent`` or ``failed`` with the error)."""
        state = "failed" if error else "sent"
        with self._write(), self.engine.begin() as db:
            for key in keys:
                db.execute(
                    sa.update(alerts_table)
                    .where(alerts_table.c.key == key)
                    .values(
                        dispatch_state=state,
                        dispatch_attempts=alerts_table.c.dispatch_attempts + attempts,
                        dispatch_error=error,
                        sent_at=time.time(),
                    )
                )

    # ---- per-receiver delivery queues -----------------------------------------
    def enqueue_deliveries(
        self,
        receivers: list[Receiver],
        older_than: float,
        make_groups: Callable[[list[Alert]], list[tuple[list[str], dict[str, Any]]]],
        limit: int = 500,
    ) -> int:
        """Move pending alerts into one delivery queue per receiver, atomically.

        In ONE transaction: the pending alerts created before ``older_than`` are taken
        (a conditional UPDATE per alert, so of two processes racing for an alert exactly
        one takes it), grouped by ``make_groups`` (-> (alert keys, payload) pairs), and one
        delivery row per group and receiver is inserted.

        Returns:
            The number of alerts queued.
        """
        now = time.time()
        state = "queued" if receivers else "sent"
        with self._write(), self.engine.begin() as db:
            candidates = self._pending_alerts(db, older_than, limit)
            sent_at = now if state == "sent" else None
            alerts = [a for a in candidates if self._take_alert(db, a.key, state, sent_at=sent_at)]
            if not alerts:
                return 0
            self._queue_deliveries(db, receivers, make_groups(alerts), now)
        return len(alerts)

    def _queue_deliveries(
        self,
        db: Connection,
        receivers: list[Receiver],
        groups: list[tuple[list[str], dict[str, Any]]],
        now: float,
    ) -> None:
        """One delivery row per group and receiver, linked to the alerts it carries."""
        for keys, payload in groups:
            body = json.dumps(payload)
            for receiver in receivers:
                delivery_id = db.execute(
                    sa.insert(deliveries_table).values(
                        receiver=receiver.id,
                        receiver_label=receiver.label,
                        payload=body,
                        next_attempt_at=now,
                        created_at=now,
                    )
                ).inserted_primary_key[0]
                db.execute(
                    self._insert(delivery_alerts_table).on_conflict_do_nothing(),
                    [{"alert_key": key, "delivery_id": delivery_id} for key in keys],
                )

    def enqueue_resolved(
        self,
        receivers: list[Receiver],
        make_groups: Callable[[list[Alert]], list[tuple[list[str], dict[str, Any]]]],
        limit: int = 500,
    ) -> int:
        """Queue the resolved notifications of resolved alerts, one per group and receiver.

        Only alerts whose firing notification was queued already are taken (so a
        receiver hears "firing" before "resolved"); each is taken with a conditional
        UPDATE (``resolve_state`` still ``pending``), so racing dispatchers queue it once.

        Returns:
            The number of alerts queued.
        """
        now = time.time()
        a = alerts_table.c
        with self._write(), self.engine.begin() as db:
            rows = (
                db.execute(
                    sa.select(*_ALERT_COLUMNS)
                    .where(
                        (a.resolve_state == "pending")
                        & a.dispatch_state.not_in(("pending", "silenced"))
                    )
                    .order_by(a.resolved_at, a.key)
                    .limit(limit)
                )
                .mappings()
                .all()
            )
            taken = []
            for row in rows:
                won = db.execute(
                    sa.update(alerts_table)
                    .where((a.key == row["key"]) & (a.resolve_state == "pending"))
                    .values(resolve_state="queued" if receivers else "sent")
                )
                if won.rowcount == 1:
                    taken.append(_alert_from_row(row))
            if not taken or not receivers:
                return len(taken)
            self._queue_deliveries(db, receivers, make_groups(taken), now)
        return len(taken)

    def alerts_by_keys(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        """Alert rows (as the API shows them) for these keys, in the given order."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return []
        query = sa.select(*_ALERT_VISIBLE).where(alerts_table.c.key.in_(wanted))
        with self.engine.connect() as db:
            rows = {r["key"]: _alert_row_dict(r) for r in db.execute(query).mappings()}
        return [rows[k] for k in wanted if k in rows]

    def firing_alerts(self, since: float, limit: int = 1000) -> list[dict[str, Any]]:
        """Alerts still firing (not resolved, not silenced) created after ``since``, oldest first."""
        a = alerts_table.c
        query = (
            sa.select(*_ALERT_VISIBLE)
            .where(
                a.resolved_at.is_(None) & (a.dispatch_state != "silenced") & (a.created_at >= since)
            )
            .order_by(a.created_at, a.key)
            .limit(limit)
        )
        with self.engine.connect() as db:
            return [_alert_row_dict(r) for r in db.execute(query).mappings()]

    def resolve_stale_alerts(self, created_before: float) -> int:
        """Resolve firing alerts created before ``created_before`` (a series whose partition
        stopped moving can not clear its alert through windows); returns how many."""
        a = alerts_table.c
        with self._write(), self.engine.begin() as db:
            return int(
                db.execute(
                    sa.update(alerts_table)
                    .where(a.resolved_at.is_(None) & (a.created_at < created_before))
                    .values(
                        resolved_at=time.time(),
                        resolve_state=sa.case(
                            (a.dispatch_state == "silenced", "skipped"), else_="pending"
                        ),
                    )
                ).rowcount
            )

    def claim_delivery(
        self,
        receiver: str,
        owner: str,
        claim_timeout_s: float,
        now: float | None = None,
        due_by: float | None = None,
    ) -> Delivery | None:
        """Claim the next due delivery of ``receiver`` for ``owner``, or None.

        The claim is a conditional UPDATE (still pending, and unclaimed or its claim
        older than ``claim_timeout_s``), so of two dispatchers racing for one row exactly
        one wins; a dispatcher that died mid-delivery loses its claim after the timeout.
        ``due_by`` (default ``now``) limits the claim to deliveries due by then: a round
        that passes its start time does not take a delivery it rescheduled itself.
        """
        now = time.time() if now is None else now
        due = now if due_by is None else min(due_by, now)
        stale = now - claim_timeout_s
        d = deliveries_table.c
        claimable = (d.state == "pending") & (d.claimed_by.is_(None) | (d.claimed_at < stale))
        with self._write(), self.engine.begin() as db:
            # Read the candidates completely first: an open SQLite read cursor would turn
            # the UPDATE into a snapshot upgrade, which fails at once instead of waiting.
            candidates = (
                db.execute(
                    sa.select(d.id)
                    .where((d.receiver == receiver) & (d.next_attempt_at <= due) & claimable)
                    .order_by(d.next_attempt_at, d.id)
                    .limit(5)
                )
                .scalars()
                .all()
            )
            for delivery_id in candidates:
                won = db.execute(
                    sa.update(deliveries_table)
                    .where((d.id == delivery_id) & claimable)
                    .values(claimed_by=owner, claimed_at=now)
                )
                if won.rowcount == 1:
                    full = db.execute(sa.select(deliveries_table).where(d.id == delivery_id)).one()
                    return Delivery(
                        full.id,
                        full.receiver,
                        full.receiver_label,
                        json.loads(full.payload),
                        full.attempts,
                    )
        return None

    def finish_delivery(
        self, delivery_id: int, owner: str, error: str | None, retry_at: float | None = None
    ) -> bool:
        """Record an attempt by the claim's owner: sent, or failed and due again at ``retry_at``.

        ``error`` must already be redacted (a short class such as "HTTP 503"). The alerts
        of the delivery get a summary: ``sent`` once every receiver has it, else
        ``retrying`` with ``receiver host: error``.

        Returns:
            False when the claim was lost (expired and taken by another dispatcher).
        """
        now = time.time()
        d = deliveries_table.c
        mine = (d.id == delivery_id) & (d.claimed_by == owner)
        if error is None:
            values: dict[str, Any] = {"state": "sent", "sent_at": now, "last_error": None}
        else:
            values = {
                "next_attempt_at": retry_at if retry_at is not None else now,
                "last_error": error,
            }
        with self._write(), self.engine.begin() as db:
            done = db.execute(
                sa.update(deliveries_table)
                .where(mine)
                .values(attempts=d.attempts + 1, claimed_by=None, claimed_at=None, **values)
            )
            if done.rowcount != 1:
                return False
            keys = (
                db.execute(
                    sa.select(delivery_alerts_table.c.alert_key).where(
                        delivery_alerts_table.c.delivery_id == delivery_id
                    )
                )
                .scalars()
                .all()
            )
            for key in keys:
                self._summarise_alert(db, key, now)
        return True

    def _summarise_alert(self, db: Connection, key: str, now: float) -> None:
        d = deliveries_table.c
        rows = db.execute(
            sa.select(d.state, d.attempts, d.last_error, d.receiver_label)
            .select_from(
                deliveries_table.join(
                    delivery_alerts_table, delivery_alerts_table.c.delivery_id == d.id
                )
            )
            .where(delivery_alerts_table.c.alert_key == key)
        ).all()
        if not rows:
            return
        attempts = sum(r.attempts for r in rows)
        errors = [
            f"{r.receiver_label}: {r.last_error}"
            for r in rows
            if r.state != "sent" and r.last_error
        ]
        if all(r.state == "sent" for r in rows):
            state, sent_at = "sent", now
        else:
            state, sent_at = ("retrying" if errors else "queued"), None
        db.execute(
            sa.update(alerts_table)
            .where(alerts_table.c.key == key)
            .values(
                dispatch_state=state,
                dispatch_attempts=attempts,
                dispatch_error="; ".join(errors) or None,
                sent_at=sent_at,
            )
        )

    def list_deliveries(self, receiver: str | None = None) -> list[dict[str, Any]]:
        """Delivery rows (for tests and diagnostics), oldest first."""
        query = sa.select(deliveries_table).order_by(deliveries_table.c.id)
        if receiver:
            query = query.where(deliveries_table.c.receiver == receiver)
        with self.engine.connect() as db:
            return [dict(r) for r in db.execute(query).mappings()]

    # ---- retention -------------------------------------------------------------
    def apply_retention(
        self, trend_points_days: float, alerts_days: float, now: float | None = None
    ) -> dict[str, int]:
        """Delete trend points and finished alerts stored longer ago than their retention.

        Alerts still waiting for a delivery are kept whatever their age (never drop an
        undelivered alert); their delivery rows go with them once they are finished.

        Returns:
            Rows deleted per table.
        """
        from finance_monitor import metrics

        now = time.time() if now is None else now
        points_cutoff = now - trend_points_days * 86400.0
        alerts_cutoff = now - alerts_days * 86400.0
        with self._write(), self.engine.begin() as db:
            points = db.execute(
                sa.delete(trend_points_table).where(trend_points_table.c.created_at < points_cutoff)
            ).rowcount
            alerts = db.execute(
                sa.delete(alerts_table).where(
                    (alerts_table.c.created_at < alerts_cutoff)
                    & alerts_table.c.dispatch_state.in_(("sent", "silenced"))
                )
            ).rowcount
            db.execute(
                sa.delete(delivery_alerts_table).where(
                    delivery_alerts_table.c.alert_key.not_in(sa.select(alerts_table.c.key))
                )
            )
            db.execute(
                sa.delete(alert_evidence_table).where(
                    alert_evidence_table.c.alert_key.not_in(sa.select(alerts_table.c.key))
                )
            )
            deliveries = db.execute(
                sa.delete(deliveries_table).where(
                    (deliveries_table.c.state == "sent")
                    & deliveries_table.c.id.not_in(sa.select(delivery_alerts_table.c.delivery_id))
                )
            ).rowcount
        metrics.RETENTION_DELETED.labels("trend_points").inc(points)
        metrics.RETENTION_DELETED.labels("alerts").inc(alerts)
        return {"trend_points": points, "alerts": alerts, "deliveries": deliveries}

    # ---- alert queries ---------------------------------------------------------
    def list_alerts(
        self,
        limit: int = 100,
        status: str | None = None,
        series: str | None = None,
        after_rowid: int = 0,
    ) -> list[dict[str, Any]]:
        """Recent alerts, newest first (``rowid``, the insertion order, for incremental reads)."""
        seq = self._alert_seq()
        query = sa.select(seq.label("rowid"), *_ALERT_VISIBLE).where(seq > after_rowid)
        if status:
            query = query.where(alerts_table.c.status == status)
        if series:
            query = query.where(alerts_table.c.series == series)
        query = query.order_by(seq.desc()).limit(limit)
        with self.engine.connect() as db:
            return [_alert_row_dict(r) for r in db.execute(query).mappings()]

    def get_alert(self, key: str) -> dict[str, Any]:
        """One alert. Raises NotFoundError."""
        query = sa.select(self._alert_seq().label("rowid"), *_ALERT_VISIBLE).where(
            alerts_table.c.key == key
        )
        with self.engine.connect() as db:
            row = db.execute(query).mappings().first()
        if row is None:
            raise NotFoundError(f"alert {key!r} not found")
        data = _alert_row_dict(row)
        data["evidence"] = self.alert_evidence(key)
        return data

    def acknowledge_alert(self, key: str, by: str) -> dict[str, Any]:
        """Mark an alert acknowledged. Raises NotFoundError."""
        with self._write(), self.engine.begin() as db:
            done = db.execute(
                sa.update(alerts_table)
                .where(alerts_table.c.key == key)
                .values(status="acknowledged", ack_by=by, ack_at=time.time())
            )
            if done.rowcount == 0:
                raise NotFoundError(f"alert {key!r} not found")
        return self.get_alert(key)

    def count_alerts(self) -> int:
        """Number of stored alerts."""
        with self.engine.connect() as db:
            return int(db.execute(sa.select(sa.func.count()).select_from(alerts_table)).scalar())

    # ---- trend queries ---------------------------------------------------------
    def trend_series(
        self, series: str, spec: str = "tumbling", limit: int = 200
    ) -> list[dict[str, Any]]:
        """Closed windows of one series, oldest first."""
        t = trend_points_table.c
        latest = (
            sa.select(trend_points_table)
            .where((t.series == series) & (t.spec == spec))
            .order_by(t.start.desc())
            .limit(limit)
            .subquery()
        )
        with self.engine.connect() as db:
            rows = db.execute(sa.select(latest).order_by(latest.c.start)).mappings()
            return [dict(r) for r in rows]

    def trend_points_after(
        self, after_id: int, spec: str = "tumbling", limit: int = 500
    ) -> list[dict[str, Any]]:
        """Trend points stored after id ``after_id`` (for the live stream)."""
        t = trend_points_table.c
        query = (
            sa.select(trend_points_table)
            .where((t.id > after_id) & (t.spec == spec))
            .order_by(t.id)
            .limit(limit)
        )
        with self.engine.connect() as db:
            return [dict(r) for r in db.execute(query).mappings()]

    def list_series(self) -> list[dict[str, Any]]:
        """Every series with a stored window, with its window count and last window end."""
        t = trend_points_table.c
        messages = sa.func.sum(t.count)
        query = (
            sa.select(
                t.series,
                sa.func.count().label("windows"),
                sa.func.max(t.end).label("last_end"),
                messages.label("messages"),
            )
            .where(t.spec == "tumbling")
            .group_by(t.series)
            .order_by(messages.desc(), t.series)
        )
        with self.engine.connect() as db:
            rows = db.execute(query).mappings().all()
        return [
            {
                "series": r["series"],
                "windows": int(r["windows"]),
                "last_end": r["last_end"],
                "messages": int(r["messages"] or 0),
            }
            for r in rows
        ]

    def last_trend_point_id(self) -> int:
        """Largest trend point id (0 when empty)."""
        with self.engine.connect() as db:
            return int(
                db.execute(
                    sa.select(sa.func.coalesce(sa.func.max(trend_points_table.c.id), 0))
                ).scalar_one()
            )
