"""keel_service.heap: the start-up heap is frozen once the app is ready, refrozen after a
swap, and left alone where freezing is off. Each case runs in a fresh interpreter: a
frozen heap would outlive the test in the test process."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc
import weakref
import keel_service.heap as heap
heap.freeze_enabled = {enabled}

class Model:  # a served model's objects, in a reference cycle
    def __init__(self):
        self.me = self

old = Model()
gone = weakref.ref(old)
heap.freeze_startup_heap()
frozen = gc.get_freeze_count()
del old  # swapped out: garbage, but only the cyclic collector can free it
gc.collect()
kept_while_frozen = gone() is not None
heap.refreeze_heap()
print(frozen, int(kept_while_frozen), int(gone() is None))
"""


def run(enabled: bool) -> tuple[int, int, int]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(enabled=enabled)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    return int(out[0]), int(out[1]), int(out[2])


def test_frozen_objects_skip_collections_until_the_heap_is_refrozen() -> None:
    frozen, kept_while_frozen, freed_by_refreeze = run(True)
    assert frozen > 0
    assert kept_while_frozen == 1  # a full collection skips the frozen heap
    assert freed_by_refreeze == 1  # refreezing collects the swapped-out model's cycle


def test_nothing_is_frozen_when_freezing_is_off() -> None:
    frozen, kept_while_frozen, freed = run(False)
    assert frozen == 0
    assert kept_while_frozen == 0  # the ordinary collector freed it at once
    assert freed == 1
