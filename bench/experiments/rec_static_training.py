"""EXPERIMENT (not a bench suite, not used by the app): train the recommender's static
(model2vec) table instead of only distilling it, and measure the blend's nDCG@10 lift.

Issue 17 wants POST /rerank p95 <= 60 ms for 50 history x 100 uncached candidates on a
2-core CPU; only a static-embedding tier is that fast, but the plain distillation of the
fine-tuned MiniLM lost too much quality (lift +8-9% vs the transformer's +12.7%, bar 10%).
This script tries, on top of the distilled table (``keel.compression.static``; the
training itself now lives there as ``train_table`` / ``train_static``, which the
recommender's ``prepare`` uses):

* ``regress``: tokenlearn-style regression. The table's rows that occur in the catalogue's
  item documents are trained (torch ``EmbeddingBag``, mean pooling, exactly model2vec's
  inference: ``StaticModel.tokenize`` ids, unknown tokens dropped) so that each document's
  static embedding matches the fine-tuned transformer's embedding of it (cosine loss), in
  the table's coordinates (the transformer vector projected on the table's PCA axes). A
  global offset is learned too; mean pooling lets it fold into every row exactly, so the
  result is a plain model2vec table.
* ``contrastive``: the same table fine-tuned on the recommender's (history item -> next
  item) pairs (``recommender.splits.next_item_pairs`` on the older part of the training
  log, as ``recommender.training.fine_tune_encoder`` does), in-batch negatives
  (MultipleNegativesRanking, scale 20), with the regression loss kept as an anchor.
* dims 256 (PCA, the distilled default) vs 384 (the encoder's full width).

Variants (suffix ``-<dims>``): ``distilled`` (no training), ``regress`` (regression
only), ``contrastive`` (contrastive from the distilled table, regression loss as an anchor
term), ``regress+contrastive`` (regression epochs first, then the contrastive ones).
``--save DIR --save-variant NAME`` writes one of them as a static artifact (model2vec
folder + a head-less ``static_tier.json``) and checks that it reloads to the same vectors.

Every variant is scored with the app's own pipeline: ``CatalogueSnapshot`` of the static
vectors, ``fit_blend`` + ``learn_signals`` on the training log, ``evaluate_methods`` on
the held-out tail of ``temporal_split(interactions, 0.1)``. That tail is a VALIDATION
split: every choice here is made on it, there is no test set in this experiment.

``--holdout-items`` (default 0.1) keeps that share of the catalogue's documents out of the
regression/contrastive training and reports how closely the static vectors follow the
transformer on them (mean cosine in the table's space): a check that the table
generalises to documents it was not trained on (serving embeds uncached candidates).

Run (about 5-10 minutes on 2 busy cores, most of it the transformer's catalogue pass and
the evaluation; the distilled table and the transformer vectors are cached in --work)::

    .venv/bin/python bench/experiments/rec_static_training.py \\
        --data /work/shared/data/movielens100k --encoder <fine-tuned encoder folder>

Without ``--encoder`` the encoder is fine-tuned first with ``train_recommender``
(max_pairs 2000, max_length 32: about 9 minutes on 2 cores). Results go to
``var/bench/experiments/rec_static_training.json``. Embedding times are the median of
``--timing-runs`` runs of 100 catalogue documents through ``StaticPredictor.embed``; on a
loaded machine they are indicative only.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from keel.compression.static import (
    StaticDistillConfig,
    StaticTrainConfig,
    distill_static,
    pca_axes,
    train_table,
    zipf_sif_weights,
)
from keel.inference import load_predictor
from keel.inference._static import StaticPredictor
from recommender.catalogue import CatalogueSnapshot
from recommender.datasets import load_movielens
from recommender.evaluation import evaluate_methods
from recommender.splits import next_item_pairs, temporal_split
from recommender.training import (
    TrainConfig,
    embed_catalogue,
    fit_blend,
    learn_signals,
    train_recommender,
)

OUT = Path("var/bench/experiments/rec_static_training.json")


def lift_of(metrics: dict[str, float]) -> dict[str, float]:
    best = max(metrics["popularity.ndcg_at_10"], metrics["itemknn.ndcg_at_10"])
    return {
        "lift": round(metrics["blend.ndcg_at_10"] / best - 1, 4),
        "blend_ndcg10": round(metrics["blend.ndcg_at_10"], 4),
        "semantic_ndcg10": round(metrics["semantic.ndcg_at_10"], 4),
        "best_baseline_ndcg10": round(best, 4),
        "cases": metrics["cases"],
    }


class Experiment:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(args.work)
        self.work.mkdir(parents=True, exist_ok=True)
        data = load_movielens(Path(args.data))
        self.items = data.items
        self.train_log, self.valid_log = temporal_split(data.interactions, 0.1)
        self.config = TrainConfig(max_pairs=2000, max_length=32, show_progress=False)
        self.docs = [it.document for it in self.items]
        rng = random.Random(13)
        order = list(range(len(self.items)))
        rng.shuffle(order)
        cut = round(len(order) * args.holdout_items)
        self.heldout = np.array(sorted(order[:cut]), dtype=np.int64)
        self.trainable = np.array(sorted(order[cut:]), dtype=np.int64)

    # -- the fine-tuned transformer -----------------------------------------------------
    def encoder(self) -> Path:
        if self.args.encoder:
            return Path(self.args.encoder)
        folder = self.work / "encoder"
        if not (folder / "keel.json").is_file():
            train_recommender(self.items, self.train_log, self.work, self.config)
        return folder

    def transformer_vectors(self, encoder: Path) -> np.ndarray:
        cache = self.work / "transformer_vectors.npy"
        if cache.is_file():
            return np.load(cache)
        predictor = load_predictor(encoder)
        vectors = embed_catalogue(predictor, self.items, False)
        np.save(cache, vectors)
        return vectors

    # -- evaluation ----------------------------------------------------------------------
    def evaluate(self, vectors: np.ndarray) -> dict[str, Any]:
        """Lift and nDCGs on the validation tail (negatives seed 13, as the app's
        evaluation), plus the lift under the ``--eval-seeds`` other negative samples."""
        snap = CatalogueSnapshot.build(self.items, vectors)
        blend = fit_blend(snap, self.train_log, self.config)
        signals = learn_signals(snap, self.train_log, blend)
        row: dict[str, Any] = {}
        for seed in (13, *self.args.eval_seeds):
            metrics = evaluate_methods(
                snap, signals, self.train_log, self.valid_log, seed=seed, show_progress=False
            )
            if seed == 13:
                row |= lift_of(metrics)
            else:
                row.setdefault("lift_other_seeds", []).append(lift_of(metrics)["lift"])
        return row

    def embed_ms(self, models: dict[str, Any], runs: int) -> dict[str, float]:
        """Median ms per 100 documents of each model, the models interleaved per run."""
        times: dict[str, list[float]] = {name: [] for name in models}
        predictors = {name: StaticPredictor(m, {}) for name, m in models.items()}
        for run in range(runs):
            start = (run * 100) % (len(self.docs) - 100)
            batch = self.docs[start : start + 100]
            for name, predictor in predictors.items():
                clock = time.perf_counter()
                predictor.embed(batch)
                times[name].append((time.perf_counter() - clock) * 1000)
        return {name: round(statistics.median(t), 2) for name, t in times.items()}


def fidelity(static: np.ndarray, target: np.ndarray, rows: np.ndarray) -> float:
    """Mean cosine between the static vectors and the targets on ``rows``."""
    if len(rows) == 0:
        return float("nan")
    a = static[rows] / np.maximum(np.linalg.norm(static[rows], axis=1, keepdims=True), 1e-9)
    b = target[rows] / np.maximum(np.linalg.norm(target[rows], axis=1, keepdims=True), 1e-9)
    return round(float((a * b).sum(axis=1).mean()), 4)


def save_variant(folder: Path, model: Any, docs: list[str], out: dict[str, Any]) -> dict[str, Any]:
    """Write a trained table as a plain static artifact: model2vec's folder
    (``keel.compression.static.save_static``), loadable with
    ``model2vec.StaticModel.from_pretrained(folder)``, plus a head-less
    ``static_tier.json`` (cascade off) so ``keel.inference._static.load_static_predictor``
    loads it as an embedding-only ``StaticPredictor``; checks the round trip."""
    from keel.compression.static import save_static
    from keel.inference._static import TIER_FILE, load_static_predictor

    if folder.exists() and any(folder.iterdir()):
        raise SystemExit(f"--save {folder}: exists and is not empty")
    save_static(folder, np.asarray(model.embedding), model.tokenizer, dict(model.config))
    meta = {
        "format": 1,
        "heads": {},
        "cascade": {"enabled": False, "reason": "embedding-only table (no heads)"},
        "trained_by": "bench/experiments/rec_static_training.py",
        "settings": out["settings"],
        "encoder": out["encoder"],
    }
    (folder / TIER_FILE).write_text(json.dumps(meta, indent=2, default=lambda x: None))
    loaded = load_static_predictor(folder).embed(docs)
    expected = StaticPredictor(model, {}).embed(docs)
    diff = float(np.abs(loaded - expected).max())
    if diff > 1e-5:
        raise SystemExit(f"saved table differs from the trained one (max |diff| {diff})")
    return {"folder": str(folder), "max_abs_diff_after_reload": diff}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="/work/shared/data/movielens100k")
    parser.add_argument("--encoder", default=None, help="fine-tuned encoder folder")
    parser.add_argument("--work", default="var/bench/experiments/rec_static_work")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--dims", default="256,384")
    parser.add_argument("--sif", type=float, default=1e-4, help="SIF a (0: none)")
    parser.add_argument("--regress-epochs", type=int, default=30)
    parser.add_argument("--contrastive-epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--anchor-weight", type=float, default=1.0)
    parser.add_argument("--holdout-items", type=float, default=0.1)
    parser.add_argument("--timing-runs", type=int, default=7)
    parser.add_argument("--skip-transformer-eval", action="store_true")
    parser.add_argument(
        "--eval-seeds",
        type=lambda v: [int(x) for x in v.split(",") if x],
        default=[],
        help="further negative-sampling seeds of the validation cases (e.g. 14,15)",
    )
    parser.add_argument("--save", default=None, help="write --save-variant's table here")
    parser.add_argument("--save-variant", default=None, help="e.g. regress+contrastive-256")
    parser.add_argument("--variants", default="distilled,regress,contrastive,regress+contrastive")
    args = parser.parse_args()
    if not 0 <= args.holdout_items < 0.5:
        parser.error("--holdout-items must be in [0, 0.5)")
    if args.timing_runs < 5:
        parser.error("--timing-runs must be >= 5")
    from model2vec import StaticModel

    exp = Experiment(args)
    encoder = exp.encoder()
    out: dict[str, Any] = {
        "split": "temporal_split(interactions, 0.1): training part fits, tail = VALIDATION",
        "encoder": str(encoder),
        "settings": {k: v for k, v in vars(args).items() if k not in {"out"}},
        "heldout_items": len(exp.heldout),
        "variants": {},
    }
    target_raw = exp.transformer_vectors(encoder)
    if not args.skip_transformer_eval:
        clock = time.perf_counter()
        out["variants"]["transformer"] = exp.evaluate(target_raw)
        print(
            "transformer", out["variants"]["transformer"], round(time.perf_counter() - clock), "s"
        )
    # One distillation at full width without SIF (the centred raw table); the 256-dim PCA
    # and the SIF weights are applied here exactly as distill_table does.
    folder = distill_static(
        encoder,
        StaticDistillConfig(dims=384, sif_coefficient=None, show_progress=False),
        cache_dir=exp.work / "static",
        log=lambda *a: None,
    )
    base = StaticModel.from_pretrained(folder, force_download=False)
    raw = np.asarray(base.embedding, dtype=np.float32)
    doc_ids = base.tokenize(exp.docs)
    sif = zipf_sif_weights(len(raw), args.sif or None)[:, None]
    older, _ = temporal_split(exp.train_log, exp.config.holdout_fraction)
    by_id = {it.id: it for it in exp.items}
    doc_row = {doc: i for i, doc in enumerate(exp.docs)}
    held = set(exp.heldout.tolist())
    pairs = [
        (doc_row[a], doc_row[b])
        for a, b in next_item_pairs(older, by_id, max_pairs=None, seed=13)
        if doc_row[a] not in held and doc_row[b] not in held
    ]
    out["contrastive_pairs"] = len(pairs)
    models: dict[str, Any] = {}
    wanted = args.variants.split(",")
    for dims in (int(d) for d in args.dims.split(",")):
        mean, axes = pca_axes(raw, dims)
        table = ((raw - mean) @ axes).astype(np.float32) * sif
        targets = (target_raw @ axes).astype(np.float32)
        for variant in wanted:
            name = f"{variant}-{dims}"
            clock = time.perf_counter()
            if variant == "distilled":
                trained = table
            else:
                trained, _ = train_table(
                    table,
                    doc_ids,
                    targets,
                    pairs if "contrastive" in variant else [],
                    StaticTrainConfig(
                        dims=dims,
                        sif_coefficient=args.sif or None,
                        regress_epochs=args.regress_epochs if "regress" in variant else 0,
                        contrastive_epochs=(
                            args.contrastive_epochs if "contrastive" in variant else 0
                        ),
                        learning_rate=args.lr,
                        anchor_weight=args.anchor_weight,
                    ),
                    train_rows=exp.trainable,
                )
            train_s = time.perf_counter() - clock
            config = dict(base.config, apply_pca=dims, hidden_dim=dims, sif_coefficient=args.sif)
            model = StaticModel(trained, base.tokenizer, config=config, normalize=True)
            models[name] = model
            vectors = StaticPredictor(model, {}).embed(exp.docs)
            row: dict[str, Any] = {"train_s": round(train_s, 1)}
            row["fidelity_trained_docs"] = fidelity(vectors, targets, exp.trainable)
            row["fidelity_heldout_docs"] = fidelity(vectors, targets, exp.heldout)
            clock = time.perf_counter()
            row |= exp.evaluate(vectors)
            row["eval_s"] = round(time.perf_counter() - clock, 1)
            out["variants"][name] = row
            print(name, row, flush=True)
    timings = exp.embed_ms(models, args.timing_runs)
    for name, ms in timings.items():
        out["variants"][name]["embed_ms_per_100_docs"] = ms
    out["note"] = "embed times on a loaded 2-core machine: indicative only"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, default=lambda x: None))
    print(json.dumps(out["variants"], indent=1))
    if args.save:
        if args.save_variant not in models:
            parser.error(f"--save-variant must be one of {sorted(models)}")
        out["saved"] = save_variant(Path(args.save), models[args.save_variant], exp.docs, out)
        Path(args.out).write_text(json.dumps(out, indent=2, default=lambda x: None))
        print("saved", out["saved"])
    assert all(math.isfinite(v["lift"]) for v in out["variants"].values())


if __name__ == "__main__":
    main()
