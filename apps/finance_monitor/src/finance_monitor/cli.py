"""``finance-monitor`` command line: prepare | serve | scorer | trend | replay."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from finance_monitor.config import Settings, get_settings
from finance_monitor.errors import FinanceMonitorError
from keel_service import budget_argument


def _settings(args: argparse.Namespace) -> Settings:
    settings = get_settings()
    updates = {}
    for name in ("state_dir", "data_dir", "budget", "host", "port", "kafka_bootstrap_servers"):
        value = getattr(args, name, None)
        if value is not None:
            updates[name] = value
    return settings.model_copy(update=updates) if updates else settings


def _stop_on_signals(stop: Callable[[], None]) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop())


def cmd_prepare(args: argparse.Namespace) -> int:
    """Train/compress the models into state_dir (cached by fingerprint)."""
    from finance_monitor.model_prep import prepare_models
    from finance_monitor.runtime import open_store, prep_config

    settings = _settings(args)
    started = time.perf_counter()
    served = prepare_models(
        prep_config(settings, show_progress=True),
        progress=lambda m: print(f"[prepare] {m}", flush=True),
    )
    if settings.chinese:
        from finance_monitor.chinese import prepare_chinese_models

        prepare_chinese_models(
            prep_config(settings, show_progress=True),
            progress=lambda m: print(f"[prepare] {m}", flush=True),
        )
    open_store(settings).close()
    print(f"[prepare] done in {time.perf_counter() - started:.1f}s: {served}", flush=True)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the API (and, unless KEEL_FM_RUN_WORKERS=false, the stages) with uvicorn."""
    from finance_monitor.main import create_app
    from keel_service import serve

    settings = _settings(args)
    return serve(
        "finance-monitor",
        lambda: create_app(settings),
        settings,
        host=settings.host,
        port=settings.port,
    )


def _serve_metrics(port: int | None) -> None:
    if port:
        from prometheus_client import start_http_server

        start_http_server(port, addr="127.0.0.1")
        print(f"metrics on http://127.0.0.1:{port}/metrics", flush=True)


def cmd_scorer(args: argparse.Namespace) -> int:
    """One scorer process (join the scorer group; run several to scale out)."""
    from finance_monitor.kafka_io import ensure_topics
    from finance_monitor.runtime import all_topics, build_scorer, build_supervisor, load_model

    settings = _settings(args)
    model = load_model(settings, progress=lambda m: print(f"[scorer] {m}", flush=True))
    ensure_topics(settings.kafka_bootstrap_servers, all_topics(settings))
    worker = build_scorer(settings, model)
    stopping = threading.Event()

    def stop() -> None:
        stopping.set()
        worker.stop()

    _stop_on_signals(stop)
    _serve_metrics(args.metrics_port)
    print(f"[scorer] consuming {settings.raw_topic} in group {settings.scorer_group}", flush=True)
    # A broker outage makes the loop raise: restart it with backoff instead of exiting.
    build_supervisor(settings).run(worker.run, "scorer", stopping)
    return 0


def cmd_trend(args: argparse.Namespace) -> int:
    """One trend process (+ alert dispatcher); several split the scored topic's partitions."""
    from finance_monitor.kafka_io import ensure_topics
    from finance_monitor.runtime import (
        all_topics,
        build_dispatcher,
        build_supervisor,
        build_trend,
        open_store,
    )

    settings = _settings(args)
    ensure_topics(settings.kafka_bootstrap_servers, all_topics(settings))
    store = open_store(settings)
    worker = build_trend(settings, store)
    dispatcher = None if args.no_dispatch else build_dispatcher(settings, store)
    supervisor = build_supervisor(settings)
    stopping = threading.Event()

    def stop() -> None:
        stopping.set()
        worker.stop()
        if dispatcher is not None:
            dispatcher.stop()

    _stop_on_signals(stop)
    _serve_metrics(args.metrics_port)
    thread = None
    if dispatcher is not None:
        thread = threading.Thread(
            target=supervisor.run,
            args=(dispatcher.run, "dispatcher", stopping),
            name="fm-dispatcher",
            daemon=True,
        )
        thread.start()
    print(f"[trend] consuming {settings.scored_topic} in group {settings.trend_group}", flush=True)
    supervisor.run(worker.run, "trend", stopping)
    if thread is not None:
        dispatcher.stop()  # type: ignore[union-attr]
        thread.join(timeout=30)
    store.close()
    return 0


# Compressed event time (time scale > 1) runs ahead of the wall clock; the stream starts
# this far in the past at most, inside the default 7-day past skew of the stages.
MAX_REPLAY_LEAD_S = 6 * 86400.0


def replay_lead_s(rate: float, time_scale: float, count: int | None) -> float:
    """How far before now a replay's event time starts, so it never runs into the future.

    Event time advances ``time_scale`` seconds per wall second; the stages dead-letter
    records more than ``KEEL_FM_MAX_FUTURE_SKEW_S`` ahead of the wall clock. A finite
    stream therefore starts ``count / rate * (time_scale - 1)`` seconds in the past (it
    ends about now); an endless one starts ``MAX_REPLAY_LEAD_S`` in the past.
    """
    if time_scale <= 1:
        return 0.0
    if count is None:
        return MAX_REPLAY_LEAD_S
    return min(count / rate * (time_scale - 1), MAX_REPLAY_LEAD_S)


def cmd_replay(args: argparse.Namespace) -> int:
    """Stream demo headlines or a CSV/JSONL file into the raw topic."""
    from finance_monitor.kafka_io import ensure_topics, make_producer
    from finance_monitor.replay import (
        SurgePlan,
        demo_stream,
        file_stream,
        parse_rate,
        read_replay_file,
        send_stream,
    )
    from finance_monitor.runtime import all_topics

    settings = _settings(args)
    rate = parse_rate(args.rate)
    spacing = args.time_scale / rate
    surge = (
        SurgePlan(args.surge_topic, args.surge_at, args.surge_duration)
        if args.surge_topic
        else None
    )
    start = time.time() - replay_lead_s(rate, args.time_scale, args.count)
    run_id = f"replay-{uuid.uuid4().hex[:8]}"
    if args.file is not None and not args.demo:
        rows = read_replay_file(args.file)
        items = file_stream(
            rows,
            start=start,
            spacing_s=spacing,
            count=args.count,
            surge=surge,
            run_id=run_id,
            loop=args.loop,
        )
    else:
        share = args.chinese_share
        if share is None:
            share = settings.replay_chinese_share if settings.chinese else 0.0
        items = demo_stream(
            start=start,
            spacing_s=spacing,
            count=args.count,
            surge=surge,
            run_id=run_id,
            chinese_share=share,
        )
    topic = args.topic or settings.raw_topic
    ensure_topics(settings.kafka_bootstrap_servers, all_topics(settings))
    producer = make_producer(settings.kafka_bootstrap_servers)
    print(
        f"[replay] {rate:g} msgs/s to {topic} (event time x{args.time_scale:g})"
        + (
            f", surge on {surge.topic} at +{surge.start_s:g}s for {surge.duration_s:g}s"
            if surge
            else ""
        ),
        flush=True,
    )

    def report(sent: int) -> None:
        if sent % max(int(rate) * 10, 100) == 0:
            print(f"[replay] sent {sent}", flush=True)

    try:
        sent = send_stream(producer, topic, items, rate, on_sent=report)
    except KeyboardInterrupt:
        sent = -1
    finally:
        producer.close(timeout=10)
    print(f"[replay] done: {sent} messages", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests)."""
    parser = argparse.ArgumentParser(prog="finance-monitor", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--state-dir", type=Path, help="models, SQLite store (default var/finance_monitor)"
        )
        p.add_argument(
            "--bootstrap", dest="kafka_bootstrap_servers", help="Kafka bootstrap servers"
        )

    p = sub.add_parser("prepare", help="train + compress the models (cached)")
    common(p)
    p.add_argument(
        "--budget",
        type=budget_argument,
        help="fast (frozen encoder + heads, the default) or full (fine-tuning)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        help="train on ../shared/data style data sets instead of the demo data",
    )
    p.set_defaults(fn=cmd_prepare)

    p = sub.add_parser("serve", help="run the API + dashboard (and the stages in threads)")
    common(p)
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(fn=cmd_serve)

    p = sub.add_parser("scorer", help="run one scorer process")
    common(p)
    p.add_argument("--metrics-port", type=int)
    p.set_defaults(fn=cmd_scorer)

    p = sub.add_parser("trend", help="run one trend + alert process")
    common(p)
    p.add_argument("--metrics-port", type=int)
    p.add_argument(
        "--no-dispatch", action="store_true", help="do not deliver alerts from this process"
    )
    p.set_defaults(fn=cmd_trend)

    p = sub.add_parser("replay", help="stream headlines into the raw topic")
    common(p)
    p.add_argument("file", nargs="?", type=Path, help="CSV/TSV/JSONL with a text column")
    p.add_argument(
        "--demo", action="store_true", help="bundled demo headlines (default when no FILE)"
    )
    p.add_argument("--rate", default="20/s", help="messages per second, e.g. 200/s")
    p.add_argument(
        "--count", type=int, help="stop after N messages (default: demo endless, file once)"
    )
    p.add_argument("--loop", action="store_true", help="repeat the file")
    p.add_argument("--topic", help="target topic (default KEEL_FM_RAW_TOPIC)")
    p.add_argument("--surge-topic", help="inject a negative surge for this topic")
    p.add_argument(
        "--surge-at",
        type=float,
        default=600.0,
        help="surge start, event seconds after stream start",
    )
    p.add_argument(
        "--surge-duration", type=float, default=120.0, help="surge length in event seconds"
    )
    p.add_argument("--time-scale", type=float, default=5.0, help="event seconds per wall second")
    p.add_argument(
        "--chinese-share",
        type=float,
        help="share of Chinese headlines in the demo stream, 0..1 (default "
        "KEEL_FM_REPLAY_CHINESE_SHARE, 0.25, when KEEL_FM_CHINESE is on; else 0)",
    )
    p.set_defaults(fn=cmd_replay)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``finance-monitor`` console script."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except FinanceMonitorError as exc:
        print(f"finance-monitor {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # pydantic settings errors, keel errors: clear one-line message
        from pydantic import ValidationError

        from keel import KeelError

        if isinstance(exc, KeelError | ValidationError):
            print(f"finance-monitor {args.command}: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
