"""``keel compress | export | index build | index search``: serving-side commands.

Bad input (a malformed file, a missing column, a bad option value) prints one
``error: ...`` line naming the file and line or the option, and exits with code 2.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from keel._cli_common import clear_errors, fail, print_json
from keel.errors import DataError

ModelOpt = Annotated[str, typer.Option("--model", help="Model folder or packaged name (minilm).")]
TextColOpt = Annotated[str, typer.Option("--text-col", help="Column (or JSON key) with the text.")]
LabelColOpt = Annotated[
    str, typer.Option("--label-col", help="Column (or JSON key) with the label.")
]

index_app = typer.Typer(
    help="Build and query a retrieval index (FAISS + BM25).", no_args_is_help=True
)


def _log(message: str) -> None:
    typer.echo(f"[keel] {message}", err=True)


def _read_texts(path: Path, text_col: str, limit: int | None = None) -> list[str]:
    return [doc["text"] for doc in _read_documents(path, None, text_col)][:limit]


def read_documents(path: Path, id_col: str | None, text_col: str) -> list[dict[str, Any]]:
    """Documents of a CSV / TSV / JSON Lines file as ``{"id", "text", "metadata"}`` dicts.

    Rows without an id column get their 1-based row number as id; every other
    column goes to ``metadata``.

    Raises:
        DataError: unreadable file, bad JSON, missing column or empty text (names
            the file and line).
    """
    return _read_documents(path, id_col, text_col)


def _read_documents(path: Path, id_col: str | None, text_col: str) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DataError("file not found", path)
    rows: list[tuple[int, dict[str, Any]]] = []
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson", ".json"}:
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"invalid JSON: {exc.msg}", path, line_no) from None
                if not isinstance(record, dict):
                    raise DataError("expected a JSON object per line", path, line_no)
                rows.append((line_no, record))
    elif suffix in {".csv", ".tsv"}:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            for line_no, record in enumerate(reader, start=2):
                rows.append((line_no, dict(record)))
    else:
        raise DataError(f"unsupported file type {suffix!r}: use .csv, .tsv or .jsonl", path)
    documents = []
    for number, (line_no, record) in enumerate(rows, start=1):
        if text_col not in record:
            raise DataError(f"missing column {text_col!r} (have {sorted(record)})", path, line_no)
        text = record[text_col]
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"empty or non-text {text_col!r}", path, line_no)
        if id_col is not None and id_col not in record:
            raise DataError(f"missing id column {id_col!r}", path, line_no)
        doc_id = str(record[id_col]) if id_col is not None else str(number)
        metadata = {k: v for k, v in record.items() if k not in {text_col, id_col}}
        documents.append({"id": doc_id, "text": text, "metadata": metadata, "line": line_no})
    if not documents:
        raise DataError("no rows", path)
    return documents


@clear_errors
def export_command(
    model: Annotated[Path, typer.Option("--model", help="Torch artifact folder to export.")],
    out: Annotated[Path, typer.Option("--out", help="Folder of the new ONNX artifact.")],
    quantize: Annotated[
        str, typer.Option("--quantize", help="none, dynamic (int8) or static (int8, calibrated).")
    ] = "none",
    calibration: Annotated[
        Path | None,
        typer.Option("--calibration", help="CSV/JSONL of sample texts for static int8."),
    ] = None,
    text_col: TextColOpt = "text",
    calibration_size: Annotated[int, typer.Option(help="Texts used for calibration.")] = 300,
) -> None:
    """Export a model to ONNX (optionally int8) as a new artifact."""
    from keel.compression import export_onnx

    texts = _read_texts(calibration, text_col, calibration_size) if calibration else None
    mode = None if quantize == "none" else quantize
    folder = export_onnx(model, out, quantize=mode, calibration_texts=texts)
    print_json(json.loads((folder / "keel.json").read_text()))


@clear_errors
def compress_command(
    model: Annotated[Path, typer.Option("--model", help="fp32 torch artifact folder.")],
    val: Annotated[Path, typer.Option("--val", help="Labelled validation file (accuracy).")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder of the chosen artifact [MODEL-compressed].")
    ] = None,
    max_drop: Annotated[
        float, typer.Option("--max-drop", help="Most accuracy loss allowed, in points.")
    ] = 0.5,
    train: Annotated[
        Path | None,
        typer.Option("--train", help="Training texts: static-int8 calibration and distillation."),
    ] = None,
    students: Annotated[
        str, typer.Option("--students", help="Distilled student layer counts, e.g. '3' or '2,3'.")
    ] = "3",
    text_col: TextColOpt = "text",
    label_col: LabelColOpt = "label",
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads.")] = None,
    static_tier: Annotated[
        bool,
        typer.Option(
            "--static-tier",
            help="Also report a static-embedding tier and its cascade (needs a labelled --train).",
        ),
    ] = False,
    speed: Annotated[
        str,
        typer.Option(
            "--speed",
            help="What 'fastest' means: throughput (batch 32, for batch scoring) or latency "
            "(median single-text latency, for interactive requests).",
        ),
    ] = "throughput",
) -> None:
    """Build every compressed variant, measure it, and keep the fastest within --max-drop."""
    from keel.compression import compress
    from keel.data import load_labelled

    try:
        layers = [int(x) for x in students.split(",") if x.strip()]
    except ValueError:
        fail(f"--students {students!r}: use comma-separated integers such as '2,3'")
        return
    validation = load_labelled(val, text_col=text_col, label_col=label_col)
    train_texts = _read_texts(train, text_col) if train else None
    if static_tier and train is None:
        fail("--static-tier needs --train (labelled rows to fit the static heads on)")
        return
    static_train = (
        load_labelled(train, text_col=text_col, label_col=label_col)
        if static_tier and train is not None
        else None
    )
    target = out or model.with_name(model.name + "-compressed")
    folder = compress(
        model,
        target,
        validation,
        max_drop_points=max_drop,
        train_texts=train_texts,
        student_layers=layers,
        num_threads=threads,
        static_train=static_train,
        speed=speed,
        log=_log,
    )
    meta = json.loads((folder / "keel.json").read_text())
    print_json(
        {
            "out": str(folder),
            "variant": meta["variant"],
            "metrics": meta["metrics"],
            "latency_ms": meta["latency_ms"],
            "size_mb": meta["size_mb"],
            "report": meta["config"]["compress"]["report"],
        }
    )


@index_app.command("build")
@clear_errors
def index_build_command(
    data: Annotated[Path, typer.Option("--data", help="CSV / TSV / JSONL documents.")],
    out: Annotated[Path, typer.Option("--out", help="Index folder (created or updated).")],
    model: ModelOpt = "minilm",
    id_col: Annotated[str | None, typer.Option("--id-col", help="Id column [row number].")] = None,
    text_col: TextColOpt = "text",
    kind: Annotated[str, typer.Option("--kind", help="flat, ivf or hnsw.")] = "flat",
    mode: Annotated[str, typer.Option("--mode", help="hybrid, vector or bm25.")] = "hybrid",
) -> None:
    """Embed documents and save a hybrid (vector + BM25) index; re-running updates it."""
    from keel.inference import load_predictor
    from keel.retrieval import HybridRetriever

    documents = _read_documents(data, id_col, text_col)
    embedder = load_predictor(model)
    if (out / "retriever.json").is_file():
        retriever = HybridRetriever.load(out, embedder)
    else:
        retriever = HybridRetriever(embedder, kind=kind, mode=mode)
    embedded = retriever.upsert(
        [d["id"] for d in documents],
        [d["text"] for d in documents],
        [d["metadata"] for d in documents],
    )
    retriever.save(out)
    print_json({"index": str(out), "documents": len(retriever), "embedded": embedded})


@index_app.command("search")
@clear_errors
def index_search_command(
    index: Annotated[Path, typer.Option("--index", help="Index folder from 'keel index build'.")],
    query: Annotated[str, typer.Option("--query", "-q", help="Search text.")],
    model: ModelOpt = "minilm",
    k: Annotated[int, typer.Option("-k", help="Number of hits.")] = 5,
    mode: Annotated[str | None, typer.Option("--mode", help="hybrid, vector or bm25.")] = None,
) -> None:
    """Search an index and print the hits as JSON."""
    from keel.inference import load_predictor
    from keel.retrieval import HybridRetriever

    retriever = HybridRetriever.load(index, load_predictor(model))
    hits = retriever.search(query, k=k, mode=mode)
    print_json(
        [{"id": h.id, "score": h.score, "text": h.text, "metadata": h.metadata} for h in hits]
    )


def register(app: typer.Typer) -> None:
    """Add ``compress``, ``export`` and the ``index`` group to the ``keel`` CLI."""
    app.command("compress")(compress_command)
    app.command("export")(export_command)
    app.add_typer(index_app, name="index")
