"""A serving process's start-up heap, kept out of the cyclic garbage collector's way.

After start-up a Keel server holds a few hundred thousand long-lived objects (torch,
transformers, tokenizers, the models, the knowledge base). CPython's full
(generation-2) collection visits every one of them, and it holds the GIL while it does:
in a customer-service worker under chat-load's 32 clients (2026-11-30, loaded 2-core
machine) each took 150-300 ms, six or seven times a minute, and every request in flight
in that process waited for it.

:func:`freeze_startup_heap` runs once the app is ready: one full collection, then
``gc.freeze()``, which moves every object alive now to a permanent generation that
later collections skip. Objects allocated afterwards are collected as before. A frozen
object that becomes garbage is still freed by reference counting; only one caught in a
reference cycle would stay, so :func:`refreeze_heap` (after a live upgrade swaps a model
in) unfreezes, collects everything once and freezes again.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

log = logging.getLogger("keel_service")

_lock = threading.Lock()

#: False in a process that builds apps in-process again and again (the test suite sets
#: it): there each app's objects would be frozen, and a dropped app's cycles never freed.
freeze_enabled = True


def freeze_startup_heap() -> None:
    """Collect once, then move every live object out of later collections' reach."""
    if not freeze_enabled:
        return
    with _lock:
        started = time.perf_counter()
        gc.collect()
        gc.freeze()
        log.info(
            "heap frozen: %d objects out of the collector's reach (%.0f ms)",
            gc.get_freeze_count(),
            (time.perf_counter() - started) * 1000,
        )


def refreeze_heap() -> None:
    """After a model swap: a full collection over the frozen objects too (the replaced
    model's cycles), then freeze what is alive again."""
    if not freeze_enabled:
        return
    with _lock:
        gc.unfreeze()
    freeze_startup_heap()
