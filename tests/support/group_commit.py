"""Makes writers of a ``keel_service.db.GroupCommit`` form one batch, for tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from keel_service.db import GroupCommit, WriteGate

DEADLINE_S = 60.0


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def write_in_one_batch(
    committer: GroupCommit[Any, Any], gate: WriteGate, writers: Sequence[Callable[[], None]]
) -> None:
    """Run each writer (each submits one item to ``committer``) on a thread of its own
    while ``gate`` is held: the first takes its own item and waits on the gate, the rest
    queue behind it; then the gate opens, so the rest are written as one batch. Returns
    when every writer has ended."""
    threads = [threading.Thread(target=writer) for writer in writers]
    with gate():
        threads[0].start()
        _wait_for(lambda: committer.writing, "the first writer never took its item")
        for thread in threads[1:]:
            thread.start()
        _wait_for(lambda: committer.queued == len(threads) - 1, "the writers never queued")
    for thread in threads:
        thread.join(DEADLINE_S)
        assert not thread.is_alive(), "a writer never ended"
