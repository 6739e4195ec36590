"""The one epoch runner every training loop uses; the loops differ only in their loss.

``run_epochs`` owns what the full, few-shot, bi-encoder and cross-encoder loops have in
common: putting modules in train mode, the per-epoch batch plan, the optimizer step
(backward, clipping, optimizer and schedule step), the running loss, a progress bar
with an ETA, the per-epoch history row and log line, and stopping early when the
epoch hook says so. Each loop passes a ``loss_fn(batch) -> (loss, n_samples)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from keel.training._runtime import log_epoch, optimizer_step, progress

if TYPE_CHECKING:
    import torch

Batch = TypeVar("Batch")
#: ``(epoch, history_row) -> stop?``: may add keys to the row (validation scores);
#: returning True ends training after this epoch.
EpochHook = Callable[[int, dict[str, Any]], bool | None]


@dataclass
class EarlyStopping:
    """Stop when the validation score has not improved for ``patience`` epochs.

    Attributes:
        patience: epochs without gain before stopping (0 = never stop).
        best: best score so far (-inf before the first).
        stale: epochs since the last gain.
    """

    patience: int
    best: float = float("-inf")
    stale: int = 0

    def update(self, score: float) -> bool:
        """Record an epoch's score; True when it is the best so far."""
        if score > self.best:
            self.best, self.stale = score, 0
            return True
        self.stale += 1
        return False

    @property
    def should_stop(self) -> bool:
        """Whether ``patience`` epochs passed without gain."""
        return self.patience > 0 and self.stale >= self.patience


@dataclass
class EpochRunner(Generic[Batch]):
    """What one training loop plugs into ``run_epochs``.

    Attributes:
        plan: ``epoch -> batches`` (a fresh shuffled plan per epoch).
        loss_fn: ``batch -> (loss tensor, samples in the batch)``: the only part
            that differs between the loops.
        parameters: the parameters to clip and update.
        optimizer: the optimizer.
        scheduler: the learning-rate schedule (stepped after every batch).
        modules: put in train mode at the start of every epoch (eval mode at the end).
        max_grad_norm: gradient-norm clipping bound.
    """

    plan: Callable[[int], Sequence[Batch]]
    loss_fn: Callable[[Batch], tuple[torch.Tensor, int]]
    parameters: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    modules: Sequence[torch.nn.Module]
    max_grad_norm: float = 1.0


def run_epochs(
    runner: EpochRunner[Batch],
    *,
    epochs: int,
    description: str,
    show_progress: bool,
    on_epoch_end: EpochHook | None = None,
    deadline: float | None = None,
) -> list[dict[str, Any]]:
    """Train for up to ``epochs`` epochs; return one history row per epoch run.

    Each row has ``epoch``, ``train_loss`` (sample-weighted mean), ``seconds`` and
    ``samples_per_s``, plus whatever ``on_epoch_end`` adds to it.

    Args:
        runner: the loop's plan, loss and optimizer.
        epochs: the most epochs to run.
        description: progress-bar and log-line prefix (``"bi-encoder"``).
        show_progress: show the bar (with its ETA) and print the epoch lines.
        on_epoch_end: called after each epoch with ``(epoch, row)``; it may add keys
            to the row, and returning True stops training (early stopping). It may
            raise to abort (hyperparameter pruning).
        deadline: a ``time.perf_counter()`` value training should end by: no epoch
            starts that the last one's duration (its hook included) says would end after
            it; the last row then says why under ``stopped``.

    Returns:
        The history rows.
    """
    history: list[dict[str, Any]] = []
    for epoch in range(1, epochs + 1):
        for module in runner.modules:
            module.train()
        batches = runner.plan(epoch)
        total, seen, started = 0.0, 0, time.perf_counter()
        with progress(len(batches), f"{description} {epoch}/{epochs}", show_progress) as bar:
            for batch in batches:
                loss, size = runner.loss_fn(batch)
                optimizer_step(
                    loss,
                    runner.parameters,
                    runner.optimizer,
                    runner.scheduler,
                    runner.max_grad_norm,
                )
                total += float(loss.detach()) * size
                seen += size
                bar.update(1)
                bar.set_postfix(loss=f"{total / max(seen, 1):.4f}")
        seconds = time.perf_counter() - started
        row: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": total / max(seen, 1),
            "seconds": round(seconds, 2),
            "samples_per_s": round(seen / seconds, 2) if seconds else None,
        }
        stop = bool(on_epoch_end(epoch, row)) if on_epoch_end is not None else False
        now = time.perf_counter()
        if deadline is not None and epoch < epochs:
            overrun = now + (now - started) - deadline
            if overrun > 0:
                row["stopped"] = (
                    f"time budget: epoch {epoch + 1} would end about {overrun:.0f}s past it"
                )
                stop = True
        history.append(row)
        val_text = f" val={row['val_score']:.4f}" if "val_score" in row else ""
        log_epoch(
            show_progress,
            f"{description} epoch {epoch}/{epochs} train_loss={row['train_loss']:.4f}"
            f"{val_text} {row['samples_per_s']} samples/s {seconds:.1f}s",
        )
        if stop:
            reason = f" ({row['stopped']})" if row.get("stopped") else ""
            log_epoch(show_progress, f"{description}: stopping early after epoch {epoch}{reason}")
            break
    for module in runner.modules:
        module.eval()
    return history
