"""`keel-demo` (what `make demo` runs)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from keel_demo.orchestrator import Demo, DemoOptions
from keel_demo.processes import DemoError


def main(argv: list[str] | None = None) -> int:
    defaults = DemoOptions()
    parser = argparse.ArgumentParser(
        prog="keel-demo",
        description="Start Kafka, prepare the demo models, run the three Keel apps and print one URL.",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=defaults.state_dir,
        help="models, databases, broker data and logs (default: var/)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=defaults.base_port,
        help="landing page port; the apps take the next three (default 8100)",
    )
    parser.add_argument(
        "--budget",
        choices=["fast", "full"],
        default=defaults.budget,
        help="training budget of the demo models (default fast: minutes on 2 cores)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=defaults.replay_rate,
        help="replayed headlines per second (default 20)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=defaults.time_scale,
        help="event seconds per wall second of the replay (default 5)",
    )
    parser.add_argument(
        "--surge-topic",
        default=defaults.surge_topic,
        help="topic that gets an injected negative surge (default Earnings)",
    )
    parser.add_argument("--no-replay", action="store_true", help="do not stream demo headlines")
    args = parser.parse_args(argv)
    try:
        options = DemoOptions(
            state_dir=args.state_dir.resolve(),
            base_port=args.port,
            budget=args.budget,
            replay_rate=args.rate,
            time_scale=args.time_scale,
            surge_topic=args.surge_topic or None,
            replay=not args.no_replay,
        )
    except ValueError as exc:
        parser.error(str(exc))
    demo = Demo(options)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: demo.stop_event.set())
    try:
        demo.run()
    except DemoError as exc:
        print(f"keel-demo: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
