"""Live model upgrade: serve the fast tier at once, train the production model in the
background, swap it in only when it beats the served one on validation.

How an app uses it (the support bot's ``customer_service/upgrade.py`` is the example):

1. It starts serving its ``fast`` model (frozen encoder + head) as before.
2. It builds a :class:`ModelUpgrader` with a :class:`CandidateJob` factory and a ``swap``
   callback, and calls :meth:`ModelUpgrader.start`.
3. The upgrader runs ``keel_service/_upgrade_child.py RUN_DIR NICE`` as a child process
   under ``nice`` (one at a time per state folder: an ``flock``, so replicas on one host
   sharing ``state_dir`` train once). The child imports ``CandidateJob.target``
   (``"package.module:function"``) and calls ``function(spec, out_dir, progress)``:
   it trains the candidate into ``out_dir``, scores it *and the served model* on the
   same validation data, and returns a :class:`CandidateResult` as a dict. ``progress(
   fraction, message)`` feeds ``/healthz`` (state, fraction, ETA).
4. When ``candidate_score > served_score + min_gain`` the folder is published under
   ``<root>/accepted/<fingerprint>`` and ``swap(folder, result)`` is called; the app
   loads the new model completely and then replaces its reference in one assignment
   (readers never see a half-loaded model; requests in flight keep the old one).
   Otherwise the folder is moved to ``<root>/refused/<fingerprint>`` with
   ``reason.json``. Either way the outcome is cached per fingerprint: a restart swaps an
   accepted candidate in without training, and does not retrain a refused one.

**Extra labelled data** (the support bot's agent corrections): the job's ``spec`` (JSON)
may carry two :class:`LabelledExamples` sets as ``[[text, label], ...]``
(:meth:`LabelledExamples.rows`, read back with :meth:`LabelledExamples.of`):
``extra_train`` is added to the training data, ``extra_validation`` to the validation
data that *both* the candidate and the served model are scored on. Their
:meth:`LabelledExamples.version` goes into the fingerprint, so new corrections make a
new candidate. After adding corrections, call :meth:`ModelUpgrader.request` to start a
new run; the support bot's entry point is ``customer_service.upgrade`` (see its
module docstring).

The states (:class:`UpgradeState`): ``off`` (disabled by setting), ``pending``, ``waiting``
(another process holds the lock), ``training``, ``evaluating``, ``swapped``, ``refused``,
``failed``, ``current`` (the cached outcome says nothing better is available).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from keel_service.heap import refreeze_heap

log = logging.getLogger("keel_service.upgrade")

JOB_FILE = "job.json"
PROGRESS_FILE = "progress.json"
RESULT_FILE = "result.json"
REASON_FILE = "reason.json"
LOG_FILE = "child.log"
MODEL_DIR = "model"
#: Candidates kept on disk (see ``ModelUpgrader._prune``).
KEEP_ACCEPTED = 2
KEEP_ASIDE = 3
CHILD_SCRIPT = Path(__file__).with_name("_upgrade_child.py")


class UpgradeState(StrEnum):
    OFF = "off"
    PENDING = "pending"
    WAITING = "waiting"
    TRAINING = "training"
    EVALUATING = "evaluating"
    SWAPPED = "swapped"
    REFUSED = "refused"
    FAILED = "failed"
    CURRENT = "current"


@dataclass(frozen=True)
class LabelledExamples:
    """Extra labelled texts for an upgrade (e.g. agent corrections), JSON-Lines portable."""

    texts: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.texts)

    @classmethod
    def of(cls, pairs: Sequence[Sequence[str]]) -> LabelledExamples:
        """From ``(text, label)`` pairs (or the ``[text, label]`` lists of :meth:`rows`)."""
        return cls(tuple(str(p[0]) for p in pairs), tuple(str(p[1]) for p in pairs))

    def version(self) -> str:
        """A hash of the content (empty string when there is none)."""
        if not self.texts:
            return ""
        digest = hashlib.sha256()
        for text, label in zip(self.texts, self.labels, strict=True):
            digest.update(json.dumps([text, label], ensure_ascii=False).encode("utf-8"))
        return digest.hexdigest()[:16]

    def rows(self) -> list[list[str]]:
        """``[[text, label], ...]``: how a job's ``spec`` carries them (JSON)."""
        return [[t, label] for t, label in zip(self.texts, self.labels, strict=True)]


@dataclass
class CandidateResult:
    """What a candidate build returns (in the child) and the parent decides on."""

    score: float  # the candidate's validation score (higher is better)
    served_score: float  # the served model's score on the same validation data
    metric: str = "accuracy"
    validation_size: int = 0
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CandidateResult:
        names = {"score", "served_score", "metric", "validation_size", "seconds", "details"}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class CandidateJob:
    """One candidate to build: ``target(spec, out_dir, progress)`` runs in the child.

    ``fingerprint`` names the candidate (its inputs and options, the served model): an
    outcome already recorded for it is reused instead of training again.
    """

    target: str
    spec: dict[str, Any]
    fingerprint: str


ProgressFn = Callable[[float, str], None]


@dataclass
class UpgradeStatus:
    """What ``/healthz`` and the landing page show about the upgrade."""

    state: UpgradeState = UpgradeState.PENDING
    fraction: float = 0.0
    eta_s: float | None = None
    message: str = ""
    candidate_score: float | None = None
    served_score: float | None = None
    reason: str | None = None
    started: float | None = None
    finished: float | None = None
    runs: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["state"] = self.state.value
        out["fraction"] = round(self.fraction, 3)
        if self.eta_s is not None:
            out["eta_s"] = round(self.eta_s, 1)
        for key in ("candidate_score", "served_score"):
            if out[key] is not None:
                out[key] = round(out[key], 4)
        return out


@dataclass
class ServedModel:
    """The model an app serves now: its tier (``fast`` or ``full``) and validation score."""

    tier: str
    score: float | None
    metric: str = "accuracy"

    def as_dict(self) -> dict[str, Any]:
        score = None if self.score is None else round(self.score, 4)
        return {"tier": self.tier, "validation_score": score, "metric": self.metric}


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(dict(payload), handle, indent=1, default=str)
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def _try_lock(path: Path) -> Iterator[bool]:
    """A non-blocking exclusive ``flock``: yields whether it was taken."""
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class ModelUpgrader:
    """Runs one app's background upgrade on a daemon thread.

    Args:
        name: the model's name in logs and paths (``"intent"``).
        root: a folder owned by the upgrader (``<state_dir>/models/<name>-upgrade``).
        served: the model served now (tier and validation score); updated on a swap.
        make_job: builds the next :class:`CandidateJob` (called on the upgrade thread,
            in the parent: read the database for extra data here); ``None`` when there
            is nothing to upgrade to.
        swap: loads the accepted folder and makes it the served model (raises to refuse).
        min_gain: the candidate must beat the served score by more than this.
        nice: the child's niceness increment (0 to 19).
        python: the interpreter the child runs (default: this one).
        start_delay_s: wait this long before the first run (let start-up traffic pass).
    """

    def __init__(
        self,
        name: str,
        root: Path,
        served: ServedModel,
        make_job: Callable[[], CandidateJob | None],
        swap: Callable[[Path, CandidateResult], None],
        *,
        min_gain: float = 0.0,
        nice: int = 15,
        python: str | None = None,
        start_delay_s: float = 0.0,
        poll_s: float = 0.5,
    ) -> None:
        self.name = name
        self.root = Path(root)
        self.served = served
        self.status = UpgradeStatus()
        self._make_job = make_job
        self._swap = swap
        self.min_gain = min_gain
        self.nice = nice
        self.python = python or sys.executable
        self.start_delay_s = start_delay_s
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    # -- public ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the upgrade thread (runs once now, then again on :meth:`request`)."""
        if self._thread is None:
            self._wake.set()
            self._thread = threading.Thread(
                target=self._loop, name=f"{self.name}-upgrade", daemon=True
            )
            self._thread.start()

    def request(self) -> None:
        """Run again (e.g. new corrections): the next job is built and, when its
        fingerprint has no recorded outcome, trained. A run in progress finishes first."""
        self._wake.set()

    def idle(self) -> bool:
        """Whether no run is in progress or asked for."""
        return not self._wake.is_set() and self.status.state not in {
            UpgradeState.PENDING,
            UpgradeState.WAITING,
            UpgradeState.TRAINING,
            UpgradeState.EVALUATING,
        }

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until :meth:`idle` (tests); returns whether it got there in time."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.1)
        return self.idle()

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the thread and the child (its whole process group)."""
        self._stop.set()
        self._wake.set()
        child = self._child
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait(timeout_s)
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def snapshot(self) -> dict[str, Any]:
        """Served tier and score plus the upgrade's status, for ``/healthz``."""
        with self._lock:
            return {**self.served.as_dict(), "upgrade": self.status.as_dict()}

    # -- the thread -----------------------------------------------------------------------

    def _loop(self) -> None:
        if self.start_delay_s and self._stop.wait(self.start_delay_s):
            return
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                self.run_once()
            except Exception as exc:
                log.exception("%s upgrade failed", self.name)
                self._set(state=UpgradeState.FAILED, reason=type(exc).__name__, eta_s=None)

    def _set(self, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(self.status, key, value)

    def run_once(self) -> UpgradeState:
        """One upgrade run on the calling thread: the job, its cached outcome or a child
        build, the decision and the swap. Returns the final state."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._set(
            state=UpgradeState.PENDING,
            fraction=0.0,
            eta_s=None,
            reason=None,
            message="",
            runs=self.status.runs + 1,
        )
        job = self._make_job()
        if job is None:
            self._set(state=UpgradeState.CURRENT, message="nothing to upgrade to", fraction=1.0)
            return UpgradeState.CURRENT
        key = job.fingerprint
        while not self._stop.is_set():
            with _try_lock(self.root / ".lock") as mine:
                if mine:
                    return self._run_locked(job, key)
            self._set(state=UpgradeState.WAITING, message="another process is upgrading")
            self._stop.wait(max(self.poll_s, 1.0))
        return self.status.state

    def _run_locked(self, job: CandidateJob, key: str) -> UpgradeState:
        accepted = self.root / "accepted" / key
        refused = self.root / "refused" / key
        if (accepted / RESULT_FILE).is_file():
            result = CandidateResult.from_dict(_read_json(accepted / RESULT_FILE) or {})
            log.info("%s upgrade: reusing the accepted candidate %s", self.name, key)
            return self._accept(accepted, result, cached=True)
        if (refused / REASON_FILE).is_file():
            record = _read_json(refused / REASON_FILE) or {}
            self._set(
                state=UpgradeState.REFUSED,
                fraction=1.0,
                reason=str(record.get("reason", "refused earlier")),
                candidate_score=record.get("score"),
                served_score=record.get("served_score"),
                message=f"candidate {key} was refused earlier (kept in {refused})",
            )
            return UpgradeState.REFUSED
        try:
            return self._build_and_decide(job, key)
        finally:
            self._prune()

    def _build_and_decide(self, job: CandidateJob, key: str) -> UpgradeState:
        accepted = self.root / "accepted" / key
        refused = self.root / "refused" / key
        work = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".tmp", dir=self.root))
        try:
            result = self._build(job, work)
        except Exception as exc:
            # Kept for diagnosis, not as an outcome: the next run tries again.
            self._keep_aside(work, self.root / "failed" / key, {"reason": f"build failed: {exc}"})
            self._set(
                state=UpgradeState.FAILED,
                reason=f"build failed ({type(exc).__name__})",
                eta_s=None,
                finished=time.time(),
            )
            return UpgradeState.FAILED
        if self._stop.is_set():
            shutil.rmtree(work, ignore_errors=True)
            return self.status.state
        self._set(
            state=UpgradeState.EVALUATING,
            candidate_score=result.score,
            served_score=result.served_score,
        )
        if result.score > result.served_score + self.min_gain:
            accepted.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(accepted, ignore_errors=True)
            os.replace(work, accepted)
            return self._accept(accepted, result, cached=False)
        reason = (
            f"validation {result.metric} {result.score:.4f} does not beat the served "
            f"model's {result.served_score:.4f} (+{self.min_gain:g} needed)"
        )
        self._keep_aside(work, refused, {"reason": reason, **asdict(result)})
        log.warning("%s upgrade refused: %s; kept in %s", self.name, reason, refused)
        self._set(state=UpgradeState.REFUSED, reason=reason, finished=time.time(), fraction=1.0)
        return UpgradeState.REFUSED

    def _prune(self) -> None:
        """Bound the disk use: the newest ``KEEP_ACCEPTED`` accepted candidates (the served
        one is the newest: a swap touches it), the newest ``KEEP_ASIDE`` refused and
        failed ones; older refused ones keep only their ``reason.json`` (the outcome)."""
        for kind, keep in (
            ("accepted", KEEP_ACCEPTED),
            ("refused", KEEP_ASIDE),
            ("failed", KEEP_ASIDE),
        ):
            folder = self.root / kind
            if not folder.is_dir():
                continue
            # A refusal's age is its reason.json's (pruning changes the folder's mtime).
            entries = sorted(
                (e for e in folder.iterdir() if e.is_dir()),
                key=lambda e: (e / REASON_FILE if kind == "refused" else e).stat().st_mtime,
                reverse=True,
            )
            for old in entries[keep:]:
                if kind == "refused":
                    for child in old.iterdir():
                        if child.name != REASON_FILE:
                            if child.is_dir():
                                shutil.rmtree(child, ignore_errors=True)
                            else:
                                child.unlink(missing_ok=True)
                else:
                    shutil.rmtree(old, ignore_errors=True)

    def _accept(self, folder: Path, result: CandidateResult, *, cached: bool) -> UpgradeState:
        self._set(state=UpgradeState.EVALUATING, message="loading the new model")
        with contextlib.suppress(OSError):
            os.utime(folder)  # the served candidate is the newest: pruning keeps it
        try:
            self._swap(folder / MODEL_DIR, result)
        except Exception as exc:
            log.exception("%s upgrade: the accepted candidate did not load", self.name)
            self._set(
                state=UpgradeState.FAILED,
                reason=f"swap failed ({type(exc).__name__})",
                finished=time.time(),
            )
            return UpgradeState.FAILED
        with self._lock:
            self.served = ServedModel("full", result.score, result.metric)
            self.status.state = UpgradeState.SWAPPED
            self.status.fraction = 1.0
            self.status.eta_s = None
            self.status.candidate_score = result.score
            self.status.served_score = result.served_score
            self.status.finished = time.time()
            self.status.message = (
                "swapped in a cached candidate" if cached else "swapped in the new model"
            )
        refreeze_heap()  # the replaced model's objects were frozen at start-up
        log.info(
            "%s upgrade: serving the new model (validation %s %.4f, was %.4f)",
            self.name,
            result.metric,
            result.score,
            result.served_score,
        )
        return UpgradeState.SWAPPED

    def _keep_aside(self, work: Path, refused: Path, record: Mapping[str, Any]) -> None:
        refused.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(refused, ignore_errors=True)
        _write_json(work / REASON_FILE, record)
        os.replace(work, refused)

    def _build(self, job: CandidateJob, work: Path) -> CandidateResult:
        """Run the child on ``work`` and return its result (raises when it fails)."""
        _write_json(work / JOB_FILE, {"target": job.target, "spec": job.spec})
        started = time.time()
        self._set(state=UpgradeState.TRAINING, started=started, message="starting", finished=None)
        with open(work / LOG_FILE, "wb") as out:
            self._child = subprocess.Popen(
                [self.python, str(CHILD_SCRIPT), str(work), str(self.nice)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: close() ends it with its children
            )
            child = self._child
            try:
                while child.poll() is None:
                    if self._stop.wait(self.poll_s):
                        raise RuntimeError("stopped")
                    self._read_progress(work, started)
            finally:
                if child.poll() is None:  # stopped: end the child's whole group
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(child.pid, signal.SIGKILL)
                code = child.wait()
                self._child = None
        if code != 0:
            tail = (work / LOG_FILE).read_text("utf-8", errors="replace")[-2000:]
            log.error("%s upgrade: the child exited with %s:\n%s", self.name, code, tail)
            raise RuntimeError(f"the candidate build exited with code {code}")
        data = _read_json(work / RESULT_FILE)
        if data is None:
            raise RuntimeError("the candidate build wrote no result")
        return CandidateResult.from_dict(data)

    def _read_progress(self, work: Path, started: float) -> None:
        data = _read_json(work / PROGRESS_FILE)
        if data is None:
            return
        fraction = min(max(float(data.get("fraction", 0.0)), 0.0), 1.0)
        elapsed = time.time() - started
        eta = elapsed * (1.0 - fraction) / fraction if fraction >= 0.02 else None
        self._set(fraction=fraction, eta_s=eta, message=str(data.get("message", "")))


# -- metrics ----------------------------------------------------------------------------


def update_model_gauges(state: Any, model: object) -> None:
    """Set the model gauges from ``/healthz``'s ``model`` block (``app_metrics`` calls it):
    ``keel_model_validation_score{model,tier}``, ``keel_model_upgrade_fraction{model}``
    and ``keel_model_upgrade_state{model,state}`` (1 for the current state). The gauges
    live in ``state.http_registry`` (made by ``configure_app``)."""
    registry = getattr(state, "http_registry", None)
    if registry is None or not isinstance(model, Mapping) or not model:
        return  # no registry, or an app whose ``model`` detail is something else
    gauges = getattr(state, "model_gauges", None)
    if gauges is None:
        from prometheus_client import Gauge

        gauges = state.model_gauges = (
            Gauge(
                "keel_model_validation_score",
                "Validation score of the served model, by tier (fast or full)",
                ["model", "tier"],
                registry=registry,
                multiprocess_mode="max",
            ),
            Gauge(
                "keel_model_upgrade_fraction",
                "Progress of the live upgrade's candidate build (0 to 1)",
                ["model"],
                registry=registry,
                multiprocess_mode="max",
            ),
            Gauge(
                "keel_model_upgrade_state",
                "1 for the live upgrade's current state (off, training, swapped, refused...)",
                ["model", "state"],
                registry=registry,
                multiprocess_mode="max",
            ),
        )
    score, fraction, states = gauges
    name = str(model.get("name", "model"))
    upgrade = model.get("upgrade") or {}
    score.clear()
    if model.get("validation_score") is not None:
        score.labels(name, str(model.get("tier"))).set(float(model["validation_score"]))
    fraction.labels(name).set(float(upgrade.get("fraction", 0.0) or 0.0))
    for value in UpgradeState:
        states.labels(name, value.value).set(1 if upgrade.get("state") == value.value else 0)


# -- the child --------------------------------------------------------------------------


def training_progress(progress: ProgressFn, start: float, end: float) -> Callable[..., None]:
    """A ``keel.training`` progress listener that maps a ``"<name> <epoch>/<epochs>"``
    bar onto ``[start, end]`` of the whole build."""
    import re

    pattern = re.compile(r"(\d+)/(\d+)\s*$")

    def listener(description: str, done: int, total: int) -> None:
        match = pattern.search(description)
        epoch, epochs = (int(match.group(1)), int(match.group(2))) if match else (1, 1)
        within = (epoch - 1 + (done / total if total else 1.0)) / max(epochs, 1)
        progress(start + (end - start) * min(within, 1.0), f"training: {description}")

    return listener
