"""Benchmarks of the customer-service app (issue 5).

Suites:

- ``support-intent``: the app's intent model trained on Banking77 ``train.csv`` with
  ``keel`` (``full`` strategy), compressed with ``keel.compression``, and measured
  through the app's ``POST /chat`` path (in-process FastAPI app, one new conversation
  per utterance): ``accuracy`` of the intent the bot reports.
- ``insuranceqa-retrieval``: the app's retriever (``keel.retrieval.HybridRetriever``
  over MiniLM embeddings + BM25, the same one the knowledge base uses) over the whole
  InsuranceQA answer pool, with the encoder first fine-tuned on train pairs through the
  app's ``train-retriever`` feature; ``recall_at_5``, ``mrr_at_10`` of that retriever,
  the base encoder's numbers and the BM25-only baseline.
  ``--split test`` reads ``queries_test.jsonl``.
- ``chat-load``: 32 concurrent clients (closed loop, no think time) against a real
  uvicorn server of the app (one worker per core, ``KEEL_CS_BENCH_WORKERS``), generation
  off; after a warm-up, 5 timed windows: ``p95_ms``, ``rps`` (medians of the windows, min
  and max in the JSON), ``errors`` (all windows, by kind), the CPU per request of the
  server and of the load generator, and, when a target is missed, an in-process profile
  of the /chat turn (where the CPU goes). The clients are ``bench/loadgen.py``'s lean
  asyncio HTTP/1.1 generator (one keep-alive connection each, pre-encoded requests):
  it runs on the same cores as the server, so it must cost far less CPU than a full
  client library.

``--quick`` shrinks data and budgets for a smoke run; its numbers are not results.
Work folders (models, indexes) live under ``var/bench/customer_service`` and are reused.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import secrets
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import REPO_ROOT, SuiteContext, SuiteResult, Target, suite
from bench.loadgen import (
    LOAD_GENERATOR,
    ClosedLoop,
    Connection,
    Endpoint,
    Response,
    cpu_seconds,
    server_pids,
)

AREA = "customer-service"
ISSUE = "issue 5 target"
WORK_DIR = REPO_ROOT / "var" / "bench" / "customer_service"
# Intent training budget of support-intent: "full" (fine-tune MiniLM, the production
# recipe, run by every bench budget; one epoch under --budget quick) or "fast" (frozen
# MiniLM + linear head). Unset: "full".
BUDGET_NAME = os.environ.get("KEEL_BENCH_CS_BUDGET")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


# ------------------------------------------------------------------------ support-intent
def _clinc_oos_csv(ctx: SuiteContext, out: Path) -> Path | None:
    """CLINC150's out-of-scope validation queries as a CSV (for the OOS threshold)."""
    source = ctx.data_dir / "clinc150" / "val.jsonl"
    if not source.is_file():
        return None
    import csv

    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text"])
        for row in _read_jsonl(source):
            if row.get("intent") == "oos":
                writer.writerow([row["text"]])
    return out


@suite(
    "support-intent",
    area=AREA,
    description="Banking77 intent accuracy through the customer-service /chat path (compressed model)",
    targets=[Target("accuracy", ">=", 0.94, anchor=f"{ISSUE}, issue 13 (core target, test split)")],
)
def support_intent(ctx: SuiteContext) -> SuiteResult:
    import pandas as pd
    from fastapi.testclient import TestClient

    from customer_service.config import Settings
    from customer_service.main import create_app
    from customer_service.prepare import prepare_intent_model
    from keel.evaluation import classification_metrics
    from keel_service import Budget

    budget = Budget(BUDGET_NAME or "full")
    work = WORK_DIR / (
        f"support-intent-quick-{budget.value}" if ctx.quick else f"support-intent-{budget.value}"
    )
    oos_csv = _clinc_oos_csv(ctx, work / "clinc150_oos_val.csv")
    settings = Settings(
        state_dir=work,
        api_key=secrets.token_urlsafe(24),
        intents_file=ctx.train_file("banking77", "train.csv"),
        intent_label_column="category",
        oos_file=oos_csv or work / "no-oos.csv",
        budget=budget,
        epochs=1 if ctx.quick else None,
        max_train_rows=1500 if ctx.quick else None,
        compress=True,
        max_accuracy_drop_points=0.5,
        rate_limit_per_minute=10_000_000,
        rate_limit_burst=1_000_000,
    )
    ctx.log(f"preparing the intent model ({settings.budget.value}) in {work}")
    started = time.perf_counter()
    artifacts = prepare_intent_model(settings, report=ctx.log)
    prepare_s = time.perf_counter() - started

    evaluation = pd.read_csv(ctx.data_file("banking77", valid="valid.csv", test="test.csv"))
    if ctx.quick:
        evaluation = evaluation.sample(n=min(200, len(evaluation)), random_state=13)
    texts = evaluation["text"].astype(str).tolist()
    gold = evaluation["category"].astype(str).tolist()
    predicted: list[str] = []
    kinds: dict[str, int] = {}
    latencies: list[float] = []
    app = create_app(settings, background_start=False)
    with TestClient(app) as client:
        for text in texts:
            t0 = time.perf_counter()
            response = client.post("/chat", json={"message": text})
            latencies.append(time.perf_counter() - t0)
            response.raise_for_status()
            body = response.json()
            predicted.append(body["intent"] or "")
            kinds[body["kind"]] = kinds.get(body["kind"], 0) + 1
    labels = sorted(set(gold) | set(artifacts.labels))
    metrics = classification_metrics(gold, predicted, labels)
    # The served model and its uncompressed parent (the app's ``trained`` folder), each
    # scored by its argmax alone (no OOS threshold, no dialogue): the compression's cost.
    served_dir = Path(artifacts.model_dir)
    direct = {
        "served": _argmax_accuracy(served_dir, texts, gold),
        "full": _argmax_accuracy(served_dir.parent / "trained", texts, gold),
    }
    return SuiteResult(
        metrics={
            "accuracy": float(metrics["accuracy"]),
            "macro_f1": float(metrics["macro_f1"]),
            "served.accuracy": direct["served"],
            "full.accuracy": direct["full"],
            "served.accuracy_drop_points": round(100 * (direct["full"] - direct["served"]), 2),
            "full.prepare_seconds": float(artifacts.trained_seconds),
            "chat_p50_ms_sequential": float(np.percentile(latencies, 50) * 1000),
        },
        details={
            "evaluated": len(texts),
            "budget": settings.budget.value,
            "serving_variant": artifacts.variant,
            "serving_model": artifacts.model_dir,
            "internal_validation_accuracy": artifacts.validation_accuracy,
            "oos_threshold": artifacts.threshold,
            "oos_calibration": artifacts.calibration,
            "answer_kinds": kinds,
            "prepare_seconds": round(prepare_s, 1),
            "prepare_seconds_note": "full.prepare_seconds: training + compression + "
            "calibration when the model was built (the app's intent.json); prepare_seconds: "
            "this run's call (short when the fingerprinted model was reused)",
            "note": "intent = the top intent reported by POST /chat (one new conversation "
            "per utterance), i.e. after compression; model trained on train.csv minus a "
            "stratified internal split used for early stopping, compression and calibration",
        },
    )


def _argmax_accuracy(model_dir: Path, texts: list[str], gold: list[str]) -> float:
    """Accuracy of the top label of the model in ``model_dir`` (``keel.inference``)."""
    from keel.inference import load_predictor

    predictor = load_predictor(model_dir, backend="auto")
    labels = list(predictor.labels)
    predicted = [labels[j] for j in predictor.classify(texts).argmax(axis=1)]
    return float(np.mean([p == g for p, g in zip(predicted, gold, strict=True)]))


# ---------------------------------------------------------------- insuranceqa-retrieval
# Domain adaptation budget of the retrieval encoder (CPU-sized, fixed, not tuned):
# a seeded sample of train questions, each with its first gold answer, one epoch.
FINETUNE_PAIRS = 2048
FINETUNE_PAIRS_QUICK = 128
SELECTION_QUERIES = 500
SELECTION_QUERIES_QUICK = 100


def _corpus_digest(corpus: list[dict[str, Any]]) -> str:
    digest = hashlib.sha256()
    for doc in corpus:
        digest.update(doc["_id"].encode())
        digest.update(doc["text"].encode())
    return digest.hexdigest()[:12]


def _index_corpus(
    ctx: SuiteContext, folder: Path, encoder_dir: Path, corpus: list[dict[str, Any]]
) -> tuple[Any, float]:
    """A hybrid retriever over the corpus with the encoder in ``encoder_dir`` (reused
    from ``folder`` when already built); returns it and the seconds spent indexing."""
    from customer_service import engine

    # cache_size: each query embedding is reused by the vector mode after the hybrid one.
    embedder = engine.load_model(encoder_dir, cache_size=4096)
    retriever = engine.load_retriever(folder, embedder)
    if len(retriever) == len(corpus):
        ctx.log(f"reusing the index in {folder}")
        return retriever, 0.0
    from tqdm import tqdm

    started = time.perf_counter()
    batch = 512
    for start in tqdm(range(0, len(corpus), batch), desc="indexing answers", unit="batch"):
        chunk = corpus[start : start + batch]
        retriever.upsert([d["_id"] for d in chunk], [d["text"] for d in chunk])
    retriever.save(folder)
    return retriever, time.perf_counter() - started


def _base_retriever(ctx: SuiteContext, corpus: list[dict[str, Any]]) -> tuple[Any, float]:
    """The app's hybrid retriever with the base MiniLM (ONNX int8, as the app serves it)."""
    from customer_service import engine

    encoder_dir = engine.export_base_encoder(WORK_DIR / "minilm-encoder-128", max_length=128)
    folder = WORK_DIR / f"insuranceqa-index-{_corpus_digest(corpus)}"
    return _index_corpus(ctx, folder, encoder_dir, corpus)


def _train_pairs_file(
    ctx: SuiteContext, corpus_by_id: dict[str, str], count: int, held_out: int
) -> tuple[Path, list[dict[str, Any]]]:
    """InsuranceQA train questions with one gold answer each, as the app's pairs file,
    and ``held_out`` other train questions (for choosing the search mode, not valid)."""
    queries = _read_jsonl(ctx.train_file("insuranceqa", "queries_train.jsonl"))
    shuffled = random.Random(13).sample(queries, len(queries))
    chosen = shuffled[:count]
    rest = shuffled[count : count + held_out]
    out = WORK_DIR / f"insuranceqa-train-pairs-{count}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        for query in chosen:
            answer = corpus_by_id[str(query["answers"][0])]
            handle.write(json.dumps({"question": query["text"], "passage": answer}) + "\n")
    return out, rest


def _evaluate(
    retriever: Any, queries: list[dict[str, Any]], relevant: list[set[str]], modes: tuple[str, ...]
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    from keel.evaluation import mrr_at_k, recall_at_k

    results: dict[str, dict[str, float]] = {}
    timings: dict[str, float] = {}
    for mode in modes:
        started = time.perf_counter()
        ranked = [[hit.id for hit in retriever.search(q["text"], k=10, mode=mode)] for q in queries]
        timings[mode] = round((time.perf_counter() - started) / len(queries) * 1000, 2)
        results[mode] = {
            "recall_at_5": recall_at_k(ranked, relevant, 5),
            "mrr_at_10": mrr_at_k(ranked, relevant, 10),
            "recall_at_10": recall_at_k(ranked, relevant, 10),
        }
    return results, timings


@suite(
    "insuranceqa-retrieval",
    area=AREA,
    description="InsuranceQA answer retrieval: MiniLM fine-tuned on train pairs (in the search "
    "mode the app serves) vs base MiniLM vs BM25 only, whole answer pool",
    targets=[Target("recall_ratio_vs_bm25", ">=", 1.5, anchor=ISSUE)],
)
def insuranceqa_retrieval(ctx: SuiteContext) -> SuiteResult:
    from customer_service.retriever_training import (
        RetrieverOptions,
        set_search_mode,
        train_retriever,
    )

    suite_started = time.perf_counter()
    corpus = _read_jsonl(ctx.train_file("insuranceqa", "corpus.jsonl"))
    corpus_by_id = {str(d["_id"]): d["text"] for d in corpus}
    queries = _read_jsonl(
        ctx.data_file("insuranceqa", valid="queries_valid.jsonl", test="queries_test.jsonl")
    )
    if ctx.quick:
        queries = queries[:200]
        wanted = {a for q in queries for a in q["answers"]}
        others = [d for d in corpus if d["_id"] not in wanted]
        random.Random(13).shuffle(others)
        corpus = [d for d in corpus if d["_id"] in wanted] + others[:2000]
    ctx.log(f"{len(queries)} queries over {len(corpus)} answers")
    relevant = [set(map(str, q["answers"])) for q in queries]
    seconds: dict[str, float] = {}

    # 1. Domain adaptation through the app's train-retriever feature.
    pair_count = FINETUNE_PAIRS_QUICK if ctx.quick else FINETUNE_PAIRS
    pairs_file, held_out = _train_pairs_file(
        ctx, corpus_by_id, pair_count, SELECTION_QUERIES_QUICK if ctx.quick else SELECTION_QUERIES
    )
    options = RetrieverOptions(epochs=1, max_pairs=pair_count, batch_size=32, max_length=128)
    state = WORK_DIR / ("insuranceqa-finetune-quick" if ctx.quick else "insuranceqa-finetune")
    started = time.perf_counter()
    tuned = train_retriever(state / "models", pairs_file, options, report=ctx.log)
    seconds["train_and_export_wall"] = time.perf_counter() - started

    # 2. The fine-tuned retriever (what the app would serve) over the answer pool.
    folder = WORK_DIR / f"insuranceqa-index-{_corpus_digest(corpus)}-ft-{tuned.fingerprint}"
    retriever, seconds["index_finetuned"] = _index_corpus(
        ctx, folder, Path(tuned.model_dir), corpus
    )
    # Search mode with this encoder (hybrid RRF or vector only), chosen on held-out
    # TRAIN questions (not in the pairs, answers in the pool); the valid split only
    # measures. Recorded in the app's manifest, so the knowledge base serves it.
    pool = {str(d["_id"]) for d in corpus}
    held_out = [q for q in held_out if pool & set(map(str, q["answers"]))]  # --quick: few
    selection_relevant = [set(map(str, q["answers"])) for q in held_out]
    selection, _ = _evaluate(retriever, held_out, selection_relevant, ("hybrid", "vector"))
    served_mode = max(("hybrid", "vector"), key=lambda m: selection[m]["recall_at_5"])
    tuned = set_search_mode(state / "models", served_mode)
    ctx.log(
        f"search mode: {served_mode} (held-out train recall@5 hybrid "
        f"{selection['hybrid']['recall_at_5']:.3f}, vector {selection['vector']['recall_at_5']:.3f})"
    )
    tuned_results, tuned_ms = _evaluate(retriever, queries, relevant, ("hybrid", "vector", "bm25"))
    del retriever

    # 3. The base encoder beside it (BM25 is the same index text, measured once above).
    base, seconds["index_base"] = _base_retriever(ctx, corpus)
    base_results, base_ms = _evaluate(base, queries, relevant, ("hybrid", "vector"))
    del base

    bm25 = tuned_results["bm25"]["recall_at_5"]
    headline = tuned_results[served_mode]
    ratio = headline["recall_at_5"] / bm25 if bm25 else float("inf")
    seconds["suite_wall"] = time.perf_counter() - suite_started
    return SuiteResult(
        metrics={
            "recall_at_5": headline["recall_at_5"],
            "mrr_at_10": headline["mrr_at_10"],
            "bm25.recall_at_5": bm25,
            "bm25.mrr_at_10": tuned_results["bm25"]["mrr_at_10"],
            "hybrid.recall_at_5": tuned_results["hybrid"]["recall_at_5"],
            "hybrid.mrr_at_10": tuned_results["hybrid"]["mrr_at_10"],
            "vector.recall_at_5": tuned_results["vector"]["recall_at_5"],
            "vector.mrr_at_10": tuned_results["vector"]["mrr_at_10"],
            "base.recall_at_5": base_results["hybrid"]["recall_at_5"],
            "base.mrr_at_10": base_results["hybrid"]["mrr_at_10"],
            "base.vector.recall_at_5": base_results["vector"]["recall_at_5"],
            "recall_ratio_vs_bm25": ratio,
            "base.recall_ratio_vs_bm25": base_results["hybrid"]["recall_at_5"] / bm25
            if bm25
            else float("inf"),
        },
        details={
            "queries": len(queries),
            "answer_pool": len(corpus),
            "retriever": "keel.retrieval.HybridRetriever(flat, rrf_k=60) as in the app's "
            "knowledge base; encoders exported to ONNX dynamic int8, texts truncated to 128 "
            "tokens; headline = the fine-tuned encoder in the search mode recorded for the app "
            "(what the knowledge base serves after `customer-service train-retriever`)",
            "fine_tuning": {
                "via": "customer_service.retriever_training.train_retriever "
                "(keel.training.train_bi_encoder, in-batch negatives)",
                "train_pairs": tuned.pairs,
                "pairs_source": "InsuranceQA queries_train.jsonl: seeded sample (13) of "
                "questions, each with its first gold answer",
                "epochs": tuned.epochs,
                "options": tuned.options,
                "train_seconds": tuned.train_seconds,
                "export_seconds": tuned.export_seconds,
                "fingerprint": tuned.fingerprint,
            },
            "search_mode": {
                "served": served_mode,
                "chosen_on": f"{len(held_out)} held-out InsuranceQA train questions (not in "
                "the fine-tuning pairs), best recall@5 of hybrid (RRF k=60) vs vector only; "
                "nothing chosen on valid",
                "held_out_train": selection,
            },
            "per_mode_finetuned": tuned_results,
            "per_mode_base": base_results,
            "search_ms_per_query": {"finetuned": tuned_ms, "base": base_ms},
            "seconds": {k: round(v, 1) for k, v in seconds.items()},
            "cold_run": seconds["index_base"] > 0 and seconds["index_finetuned"] > 0,
            "cpu_count": os.cpu_count(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
    )


# ------------------------------------------------------------------------------ chat-load
def _load_messages(ctx: SuiteContext) -> list[str]:
    import pandas as pd

    from customer_service.config import BUNDLED_DATA_DIR

    messages = pd.read_csv(BUNDLED_DATA_DIR / "intents.csv")["text"].astype(str).tolist()
    banking = ctx.data_dir / "banking77" / "valid.csv"
    if banking.is_file():
        messages += pd.read_csv(banking)["text"].astype(str).tolist()
    random.Random(13).shuffle(messages)
    return messages


# Workers of chat-load's server: one per core unless KEEL_CS_BENCH_WORKERS says otherwise
# (they share the conversations through the SQLite database).
CHAT_WORKERS_ENV = "KEEL_CS_BENCH_WORKERS"
CHAT_WINDOWS = 5  # timed windows of the load test; figures are their medians


def chat_clients(
    loop: ClosedLoop, messages: Sequence[str], clients: int
) -> list[Coroutine[Any, Any, None]]:
    """chat-load's ``clients`` closed-loop clients for ``loop.run``, one keep-alive
    connection each: a client opens a conversation (``POST /sessions``, not timed), then
    sends ``messages`` in turn to ``POST /chat`` through ``loop.send`` (client ``i``
    starts at message ``i * 997``, wrapping around), and opens a new conversation after
    an answer whose ``state`` is not ``"bot"`` (handed off). An answer without a
    ``state`` counts as an error.

    Raises:
        RuntimeError: (from a client) ``POST /sessions`` did not answer 200.
    """
    authority = f"{loop.host}:{loop.port}"
    start_session = Endpoint("POST", "/sessions", authority).request()
    chat = Endpoint("POST", "/chat", authority)
    # Each message's JSON once; a request is the session's prefix + the message + "}".
    encoded = [json.dumps(text).encode() for text in messages]

    def bot_answered(response: Response) -> str | None:
        return None if isinstance(response.json()["state"], str) else "no state in the answer"

    async def new_session(conn: Connection) -> bytes:
        response = await conn.request(start_session)
        if response.status != 200:
            raise RuntimeError(f"POST /sessions answered {response.status}: {response.text()}")
        return b'{"session_id":' + json.dumps(response.json()["session_id"]).encode()

    async def client_loop(index: int) -> None:
        conn = loop.connection()
        prefix = await new_session(conn) + b',"message":'
        position = index * 997
        while loop.running:
            text = encoded[position % len(encoded)]
            position += 1
            response = await loop.send(conn, chat.request(prefix + text + b"}"), bot_answered)
            if response is not None and response.json()["state"] != "bot":
                # A handed-off conversation gets no bot answers: measure the bot, so
                # start a new conversation (the silent path would flatter the numbers).
                prefix = await new_session(conn) + b',"message":'

    return [client_loop(i) for i in range(clients)]


async def _run_clients(
    base_url: str,
    messages: list[str],
    clients: int,
    warmup_s: float,
    window_s: float,
    windows: int,
    on_window: Any = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Closed-loop load (no think time) for ``warmup_s``, then ``windows`` timed windows
    of ``window_s`` each, back to back, from ``clients`` clients of the lean load
    generator (``bench/loadgen.py``: one keep-alive connection each). A request counts in
    the window it started in if it ended in it too (the rest are in no window).
    ``on_window(index)`` is called as each window opens (``-1``: after the last one),
    e.g. to read CPU counters.

    Returns:
        Per window: ``latencies`` (s), ``errors``, ``requests``, ``error_kinds``; and the
        run's ``reconnects`` and the errors outside the windows (warm-up, straddling).
    """
    host, port_text = base_url.removeprefix("http://").rsplit(":", 1)
    port = int(port_text)
    loop = ClosedLoop(
        host, port, warmup_s=warmup_s, window_s=window_s, windows=windows, on_window=on_window
    )
    per_window = await loop.run(chat_clients(loop, messages, clients))
    results = [
        {
            "latencies": w.latencies,
            "errors": w.errors,
            "requests": w.requests,
            "error_kinds": w.error_kinds,
        }
        for w in per_window
    ]
    return results, {
        "reconnects": loop.reconnects,
        "errors_outside_windows": loop.unwindowed_errors,
        "error_kinds_outside_windows": loop.unwindowed_error_kinds,
    }


def _chat_profile(state: Path, messages: list[str], count: int, workers: int) -> dict[str, Any]:
    """Where a /chat turn's time goes, in-process (no HTTP): CPU per message of the
    handler thread and of the whole process (the encoder runs on the batcher's thread),
    the encoder alone at batch 32, and the functions that take the handler's CPU
    (cProfile on the thread's CPU clock, so other processes' load does not count)."""
    import cProfile
    import pstats

    from customer_service.config import Settings
    from customer_service.runtime import build_services
    from keel_service.threads import available_cores

    # The encoder threads of one of the server's workers.
    threads = max(1, available_cores() // workers)
    services = build_services(
        Settings(state_dir=state, api_key=secrets.token_urlsafe(24), num_threads=threads),
        show_progress=False,
    )
    dialogue = services.dialogue
    texts = [messages[(k * 7919) % len(messages)] for k in range(count)]
    session = {"id": dialogue.start(client_id="bench").id}

    def turns(batch: list[str]) -> None:
        for text in batch:
            reply = dialogue.handle_message(session["id"], text)
            if reply.state.value != "bot":
                session["id"] = dialogue.start(client_id="bench").id

    try:
        turns(texts[:50])  # warm-up
        thread0, process0, wall0 = time.thread_time(), time.process_time(), time.perf_counter()
        turns(texts)
        thread_s = time.thread_time() - thread0
        process_s = time.process_time() - process0
        wall_s = time.perf_counter() - wall0
        profiler = cProfile.Profile(time.thread_time)
        profiler.enable()
        turns(texts)
        profiler.disable()
        # The served intent model alone (a copy without the cache), batches of 32.
        from customer_service import engine

        predictor = engine.load_model(
            services.intent.model_dir, num_threads=services.settings.num_threads
        )
        batch = [messages[(k * 104729) % len(messages)] for k in range(32 * 4)]
        predictor.classify(batch[:32])
        cpu0 = time.process_time()
        for k in range(0, len(batch), 32):
            predictor.classify(batch[k : k + 32])
        encoder_ms = (time.process_time() - cpu0) / len(batch) * 1000
    finally:
        services.close()
    stats = pstats.Stats(profiler)
    rows = []
    for (file, line, name), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{Path(file).name}:{line}({name})",
                "calls_per_message": round(calls / count, 2),
                "self_ms_per_message": round(tottime / count * 1000, 4),
                "cumulative_ms_per_message": round(cumtime / count * 1000, 4),
            }
        )
    by_cumulative = sorted(rows, key=lambda r: -r["cumulative_ms_per_message"])[:25]
    by_self = sorted(rows, key=lambda r: -r["self_ms_per_message"])[:15]
    return {
        "messages": count,
        "handler_thread_cpu_ms_per_message": round(thread_s / count * 1000, 3),
        "process_cpu_ms_per_message": round(process_s / count * 1000, 3),
        "sequential_wall_ms_per_message": round(wall_s / count * 1000, 3),
        "encoder_process_cpu_ms_per_text_batch32": round(encoder_ms, 3),
        "encoder_threads": services.settings.num_threads,
        "top_cumulative": by_cumulative,
        "top_self": by_self,
        "note": "one conversation at a time, in-process (no HTTP, no uvicorn); the handler "
        "thread's CPU excludes the encoder, which runs on the micro-batcher's thread "
        "(process CPU includes it, and the encoder's own threads)",
    }


def _all_workers_ready(url: str, workers: int, timeout_s: float = 300.0) -> dict[str, Any]:
    """The ``/healthz`` body once every worker answers ready.

    ``start_app_server`` returns when one worker is ready; with several workers the next
    request may reach one still loading its models, so wait until ``4 x workers``
    consecutive probes (spread over the workers by the kernel) all say ``ok``.
    """
    import httpx

    deadline = time.monotonic() + timeout_s
    streak = 0
    body: dict[str, Any] = {}
    while streak < 4 * workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url}: not every worker became ready in {timeout_s:.0f} s")
        with httpx.Client(timeout=10) as client:  # a new connection: any worker may answer
            response = client.get(url + "/healthz")
        if response.status_code == 200 and "intent_model" in response.json():
            body = response.json()
            streak += 1
        else:
            streak = 0
            time.sleep(0.5)
    return body


@suite(
    "chat-load",
    area=AREA,
    description="POST /chat latency with 32 concurrent clients against the running server",
    targets=[
        Target("p95_ms", "<=", 50.0, anchor=f"{ISSUE} (32 clients, 2 cores; issue 17: 100)"),
        Target("rps", ">=", 700.0, anchor="issue 17 (32 clients, 2 cores)"),
        Target("errors", "==", 0.0, anchor=f"{ISSUE}, issue 17"),
    ],
)
def chat_load(ctx: SuiteContext) -> SuiteResult:
    from customer_service.config import Settings
    from customer_service.prepare import prepare
    from keel_service.servers import start_app_server

    clients = 32
    windows = CHAT_WINDOWS
    window_s = 3.0 if ctx.quick else 12.0
    warmup_s = 5.0
    workers = int(os.environ.get(CHAT_WORKERS_ENV, str(os.cpu_count() or 1)))
    state = WORK_DIR / "chat-load-state"
    ctx.log(f"preparing the demo models in {state}")
    prepare(Settings(state_dir=state), report=ctx.log, show_progress=False)
    env = {
        "KEEL_CS_STATE_DIR": str(state),
        "KEEL_CS_API_KEY": secrets.token_urlsafe(24),
        "KEEL_CS_RATE_LIMIT_PER_MINUTE": "100000000",
        "KEEL_CS_RATE_LIMIT_BURST": "10000000",
    }
    messages = _load_messages(ctx)
    server_cpu: list[float] = []
    client_cpu: list[float] = []
    with start_app_server(
        "customer_service.main:create_app",
        env=env,
        timeout_s=300,
        workers=workers,
    ) as url:
        import httpx

        health = _all_workers_ready(url, workers)
        pids = server_pids(int(url.rsplit(":", 1)[1]))

        def on_window(_index: int) -> None:
            server_cpu.append(cpu_seconds(pids))
            client_cpu.append(time.process_time())

        ctx.log(
            f"server ready ({health['intent_model']['variant']}, {workers} workers); "
            f"{clients} clients, {warmup_s:.0f} s warm-up + {windows} x {window_s:.0f} s"
        )
        per_window, connections = asyncio.run(
            _run_clients(url, messages, clients, warmup_s, window_s, windows, on_window)
        )
        server_metrics = httpx.get(url + "/metrics", timeout=10).text
    kinds: dict[str, float] = {}
    for line in server_metrics.splitlines():
        if line.startswith("cs_messages_total{"):
            kind = line.split('kind="')[1].split('"')[0]
            kinds[kind] = kinds.get(kind, 0.0) + float(line.rsplit(" ", 1)[1])
    rps = [w["requests"] / window_s for w in per_window]
    p95 = [_percentile_ms(w["latencies"], 95) for w in per_window]
    p50 = [_percentile_ms(w["latencies"], 50) for w in per_window]
    p99 = [_percentile_ms(w["latencies"], 99) for w in per_window]
    requests = sum(w["requests"] for w in per_window)
    errors = sum(w["errors"] for w in per_window)
    error_kinds: dict[str, int] = {}
    for w in per_window:
        for kind, n in w["error_kinds"].items():
            error_kinds[kind] = error_kinds.get(kind, 0) + n
    cpu = {
        "server_cpu_ms_per_request": _per_request_ms(server_cpu, per_window),
        "load_generator_cpu_ms_per_request": _per_request_ms(client_cpu, per_window),
        "server_processes": len(pids),
    }
    metrics = {
        "p95_ms": float(np.median(p95)),
        "errors": float(errors),
        "rps": float(np.median(rps)),
        "p50_ms": float(np.median(p50)),
        "p99_ms": float(np.median(p99)),
    }
    details: dict[str, Any] = {
        "clients": clients,
        "think_time_ms": 0,
        "warmup_s": warmup_s,
        "windows": windows,
        "window_s": window_s,
        "per_window": {
            "rps": _spread(rps),
            "p95_ms": _spread(p95),
            "p50_ms": _spread(p50),
            "p99_ms": _spread(p99),
        },
        "requests": requests,
        "error_kinds": error_kinds,
        "cpu": cpu,
        "server": f"uvicorn, {workers} worker process(es) ({CHAT_WORKERS_ENV}; default one "
        "per core) sharing one SQLite database, on 127.0.0.1; the load generator "
        "(bench/loadgen.py: asyncio streams, one HTTP/1.1 keep-alive connection per "
        "client) runs on the same machine",
        "load_generator": LOAD_GENERATOR,
        "connections": connections,
        "intent_model": health["intent_model"],
        "answer_kinds_served": kinds,
        "messages": f"{len(messages)} bundled demo utterances + Banking77 valid texts, "
        "shuffled, cycled by the clients; a client whose conversation is handed to an "
        "agent starts a new one. They are fewer than each worker's 2,048-text encoder "
        "cache, so once a worker has seen a text it is a cache hit: the run (warm-up "
        "included) makes at most workers x distinct texts encoder passes, and the timed "
        "windows are mostly cache-warm (the same workload as the issue's baseline)",
        "distinct_messages": len(set(messages)),
        "encoder_passes_at_most": workers * len(set(messages)),
        "cpu_count": os.cpu_count(),
    }
    missed = metrics["rps"] < 700 or metrics["p95_ms"] > 100 or errors > 0
    if missed:
        ctx.log("a target is missed: profiling the /chat turn in-process")
        details["profile"] = _chat_profile(state, messages, 100 if ctx.quick else 400, workers)
        details["profile"]["http_and_server_cpu_ms_per_request"] = cpu["server_cpu_ms_per_request"]
    return SuiteResult(
        metrics=metrics,
        details=details,
        recipe={
            "clients": clients,
            "workers": workers,
            "windows": windows,
            "window_s": window_s,
            "warmup_s": warmup_s,
            "generation": False,
            "figures": "median of the windows (min and max in details.per_window)",
        },
    )


def _percentile_ms(latencies: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(latencies) * 1000, q)) if latencies else float("nan")


def _spread(values: list[float]) -> dict[str, Any]:
    finite = [v for v in values if v == v]
    if not finite:
        return {"median": None, "min": None, "max": None, "runs": values}
    return {
        "median": round(float(np.median(finite)), 3),
        "min": round(min(finite), 3),
        "max": round(max(finite), 3),
        "runs": [round(v, 3) for v in values],
    }


def _per_request_ms(counters: list[float], per_window: list[dict[str, Any]]) -> float | None:
    """CPU milliseconds per request over the timed windows (counters read as each
    window opened and after the last)."""
    requests = sum(w["requests"] for w in per_window)
    if len(counters) < 2 or not requests:
        return None
    return round((counters[-1] - counters[0]) / requests * 1000, 3)
