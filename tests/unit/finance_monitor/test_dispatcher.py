"""Alert delivery: per-receiver isolation, Retry-After, exclusive claims, redaction, retention."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from finance_monitor.dispatcher import AlertDispatcher
from finance_monitor.rules import Alert
from finance_monitor.storage import MonitorStore, Receiver
from finance_monitor.webhooks import receiver_id
from finance_monitor.windows import ClosedWindow

DEAD = "https://user:pw@dead.example.com/hooks/SECRET-TOKEN?sig=abc"
HEALTHY = "http://healthy.example.com/hook"


def _alert(key: str, series: str = "topic:Oil") -> Alert:
    labels = {
        "rule": "r",
        "kind": "negative_surge",
        "series": series,
        "series_kind": "topic",
        "severity": "critical",
    }
    return Alert(
        key,
        "r",
        "negative_surge",
        series,
        "critical",
        "tumbling",
        0,
        60,
        0.6,
        0.1,
        0.3,
        30,
        "surge",
        labels,
    )


@pytest.fixture()
def store(database_url: str) -> Iterator[MonitorStore]:
    s = MonitorStore(database_url)
    yield s
    s.close()


def _wait(predicate, timeout_s: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


class Receivers:
    """A mock transport: the dead host blocks until released, then answers 503."""

    def __init__(self, dead_status: int = 503, headers: dict[str, str] | None = None) -> None:
        self.release = threading.Event()
        self.dead_calls = 0
        self.healthy: list[bytes] = []
        self.dead_status = dead_status
        self.headers = headers

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "dead.example.com":
            self.dead_calls += 1
            self.release.wait(60)
            return httpx.Response(self.dead_status, headers=self.headers)
        self.healthy.append(request.read())
        return httpx.Response(200)


def _dispatcher(store: MonitorStore, receivers: Receivers, **kw: object) -> AlertDispatcher:
    return AlertDispatcher(
        store,
        None,
        "alerts",
        [DEAD, HEALTHY],
        ["rule", "series"],
        0.0,
        3,
        0.05,
        0.05,
        transport=httpx.MockTransport(receivers),
        rng=lambda: 0.0,
        **kw,  # type: ignore[arg-type]
    )


def test_a_dead_receiver_does_not_delay_a_healthy_one(store: MonitorStore) -> None:
    receivers = Receivers()
    dispatcher = _dispatcher(store, receivers)
    thread = threading.Thread(target=dispatcher.run, daemon=True)
    thread.start()
    try:
        store.commit_trend_batch("g", "t", {}, [], [_alert("a1")])
        _wait(lambda: receivers.dead_calls >= 1)
        store.commit_trend_batch("g", "t", {}, [], [_alert("a2", series="topic:Gold")])
        # both alerts reach the healthy receiver while the dead one still hangs on a1
        _wait(lambda: len(receivers.healthy) >= 2)
        # the answer is recorded just after the receiver got the body: wait for it
        _wait(
            lambda: (
                [d["state"] for d in store.list_deliveries(receiver_id(HEALTHY))]
                == ["sent", "sent"]
            )
        )
        assert not receivers.release.is_set() and receivers.dead_calls == 1
        assert all(d["state"] == "pending" for d in store.list_deliveries(receiver_id(DEAD)))
    finally:
        receivers.release.set()
        dispatcher.stop()
        thread.join(timeout=30)
    # the dead receiver's failures are persisted for a later retry, never dropped
    dead = store.list_deliveries(receiver_id(DEAD))
    assert dead and all(d["state"] == "pending" for d in dead)
    assert dead[0]["attempts"] >= 1
    alert = store.get_alert("a1")
    assert alert["dispatch_state"] == "retrying"
    assert alert["dispatch_error"] == "dead.example.com: HTTP 503"


def test_retry_after_schedules_the_next_attempt(store: MonitorStore) -> None:
    receivers = Receivers(dead_status=429, headers={"Retry-After": "120"})
    receivers.release.set()
    dispatcher = _dispatcher(store, receivers)
    store.commit_trend_batch("g", "t", {}, [], [_alert("a1")])
    before = time.time()
    dispatcher.deliver_once()
    (dead,) = store.list_deliveries(receiver_id(DEAD))
    assert dead["attempts"] == 1
    assert before + 119 <= dead["next_attempt_at"] <= time.time() + 121
    # not due yet: another round does not call the dead receiver again
    dispatcher.deliver_once()
    assert receivers.dead_calls == 1
    assert store.get_alert("a1")["dispatch_error"] == "dead.example.com: HTTP 429"


def test_backoff_grows_and_the_delivery_survives_a_restart(
    store: MonitorStore, database_url: str
) -> None:
    receivers = Receivers()
    receivers.release.set()
    store.commit_trend_batch("g", "t", {}, [], [_alert("a1")])
    dispatcher = _dispatcher(store, receivers)
    dispatcher.deliver_once()
    (dead,) = store.list_deliveries(receiver_id(DEAD))
    # a new process (new store connection, new dispatcher) retries it once it is due
    other = MonitorStore(database_url)
    try:
        again = _dispatcher(other, Receivers())
        delivery = other.claim_delivery(
            receiver_id(DEAD), again.owner, 60, now=dead["next_attempt_at"] + 1
        )
        assert delivery is not None and delivery.attempts == 1
    finally:
        other.close()


def test_a_round_attempts_a_failing_delivery_once_however_short_the_backoff(
    store: MonitorStore,
) -> None:
    """A failed delivery is due again only after the round started: with no backoff at
    all (as with a short one on a loaded machine) the round neither retries it at once
    nor goes on forever; the next round does retry it."""
    receivers = Receivers()
    receivers.release.set()
    store.commit_trend_batch("g", "t", {}, [], [_alert("a1")])
    dispatcher = _dispatcher(store, receivers, max_backoff_s=0.0)
    one_round = threading.Thread(target=dispatcher.deliver_once, daemon=True)
    one_round.start()
    one_round.join(timeout=60)
    round_ended = not one_round.is_alive()
    dispatcher.stop()  # ends a round that would not end by itself
    one_round.join(timeout=30)
    assert round_ended and receivers.dead_calls == 1
    (dead,) = store.list_deliveries(receiver_id(DEAD))
    assert dead["state"] == "pending" and dead["attempts"] == 1
    _dispatcher(store, receivers, max_backoff_s=0.0).deliver_once()
    assert receivers.dead_calls == 2
    assert store.list_deliveries(receiver_id(DEAD))[0]["attempts"] == 2


def test_claims_are_exclusive_across_connections_and_expire(
    store: MonitorStore, database_url: str
) -> None:
    receiver = Receiver("webhook:x", "x.example.com")
    store.commit_trend_batch("g", "t", {}, [], [_alert(f"k{i}", f"topic:S{i}") for i in range(40)])
    store.enqueue_deliveries(
        [receiver],
        time.time() + 1,
        lambda alerts: [([a.key], {"webhook": {}, "alerts": []}) for a in alerts],
    )
    stores = [MonitorStore(database_url) for _ in range(4)]
    claimed: list[int] = []
    lock = threading.Lock()

    def worker(s: MonitorStore, owner: str) -> None:
        while (d := s.claim_delivery(receiver.id, owner, claim_timeout_s=600)) is not None:
            with lock:
                claimed.append(d.id)

    threads = [threading.Thread(target=worker, args=(s, f"o{i}")) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 40
    # a claim expires: another dispatcher takes it over, the first one's result is refused
    first = store.list_deliveries(receiver.id)[0]["id"]
    later = time.time() + 601
    taken = stores[0].claim_delivery(receiver.id, "new-owner", 600, now=later)
    assert taken is not None and taken.id == first
    old_owners = {f"o{i}" for i in range(4)}
    assert not any(store.finish_delivery(first, owner, None) for owner in old_owners)
    assert stores[0].finish_delivery(first, "new-owner", None) is True
    for s in stores:
        s.close()


def test_old_errors_with_urls_are_redacted_on_the_way_out(store: MonitorStore) -> None:
    store.commit_trend_batch("g", "t", {}, [], [_alert("a1")])
    store.claim_pending_alerts("me", older_than=time.time() + 1)
    store.mark_delivered(["a1"], 3, f"{DEAD}: ConnectError: [Errno 111] refused")
    shown = store.get_alert("a1")["dispatch_error"]
    assert "SECRET" not in shown and "pw" not in shown and "sig" not in shown
    assert shown.startswith("dead.example.com")
    assert "SECRET" not in str(store.list_alerts())


def test_retention_deletes_old_points_and_delivered_alerts_only(store: MonitorStore) -> None:
    window = ClosedWindow("tumbling", "topic:Oil", 0, 60, 10, 6, 2, 2)
    store.commit_trend_batch("g", "t", {}, [window], [_alert("sent"), _alert("waiting", "topic:G")])
    store.enqueue_deliveries(
        [Receiver("webhook:x", "x")],
        time.time() + 1,
        lambda alerts: [([a.key], {"webhook": {}, "alerts": []}) for a in alerts],
    )
    first = store.claim_delivery("webhook:x", "me", 60)
    assert first is not None
    store.finish_delivery(first.id, "me", None)
    assert store.apply_retention(30, 90) == {"trend_points": 0, "alerts": 0, "deliveries": 0}
    deleted = store.apply_retention(30, 90, now=time.time() + 100 * 86400)
    assert deleted["trend_points"] == 1 and deleted["alerts"] == 1
    # the alert still waiting for its delivery is kept, whatever its age
    assert [a["key"] for a in store.list_alerts()] == ["waiting"]
    assert store.trend_series("topic:Oil") == []
