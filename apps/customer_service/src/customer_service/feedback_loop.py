"""The feedback loop's glue: agents' corrections feed the live intent-model upgrade.

The runtime's background upgrade (``customer_service.upgrade``, ``KEEL_CS_UPGRADE=true``)
asks :func:`corrections_provider` for extra labelled data each time it builds a
candidate: the in-scope corrections split by text hash into training data and a
held-out validation share (:func:`customer_service.corrections.training_data`), and the
texts marked out of scope for the out-of-scope calibration. The candidate is trained on
the old training data plus the training share, both it and the served model are scored
on the old validation set plus the held-out share, and it is swapped in only when it
scores higher; otherwise it is kept aside with the reason.

:class:`FeedbackLoop` asks for a new run after every ``retrain_every`` changes to the
corrections (and at once through ``POST /admin/corrections/retrain``); requests made
while a run is in progress coalesce into one more run.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from customer_service.corrections import CorrectionStore, training_data
from customer_service.upgrade import ExtraIntentData
from keel_service.upgrade import LabelledExamples

if TYPE_CHECKING:
    from customer_service.runtime import AppRuntime

log = logging.getLogger(__name__)

#: Corrections changes after which a new upgrade run is requested automatically.
RETRAIN_EVERY = 25


def corrections_provider(runtime: AppRuntime) -> ExtraIntentData:
    """The corrections as the upgrade's extra data (empty until the app is ready)."""
    services = runtime.services
    if services is None:
        return ExtraIntentData()
    store = CorrectionStore(services.store.engine, services.store.write_gate)
    data = training_data(store, labels=services.intent.labels)
    log.info(
        "upgrade data: corrections version %d, %d to train on, %d held out, %d out of scope",
        data.version,
        len(data.train),
        len(data.validation),
        len(data.out_of_scope),
    )
    return ExtraIntentData(
        train=LabelledExamples.of(list(data.train)),
        validation=LabelledExamples.of(list(data.validation)),
        out_of_scope=data.out_of_scope,
    )


class FeedbackLoop:
    """Connects the corrections to one runtime's upgrade.

    Args:
        runtime: the app runtime; its upgrade asks this loop for extra data.
        retrain_every: corrections changes after which a run is requested (0: only
            when asked through :meth:`retrain`).
    """

    def __init__(self, runtime: AppRuntime, retrain_every: int = RETRAIN_EVERY) -> None:
        if retrain_every < 0:
            raise ValueError(f"retrain_every={retrain_every!r} must be >= 0")
        self.runtime = runtime
        self.retrain_every = retrain_every
        self._lock = threading.Lock()
        self._changes = 0
        runtime.extra_intent_data = lambda: corrections_provider(runtime)

    def changed(self) -> bool:
        """Count one change to the corrections; returns whether a run was requested."""
        with self._lock:
            self._changes += 1
            due = self.retrain_every > 0 and self._changes >= self.retrain_every
            if due:
                self._changes = 0
        return self.retrain() if due else False

    def retrain(self) -> bool:
        """Ask for an upgrade run on the current corrections; ``False`` when the live
        upgrade is off (``KEEL_CS_UPGRADE``)."""
        requested = self.runtime.request_upgrade()
        if requested:
            with self._lock:
                self._changes = 0
        return requested
