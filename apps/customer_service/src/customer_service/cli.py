"""Command line: ``customer-service prepare | serve | export | export-corrections | train-retriever``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from customer_service.config import Settings
from customer_service.errors import CustomerServiceError
from keel_service import budget_argument


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    for name in ("state_dir", "data_dir", "intents_file", "articles_dir", "faq_file", "epochs"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "budget", None):
        overrides["budget"] = args.budget
    if getattr(args, "no_compress", False):
        overrides["compress"] = False
    return Settings(**overrides)  # type: ignore[arg-type]


def _cmd_prepare(args: argparse.Namespace) -> int:
    from customer_service.prepare import prepare

    result = prepare(_settings(args), force=args.force)
    print(
        json.dumps(
            {
                "intent_model": result.intent.model_dir,
                "variant": result.intent.variant,
                "threshold": round(result.intent.threshold, 4),
                "validation_accuracy": result.intent.validation_accuracy,
                "passages": result.passages,
                "seconds": result.seconds,
            },
            indent=1,
        )
    )
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from customer_service.main import create_app
    from keel_service import serve

    settings = _settings(args)
    return serve(
        "customer-service", lambda: create_app(settings), settings, host=args.host, port=args.port
    )


def _cmd_export(args: argparse.Namespace) -> int:
    from customer_service.export import export_training_records
    from customer_service.storage import ConversationStore

    settings = _settings(args)
    store = ConversationStore(settings.resolved_database_url)
    count = 0
    with args.out.open("w", encoding="utf-8") as handle:
        for record in export_training_records(store):
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    print(f"wrote {count} records to {args.out}")
    return 0


def _cmd_export_corrections(args: argparse.Namespace) -> int:
    from customer_service.corrections import CorrectionStore, ExportFormat, export_corrections
    from customer_service.storage import ConversationStore

    settings = _settings(args)
    store = ConversationStore(settings.resolved_database_url)
    try:
        version, rows = CorrectionStore(store.engine, store.write_gate).corrections()
    finally:
        store.close()
    fmt: ExportFormat = args.format or ("csv" if args.out.suffix == ".csv" else "jsonl")
    with args.out.open("w", encoding="utf-8", newline="") as handle:
        handle.writelines(export_corrections(rows, fmt))
    print(f"wrote {len(rows)} corrections (dataset version {version}, {fmt}) to {args.out}")
    return 0


def _cmd_train_retriever(args: argparse.Namespace) -> int:
    from customer_service.retriever_training import RetrieverOptions, train_retriever

    settings = _settings(args)
    options = RetrieverOptions(
        epochs=args.epochs,
        max_pairs=args.max_pairs or None,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        max_length=args.max_length,
        quantize=None if args.no_compress else "dynamic",
    )
    artifacts = train_retriever(
        settings.models_dir,
        args.pairs,
        options,
        question_column=args.question_column,
        passage_column=args.passage_column,
        force=args.force,
        num_threads=settings.num_threads,
        search_mode=args.search_mode,
        report=lambda line: print(line, file=sys.stderr),
    )
    print(
        json.dumps(
            {
                "retrieval_encoder": artifacts.model_dir,
                "pairs": artifacts.pairs,
                "epochs": artifacts.epochs,
                "train_seconds": artifacts.train_seconds,
                "search_mode": artifacts.search_mode,
                "next": "run `customer-service prepare` to re-index the knowledge base",
            },
            indent=1,
        )
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="customer-service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--state-dir", type=Path, help="models, database, indexes (KEEL_CS_STATE_DIR)"
        )

    prep = sub.add_parser(
        "prepare", help="train/compress the intent model and index the knowledge base"
    )
    common(prep)
    prep.add_argument(
        "--budget",
        type=budget_argument,
        help="fast (frozen encoder + head, the default) or full (fine-tuning)",
    )
    prep.add_argument("--epochs", type=int)
    prep.add_argument("--intents-file", type=Path, help="CSV of utterances (text,label)")
    prep.add_argument("--articles-dir", type=Path)
    prep.add_argument("--faq-file", type=Path)
    prep.add_argument("--no-compress", action="store_true")
    prep.add_argument("--force", action="store_true", help="retrain even if cached")
    prep.set_defaults(func=_cmd_prepare)

    serve = sub.add_parser("serve", help="run the HTTP server")
    common(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8101)
    serve.set_defaults(func=_cmd_serve)

    export = sub.add_parser("export", help="conversations + feedback as JSONL training data")
    common(export)
    export.add_argument("--out", type=Path, required=True)
    export.set_defaults(func=_cmd_export)

    corr = sub.add_parser(
        "export-corrections",
        help="agents' intent corrections as labelled training data (CSV or JSONL, PII masked)",
    )
    common(corr)
    corr.add_argument("--out", type=Path, required=True, help="file to write (.csv or .jsonl)")
    corr.add_argument(
        "--format", choices=["csv", "jsonl"], help="default: from the file's suffix (else jsonl)"
    )
    corr.set_defaults(func=_cmd_export_corrections)

    retr = sub.add_parser(
        "train-retriever",
        help="fine-tune the knowledge-base encoder on question/passage pairs (optional)",
    )
    common(retr)
    retr.add_argument(
        "--pairs", type=Path, required=True, help="CSV/TSV/JSONL of (question, passage) pairs"
    )
    retr.add_argument("--question-column", default="question")
    retr.add_argument("--passage-column", default="passage")
    retr.add_argument("--epochs", type=int, default=1)
    retr.add_argument(
        "--max-pairs", type=int, default=2000, help="seeded sample of at most N pairs (0: all)"
    )
    retr.add_argument("--batch-size", type=int, default=32)
    retr.add_argument("--learning-rate", type=float, default=5e-5)
    retr.add_argument("--max-length", type=int, default=128)
    retr.add_argument(
        "--search-mode",
        choices=["hybrid", "vector"],
        default="hybrid",
        help="how the knowledge base is searched with this encoder (default: hybrid)",
    )
    retr.add_argument("--no-compress", action="store_true", help="ONNX fp32 instead of int8")
    retr.add_argument("--force", action="store_true", help="retrain even if cached")
    retr.set_defaults(func=_cmd_train_retriever)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (CustomerServiceError, ValueError) as exc:
        # keel's DataError/ConfigError are ValueErrors and name the file and line.
        print(f"customer-service {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
