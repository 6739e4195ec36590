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
  uvicorn server of the app, generation off; ``p95_ms``, ``errors``, ``rps``.

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
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import REPO_ROOT, SuiteContext, SuiteResult, Target, suite

AREA = "customer-service"
ISSUE = "issue 5 target"
WORK_DIR = REPO_ROOT / "var" / "bench" / "customer_service"
# Intent training budget of support-intent: "full" (fine-tune MiniLM, the issue's
# setting; needs a GPU or a long CPU run) or "fast" (frozen MiniLM + linear head). Unset:
# "full" when the bench budget fine-tunes (--budget full, or standard on a GPU), else "fast".
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

    budget = Budget(BUDGET_NAME or ("full" if ctx.fine_tune else "fast"))
    work = WORK_DIR / ("support-intent-quick" if ctx.quick else f"support-intent-{budget.value}")
    oos_csv = _clinc_oos_csv(ctx, work / "clinc150_oos_val.csv")
    settings = Settings(
        state_dir=work,
        api_key=secrets.token_urlsafe(24),
        intents_file=ctx.train_file("banking77", "train.csv"),
        intent_label_column="category",
        oos_file=oos_csv or work / "no-oos.csv",
        budget=Budget.FAST if ctx.quick else budget,
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
    return SuiteResult(
        metrics={
            "accuracy": float(metrics["accuracy"]),
            "macro_f1": float(metrics["macro_f1"]),
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
            "note": "intent = the top intent reported by POST /chat (one new conversation "
            "per utterance), i.e. after compression; model trained on train.csv minus a "
            "stratified internal split used for early stopping, compression and calibration",
        },
    )


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


async def _run_clients(
    base_url: str, messages: list[str], clients: int, warmup_s: float, duration_s: float
) -> tuple[list[float], int, int, float]:
    import httpx

    latencies: list[float] = []
    errors = 0
    requests = 0
    start = time.perf_counter()
    measure_from = start + warmup_s
    stop_at = measure_from + duration_s
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client_loop(index: int, http: httpx.AsyncClient) -> None:
        nonlocal errors, requests
        session = (await http.post("/sessions")).json()["session_id"]
        position = index * 997
        while time.perf_counter() < stop_at:
            text = messages[position % len(messages)]
            position += 1
            t0 = time.perf_counter()
            handed_off = False
            try:
                response = await http.post("/chat", json={"session_id": session, "message": text})
                ok = response.status_code == 200
                handed_off = ok and response.json()["state"] != "bot"
            except httpx.HTTPError:
                ok = False
            t1 = time.perf_counter()
            if t0 >= measure_from and t1 <= stop_at:
                requests += 1
                latencies.append(t1 - t0)
                errors += 0 if ok else 1
            if handed_off:
                # A handed-off conversation gets no bot answers: measure the bot, so
                # start a new conversation (the silent path would flatter the numbers).
                session = (await http.post("/sessions")).json()["session_id"]

    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as http:
        await asyncio.gather(*(client_loop(i, http) for i in range(clients)))
    return latencies, errors, requests, duration_s


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
    duration_s = 15.0 if ctx.quick else 60.0
    warmup_s = 5.0
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
    with start_app_server("customer_service.main:create_app", env=env, timeout_s=300) as url:
        import httpx

        health = httpx.get(url + "/healthz", timeout=10).json()
        ctx.log(
            f"server ready ({health['intent_model']['variant']}); {clients} clients, {duration_s:.0f} s"
        )
        latencies, errors, requests, measured_s = asyncio.run(
            _run_clients(url, messages, clients, warmup_s, duration_s)
        )
        server_metrics = httpx.get(url + "/metrics", timeout=10).text
    kinds = {
        line.split('kind="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in server_metrics.splitlines()
        if line.startswith("cs_messages_total{")
    }
    ms = np.asarray(latencies) * 1000 if latencies else np.asarray([float("nan")])
    return SuiteResult(
        metrics={
            "p95_ms": float(np.percentile(ms, 95)),
            "errors": float(errors),
            "rps": requests / measured_s,
            "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)),
        },
        details={
            "clients": clients,
            "think_time_ms": 0,
            "warmup_s": warmup_s,
            "measured_s": measured_s,
            "requests": requests,
            "server": "one uvicorn process on 127.0.0.1, load generator on the same machine",
            "intent_model": health["intent_model"],
            "answer_kinds_served": kinds,
            "messages": "bundled demo utterances + Banking77 valid texts, shuffled; a client "
            "whose conversation is handed to an agent starts a new one",
            "cpu_count": os.cpu_count(),
        },
    )
