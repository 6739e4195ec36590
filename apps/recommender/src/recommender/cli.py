"""``recommender`` command line: prepare, serve, train (+ evaluate)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from keel_service import Budget, budget_argument
from keel_service.threads import WORKERS_ENV
from recommender.errors import RecommenderError

DEFAULT_PORT = 8103


def _settings_env(args: argparse.Namespace) -> None:
    """Turn CLI flags into KEEL_REC_* variables so every component reads one source."""
    for flag, env in (
        ("state_dir", "KEEL_REC_STATE_DIR"),
        ("data_dir", "KEEL_REC_DATA_DIR"),
        ("budget", "KEEL_REC_BUDGET"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            os.environ[env] = str(value)
    from recommender.config import get_settings

    get_settings.cache_clear()


def cmd_prepare(args: argparse.Namespace) -> int:
    """Train/load models into the state dir (cached by fingerprint)."""
    _settings_env(args)
    from recommender.config import get_settings
    from recommender.prepare import prepare

    manifest = prepare(get_settings(), force=args.force, show_progress=True)
    what = "reused cached artifacts" if manifest["reused"] else f"built in {manifest['seconds']} s"
    print(
        f"prepared {get_settings().state_dir} ({what}); serving model: {manifest['serving_model']}"
    )
    print(f"compression: {manifest['report'].get('compression')}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the HTTP server."""
    _settings_env(args)
    from keel_service import InsecureConfigError, run_server
    from recommender.config import ENV_PREFIX, get_settings

    settings = get_settings()
    try:  # refuse before uvicorn starts workers that would each fail the same way
        settings.check_keys(ENV_PREFIX)
    except InsecureConfigError as exc:
        print(f"recommender: {exc}", file=sys.stderr)
        return 2
    # The workers read it to share the cores among their encoders (keel_service.threads).
    os.environ[WORKERS_ENV] = str(args.workers)
    run_server(
        "recommender.main:create_app",
        settings,
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Fine-tune, fit the blend and evaluate every method on a temporal holdout."""
    from recommender.datasets import load_interactions, load_movielens
    from recommender.experiment import metrics_table, run_experiment
    from recommender.splits import temporal_split
    from recommender.training import TrainConfig

    data = load_movielens(args.data_dir)
    if args.test_file:
        train_log, test_log = data.interactions, load_interactions(args.data_dir / args.test_file)
    else:
        train_log, test_log = temporal_split(data.interactions, 0.1)
    config = TrainConfig(
        budget=args.budget,
        max_pairs=args.max_pairs,
        seed=args.seed,
        fine_tune=not args.no_fine_tune,
    )
    out = args.out
    result = run_experiment(data.items, train_log, test_log, out, config, save_to=out / "signals")
    print(metrics_table(result.metrics))
    head = result.headline()
    print(
        f"best baseline: {result.best_baseline()} nDCG@10 {head['best_baseline.ndcg_at_10']:.4f};"
        f" blend lift {head['lift'] * 100:+.1f}%  ({result.metrics['cases']:.0f} users,"
        f" {result.seconds:.0f} s)"
    )
    report = {"metrics": result.metrics, "headline": head, "report": result.trained.report}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"artifacts and report.json in {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests)."""
    parser = argparse.ArgumentParser(prog="recommender", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="train/load models, embed the catalogue, build the index")
    p.add_argument("--state-dir", type=Path, default=None, help="default var/recommender")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="MovieLens-layout folder (default: bundled demo data)",
    )
    p.add_argument("--budget", type=budget_argument, default=None)
    p.add_argument("--force", action="store_true", help="rebuild even if cached")
    p.set_defaults(fn=cmd_prepare)

    s = sub.add_parser("serve", help="run the HTTP API")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=DEFAULT_PORT)
    s.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (scale-out)")
    s.add_argument("--state-dir", type=Path, default=None)
    s.add_argument("--data-dir", type=Path, default=None)
    s.set_defaults(fn=cmd_serve)

    t = sub.add_parser("train", help="fine-tune + blend + evaluate on a MovieLens-layout folder")
    t.add_argument("--data-dir", type=Path, required=True)
    t.add_argument("--out", type=Path, default=Path("var/recommender-train"))
    t.add_argument("--budget", type=budget_argument, default=Budget.FAST)
    t.add_argument("--max-pairs", type=int, default=None)
    t.add_argument("--seed", type=int, default=13)
    t.add_argument("--no-fine-tune", action="store_true", help="keep the base encoder")
    t.add_argument("--test-file", default=None, help="held-out ratings file in --data-dir")
    t.set_defaults(fn=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``recommender`` console script."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("recommender").setLevel(logging.INFO)
    args = build_parser().parse_args(argv)
    from keel import KeelError

    try:
        return int(args.fn(args))
    except (RecommenderError, KeelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
