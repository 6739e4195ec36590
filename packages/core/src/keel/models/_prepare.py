"""Prepare a model folder once per fingerprint and publish it atomically.

Layout under ``root`` (the helper owns every folder in it)::

    <root>/<hash>/          the published version (holds ``.keel-complete``)
    <root>/current          pointer file: {"version": "<hash>", "fingerprint": ...}
    <root>/.lock            file lock held while a preparer checks or builds
    <root>/.<hash>.*.tmp/   a build in progress (removed when it fails)

A build writes into a temporary folder beside the published one; only a complete
build is renamed into place, then ``current`` is replaced (temp file + ``os.replace``),
so readers see the old version or the new one, never half of one. A crash mid-build
leaves the previous version published.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from keel.errors import ArtifactError

CURRENT_FILE = "current"
COMPLETE_MARKER = ".keel-complete"
LOCK_FILE = ".lock"

Fingerprint = Mapping[str, Any] | str


def fingerprint_hash(fingerprint: Fingerprint) -> str:
    """A stable 16-hex-digit hash of ``fingerprint`` (a JSON-able mapping or a string).

    Mappings are hashed as canonical JSON (sorted keys), so key order does not matter;
    values that JSON cannot hold (paths, enums) are hashed as their ``str``.
    """
    if isinstance(fingerprint, str):
        text = fingerprint
    else:
        text = json.dumps(dict(fingerprint), sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _is_complete(folder: Path) -> bool:
    return (folder / COMPLETE_MARKER).is_file()


def _read_pointer(root: Path) -> dict[str, Any] | None:
    path = root / CURRENT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("version"), str) else None


def published_artifact(root: str | Path) -> Path | None:
    """The folder ``root``'s ``current`` pointer names, if it exists and is complete.

    Args:
        root: the folder given to :func:`prepare_artifact`.

    Returns:
        The published version's folder, or ``None`` when nothing was published.
    """
    folder = Path(root)
    pointer = _read_pointer(folder)
    if pointer is None:
        return None
    version = folder / pointer["version"]
    return version if _is_complete(version) else None


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``root/.lock`` (blocks until other preparers finish)."""
    with open(root / LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _write_pointer(root: Path, version: str, fingerprint: Fingerprint) -> None:
    payload = {
        "version": version,
        "fingerprint": fingerprint if isinstance(fingerprint, str) else dict(fingerprint),
        "published": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{CURRENT_FILE}.", suffix=".tmp", dir=root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=1, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, root / CURRENT_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _remove_stale(root: Path, keep: Path) -> None:
    """Delete every other version folder (and leftovers of crashed builds) under ``root``.

    Called with the lock held, so no other preparer is building at the time.
    """
    for entry in root.iterdir():
        if entry == keep:
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.startswith(f".{CURRENT_FILE}.") and entry.name.endswith(".tmp"):
            with contextlib.suppress(OSError):
                entry.unlink()


def prepare_artifact(
    root: str | Path,
    fingerprint: Fingerprint,
    build: Callable[[Path], None],
    *,
    force: bool = False,
) -> Path:
    """Return the folder prepared for ``fingerprint`` under ``root``, building it if needed.

    If the version for ``fingerprint`` is already published and complete it is returned
    at once (``build`` is not called). Otherwise ``build(tmp)`` fills a temporary folder
    beside it; the folder is then renamed into place, ``root/current`` is replaced
    atomically to point at it, and the other versions under ``root`` are deleted. Two
    processes preparing the same root at once build once: the second waits on a file
    lock and then finds the first one's result.

    Args:
        root: a folder owned by this helper (one per model; every sub-folder that is
            not the published version is deleted on publish).
        fingerprint: what the model is made from (data hashes, options, format
            version), as a JSON-able mapping or a string; any change rebuilds.
        build: writes the model into the folder it is given (which exists and is
            empty). If it raises, nothing is published and the error propagates.
        force: rebuild even when the version is already published.

    Returns:
        The published folder, ``root/<hash of fingerprint>``.

    Raises:
        ArtifactError: ``root`` cannot be created or written.
    """
    folder = Path(root)
    version = fingerprint_hash(fingerprint)
    target = folder / version
    if not force and published_artifact(folder) == target:
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactError(f"{folder}: cannot create the model folder: {exc}") from exc
    with _locked(folder):
        if force or not _is_complete(target):
            tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", suffix=".tmp", dir=folder))
            try:
                build(tmp)
                (tmp / COMPLETE_MARKER).write_text(
                    json.dumps({"version": version}, indent=1), encoding="utf-8"
                )
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            if target.exists():
                # A forced rebuild, or a folder left without its marker: move it aside
                # first so the rename below lands on a free name.
                old = target.with_name(f".{version}.old.tmp")
                shutil.rmtree(old, ignore_errors=True)
                os.rename(target, old)
            os.rename(tmp, target)
        _write_pointer(folder, version, fingerprint)
        _remove_stale(folder, keep=target)
    return target
