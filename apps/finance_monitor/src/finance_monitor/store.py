"""SQLite store: alerts (with delivery outbox), silences, rules, trend points and trend checkpoints.

One file shared by the API and any number of trend processes on the same host (WAL
mode). The trend stage writes a batch's closed windows, new alerts and its partition
checkpoints (state + next offset) in ONE transaction, so the stored state always
matches the offsets it reflects. Alerts are inserted with ``INSERT OR IGNORE`` on their
stable key: a replayed window can never create, or deliver, an alert twice.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finance_monitor.errors import NotFoundError
from finance_monitor.rules import Alert, RuleSpec
from finance_monitor.silencing import Matcher, Silence, is_silenced
from finance_monitor.windows import ClosedWindow

SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    consumer_group TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL, state TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition));
CREATE TABLE IF NOT EXISTS alerts (
    key TEXT PRIMARY KEY, rule_id TEXT NOT NULL, kind TEXT NOT NULL, series TEXT NOT NULL,
    severity TEXT NOT NULL, window_spec TEXT NOT NULL, window_start REAL NOT NULL,
    window_end REAL NOT NULL, value REAL NOT NULL, baseline REAL NOT NULL, threshold REAL NOT NULL,
    volume INTEGER NOT NULL, summary TEXT NOT NULL, labels TEXT NOT NULL, created_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'firing', ack_by TEXT, ack_at REAL,
    dispatch_state TEXT NOT NULL DEFAULT 'pending', dispatch_owner TEXT,
    dispatch_attempts INTEGER NOT NULL DEFAULT 0, dispatch_error TEXT, sent_at REAL);
CREATE INDEX IF NOT EXISTS alerts_dispatch ON alerts (dispatch_state, created_at);
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY, matchers TEXT NOT NULL, starts_at REAL NOT NULL, ends_at REAL NOT NULL,
    created_by TEXT NOT NULL, comment TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rules (id TEXT PRIMARY KEY, spec TEXT NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trend_points (
    id INTEGER PRIMARY KEY AUTOINCREMENT, spec TEXT NOT NULL, series TEXT NOT NULL,
    start REAL NOT NULL, end REAL NOT NULL, count INTEGER NOT NULL, negative INTEGER NOT NULL,
    neutral INTEGER NOT NULL, positive INTEGER NOT NULL, negative_share REAL NOT NULL,
    sentiment_index REAL NOT NULL, created_at REAL NOT NULL, UNIQUE (spec, series, start));
CREATE INDEX IF NOT EXISTS trend_points_created ON trend_points (created_at);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, receiver TEXT NOT NULL, receiver_label TEXT NOT NULL,
    payload TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL,
    claimed_by TEXT, claimed_at REAL, last_error TEXT, created_at REAL NOT NULL, sent_at REAL);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (receiver, state, next_attempt_at);
CREATE TABLE IF NOT EXISTS delivery_alerts (
    alert_key TEXT NOT NULL, delivery_id INTEGER NOT NULL, PRIMARY KEY (alert_key, delivery_id));
CREATE INDEX IF NOT EXISTS delivery_alerts_delivery ON delivery_alerts (delivery_id);
"""

_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s;,]+")


def scrub_urls(text: str | None) -> str | None:
    """Replace every URL in ``text`` by its host (older rows stored full URLs)."""
    if not text:
        return text
    from finance_monitor.webhooks import redact_url

    return _URL.sub(lambda m: redact_url(m.group()), text)


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


ALERT_COLUMNS = (
    "key, rule_id, kind, series, severity, window_spec, window_start, window_end, value, baseline,"
    " threshold, volume, summary, labels"
)


@dataclass(frozen=True)
class Checkpoint:
    """A partition's trend state and the next offset to read after it."""

    next_offset: int
    state: dict[str, Any]


def _alert_from_row(row: sqlite3.Row) -> Alert:
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


def _alert_row_dict(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["labels"] = json.loads(data["labels"])
    data.pop("dispatch_owner", None)
    data["dispatch_error"] = scrub_urls(data.get("dispatch_error"))
    return data


class MonitorStore:
    """Thread-safe access to the SQLite file (one connection, a lock, WAL mode)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            str(self.path), timeout=30, check_same_thread=False, isolation_level=None
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    # ---- rules -----------------------------------------------------------------
    def seed_rules(self, rules: Iterable[RuleSpec]) -> bool:
        """Store the default rules once (first start); returns whether it seeded."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM meta WHERE key='rules_seeded'").fetchone():
                return False
            now = time.time()
            for rule in rules:
                db.execute(
                    "INSERT OR REPLACE INTO rules VALUES (?, ?, ?)",
                    (rule.id, json.dumps(rule.as_dict()), now),
                )
            db.execute("INSERT INTO meta VALUES ('rules_seeded', '1')")
            self._bump_rules_version(db)
        return True

    def _bump_rules_version(self, db: sqlite3.Connection) -> None:
        db.execute(
            "INSERT INTO meta VALUES ('rules_version', '1') ON CONFLICT(key) DO UPDATE "
            "SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
        )

    def rules_version(self) -> int:
        """Counter bumped by every rule change (workers reload when it moves)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key='rules_version'").fetchone()
        return int(row["value"]) if row else 0

    def list_rules(self) -> list[RuleSpec]:
        """All stored rules, by id."""
        with self._lock:
            rows = self._db.execute("SELECT spec FROM rules ORDER BY id").fetchall()
        return [RuleSpec.from_dict(json.loads(r["spec"])) for r in rows]

    def get_rule(self, rule_id: str) -> RuleSpec:
        """One rule. Raises NotFoundError."""
        with self._lock:
            row = self._db.execute("SELECT spec FROM rules WHERE id=?", (rule_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"rule {rule_id!r} not found")
        return RuleSpec.from_dict(json.loads(row["spec"]))

    def upsert_rule(self, rule: RuleSpec) -> bool:
        """Create or replace a rule; returns True when it was created."""
        with self._tx() as db:
            existed = (
                db.execute("SELECT 1 FROM rules WHERE id=?", (rule.id,)).fetchone() is not None
            )
            db.execute(
                "INSERT OR REPLACE INTO rules VALUES (?, ?, ?)",
                (rule.id, json.dumps(rule.as_dict()), time.time()),
            )
            self._bump_rules_version(db)
        return not existed

    def delete_rule(self, rule_id: str) -> None:
        """Delete a rule. Raises NotFoundError."""
        with self._tx() as db:
            if db.execute("DELETE FROM rules WHERE id=?", (rule_id,)).rowcount == 0:
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
        with self._tx() as db:
            db.execute(
                "INSERT INTO silences VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    silence.id,
                    json.dumps([m.__dict__ for m in matchers]),
                    starts_at,
                    ends_at,
                    created_by,
                    comment,
                    time.time(),
                ),
            )
        return silence

    def list_silences(self, active_at: float | None = None) -> list[Silence]:
        """All silences, or only those active at ``active_at``."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM silences ORDER BY created_at").fetchall()
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
        with self._tx() as db:
            row = db.execute("SELECT starts_at FROM silences WHERE id=?", (silence_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"silence {silence_id!r} not found")
            db.execute(
                "UPDATE silences SET ends_at=?, starts_at=MIN(starts_at, ?) WHERE id=?",
                (now, now - 1e-3, silence_id),
            )

    # ---- trend batch commit ----------------------------------------------------
    def commit_trend_batch(
        self,
        consumer_group: str,
        topic: str,
        checkpoints: dict[int, Checkpoint],
        closed: list[ClosedWindow],
        alerts: list[Alert],
    ) -> list[Alert]:
        """Atomically store windows, alerts and checkpoints; return the alerts that are new.

        An alert matching an active silence is stored as ``silenced`` and never delivered.
        """
        now = time.time()
        new: list[Alert] = []
        silences = self.list_silences(active_at=now) if alerts else []
        with self._tx() as db:
            for w in closed:
                db.execute(
                    "INSERT OR REPLACE INTO trend_points (spec, series, start, end, count, negative, neutral,"
                    " positive, negative_share, sentiment_index, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        w.spec,
                        w.series,
                        w.start,
                        w.end,
                        w.count,
                        w.negative,
                        w.neutral,
                        w.positive,
                        w.negative_share,
                        w.sentiment_index,
                        now,
                    ),
                )
            for a in alerts:
                state = "silenced" if is_silenced(a.labels, silences, now) else "pending"
                cur = db.execute(
                    f"INSERT OR IGNORE INTO alerts ({ALERT_COLUMNS}, created_at, dispatch_state)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        a.key,
                        a.rule_id,
                        a.kind,
                        a.series,
                        a.severity,
                        a.window_spec,
                        a.window_start,
                        a.window_end,
                        a.value,
                        a.baseline,
                        a.threshold,
                        a.volume,
                        a.summary,
                        json.dumps(a.labels),
                        now,
                        state,
                    ),
                )
                if cur.rowcount:
                    new.append(a)
            for partition, cp in checkpoints.items():
                db.execute(
                    "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?, ?)",
                    (consumer_group, topic, partition, cp.next_offset, json.dumps(cp.state), now),
                )
        return new

    def load_checkpoint(self, consumer_group: str, topic: str, partition: int) -> Checkpoint | None:
        """The stored checkpoint of one partition, if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT next_offset, state FROM checkpoints WHERE consumer_group=? AND topic=? AND partition=?",
                (consumer_group, topic, partition),
            ).fetchone()
        return Checkpoint(row["next_offset"], json.loads(row["state"])) if row else None

    # ---- alert delivery outbox -------------------------------------------------
    def claim_pending_alerts(self, owner: str, older_than: float, limit: int = 100) -> list[Alert]:
        """Atomically take pending alerts created before ``older_than`` for delivery."""
        with self._tx() as db:
            rows = db.execute(
                f"SELECT {ALERT_COLUMNS} FROM alerts WHERE dispatch_state='pending' AND created_at<=?"
                " ORDER BY created_at LIMIT ?",
                (older_than, limit),
            ).fetchall()
            for row in rows:
                db.execute(
                    "UPDATE alerts SET dispatch_state='claimed', dispatch_owner=? WHERE key=?",
                    (owner, row["key"]),
                )
        return [_alert_from_row(r) for r in rows]

    def mark_delivered(self, keys: list[str], attempts: int, error: str | None) -> None:
        """Record the outcome of a delivery (``sent`` or ``failed`` with the error)."""
        state = "failed" if error else "sent"
        with self._tx() as db:
            for key in keys:
                db.execute(
                    "UPDATE alerts SET dispatch_state=?, dispatch_attempts=dispatch_attempts+?,"
                    " dispatch_error=?, sent_at=? WHERE key=?",
                    (state, attempts, error, time.time(), key),
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

        In ONE write transaction: the pending alerts created before ``older_than`` are
        grouped by ``make_groups`` (-> (alert keys, payload) pairs), one delivery row per
        group and receiver is inserted, and the alerts become ``queued``. Two processes
        can never queue the same alert twice (SQLite serialises write transactions).

        Returns:
            The number of alerts queued.
        """
        now = time.time()
        with self._tx() as db:
            rows = db.execute(
                f"SELECT {ALERT_COLUMNS} FROM alerts WHERE dispatch_state='pending'"
                " AND created_at<=? ORDER BY created_at LIMIT ?",
                (older_than, limit),
            ).fetchall()
            if not rows:
                return 0
            alerts = [_alert_from_row(r) for r in rows]
            for keys, payload in make_groups(alerts):
                body = json.dumps(payload)
                for receiver in receivers:
                    cur = db.execute(
                        "INSERT INTO deliveries (receiver, receiver_label, payload,"
                        " next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?)",
                        (receiver.id, receiver.label, body, now, now),
                    )
                    db.executemany(
                        "INSERT OR IGNORE INTO delivery_alerts VALUES (?, ?)",
                        [(key, cur.lastrowid) for key in keys],
                    )
            state = "queued" if receivers else "sent"
            db.executemany(
                "UPDATE alerts SET dispatch_state=?, sent_at=CASE WHEN ?='sent' THEN ? END"
                " WHERE key=?",
                [(state, state, now, a.key) for a in alerts],
            )
        return len(alerts)

    def claim_delivery(
        self, receiver: str, owner: str, claim_timeout_s: float, now: float | None = None
    ) -> Delivery | None:
        """Claim the next due delivery of ``receiver`` for ``owner``, or None.

        The claim is a conditional UPDATE (still pending, and unclaimed or its claim
        older than ``claim_timeout_s``), so of two dispatchers racing for one row exactly
        one wins; a dispatcher that died mid-delivery loses its claim after the timeout.
        """
        now = time.time() if now is None else now
        stale = now - claim_timeout_s
        with self._tx() as db:
            row = db.execute(
                "SELECT id FROM deliveries WHERE receiver=? AND state='pending'"
                " AND next_attempt_at<=? AND (claimed_by IS NULL OR claimed_at<?)"
                " ORDER BY next_attempt_at, id LIMIT 1",
                (receiver, now, stale),
            ).fetchone()
            if row is None:
                return None
            cur = db.execute(
                "UPDATE deliveries SET claimed_by=?, claimed_at=? WHERE id=? AND state='pending'"
                " AND (claimed_by IS NULL OR claimed_at<?)",
                (owner, now, row["id"], stale),
            )
            if cur.rowcount != 1:
                return None
            full = db.execute("SELECT * FROM deliveries WHERE id=?", (row["id"],)).fetchone()
        return Delivery(
            full["id"],
            full["receiver"],
            full["receiver_label"],
            json.loads(full["payload"]),
            full["attempts"],
        )

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
        with self._tx() as db:
            if error is None:
                cur = db.execute(
                    "UPDATE deliveries SET state='sent', attempts=attempts+1, sent_at=?,"
                    " claimed_by=NULL, claimed_at=NULL, last_error=NULL"
                    " WHERE id=? AND claimed_by=?",
                    (now, delivery_id, owner),
                )
            else:
                cur = db.execute(
                    "UPDATE deliveries SET attempts=attempts+1, next_attempt_at=?,"
                    " claimed_by=NULL, claimed_at=NULL, last_error=?"
                    " WHERE id=? AND claimed_by=?",
                    (retry_at if retry_at is not None else now, error, delivery_id, owner),
                )
            if cur.rowcount != 1:
                return False
            keys = [
                r["alert_key"]
                for r in db.execute(
                    "SELECT alert_key FROM delivery_alerts WHERE delivery_id=?", (delivery_id,)
                )
            ]
            for key in keys:
                self._summarise_alert(db, key, now)
        return True

    def _summarise_alert(self, db: sqlite3.Connection, key: str, now: float) -> None:
        rows = db.execute(
            "SELECT d.state, d.attempts, d.last_error, d.receiver_label FROM deliveries d"
            " JOIN delivery_alerts l ON l.delivery_id=d.id WHERE l.alert_key=?",
            (key,),
        ).fetchall()
        if not rows:
            return
        attempts = sum(r["attempts"] for r in rows)
        errors = [
            f"{r['receiver_label']}: {r['last_error']}"
            for r in rows
            if r["state"] != "sent" and r["last_error"]
        ]
        if all(r["state"] == "sent" for r in rows):
            state, sent_at = "sent", now
        else:
            state, sent_at = ("retrying" if errors else "queued"), None
        db.execute(
            "UPDATE alerts SET dispatch_state=?, dispatch_attempts=?, dispatch_error=?,"
            " sent_at=? WHERE key=?",
            (state, attempts, "; ".join(errors) or None, sent_at, key),
        )

    def list_deliveries(self, receiver: str | None = None) -> list[dict[str, Any]]:
        """Delivery rows (for tests and diagnostics), oldest first."""
        query = "SELECT * FROM deliveries"
        args: list[Any] = []
        if receiver:
            query += " WHERE receiver=?"
            args.append(receiver)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", args).fetchall()
        return [dict(r) for r in rows]

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
        with self._tx() as db:
            points = db.execute(
                "DELETE FROM trend_points WHERE created_at < ?", (points_cutoff,)
            ).rowcount
            alerts = db.execute(
                "DELETE FROM alerts WHERE created_at < ? AND dispatch_state IN ('sent', 'silenced')",
                (alerts_cutoff,),
            ).rowcount
            db.execute(
                "DELETE FROM delivery_alerts WHERE alert_key NOT IN (SELECT key FROM alerts)"
            )
            deliveries = db.execute(
                "DELETE FROM deliveries WHERE state='sent' AND id NOT IN"
                " (SELECT delivery_id FROM delivery_alerts)"
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
        """Recent alerts, newest first (``rowid`` included for incremental reads)."""
        query = "SELECT rowid, * FROM alerts WHERE rowid > ?"
        args: list[Any] = [after_rowid]
        if status:
            query += " AND status=?"
            args.append(status)
        if series:
            query += " AND series=?"
            args.append(series)
        query += " ORDER BY rowid DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return [_alert_row_dict(r) for r in rows]

    def get_alert(self, key: str) -> dict[str, Any]:
        """One alert. Raises NotFoundError."""
        with self._lock:
            row = self._db.execute("SELECT rowid, * FROM alerts WHERE key=?", (key,)).fetchone()
        if row is None:
            raise NotFoundError(f"alert {key!r} not found")
        return _alert_row_dict(row)

    def acknowledge_alert(self, key: str, by: str) -> dict[str, Any]:
        """Mark an alert acknowledged. Raises NotFoundError."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE alerts SET status='acknowledged', ack_by=?, ack_at=? WHERE key=?",
                (by, time.time(), key),
            )
            if cur.rowcount == 0:
                raise NotFoundError(f"alert {key!r} not found")
        return self.get_alert(key)

    def count_alerts(self) -> int:
        """Number of stored alerts."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])

    # ---- trend queries ---------------------------------------------------------
    def trend_series(
        self, series: str, spec: str = "tumbling", limit: int = 200
    ) -> list[dict[str, Any]]:
        """Closed windows of one series, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM (SELECT * FROM trend_points WHERE series=? AND spec=? ORDER BY start DESC LIMIT ?)"
                " ORDER BY start",
                (series, spec, limit),
            ).fetchall()
        return [dict(r) for r in rows]

    def trend_points_after(
        self, after_id: int, spec: str = "tumbling", limit: int = 500
    ) -> list[dict[str, Any]]:
        """Trend points stored after id ``after_id`` (for the live stream)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM trend_points WHERE id > ? AND spec=? ORDER BY id LIMIT ?",
                (after_id, spec, limit),
            ).fetchall()
        return [dict(r) for r in rows]

    def list_series(self) -> list[dict[str, Any]]:
        """Every series with a stored window, with its window count and last window end."""
        with self._lock:
            rows = self._db.execute(
                "SELECT series, COUNT(*) AS windows, MAX(end) AS last_end, SUM(count) AS messages"
                " FROM trend_points WHERE spec='tumbling' GROUP BY series ORDER BY messages DESC"
            ).fetchall()
        return [dict(r) for r in rows]

    def last_trend_point_id(self) -> int:
        """Largest trend point id (0 when empty)."""
        with self._lock:
            return int(
                self._db.execute("SELECT COALESCE(MAX(id), 0) FROM trend_points").fetchone()[0]
            )
