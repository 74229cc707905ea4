"""Run ownership and crash recovery: who is training a run folder, and what to do when nobody is.

Ownership of a run across threads and processes is an exclusive `flock` on `<run>/.lock`, held by
whoever trains it (the dashboard's job manager from `submit`/`resume` until the job ends, the
CLI for the whole of `engine.train`). The kernel drops it when a process dies, even on `kill -9`.
So a run whose status says `running` or `queued` while its lock is free has no owner: it was cut
off by a crash and becomes `interrupted`, which can be resumed. The dashboard checks every run
at start-up and the CLI checks the run it is asked to resume, both through `interrupt_if_orphaned`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.errors import RunError
from core.run.folder import RunFolder, elapsed_seconds, now_iso

try:  # POSIX only; elsewhere ownership falls back to the job manager's registry in this process
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"
ACTIVE = ("queued", "running")
INTERRUPTED_RUNNING = (
    "The process training this run stopped before the run ended (it was killed, or the machine went down); "
    "resume it from its last checkpoint."
)
INTERRUPTED_QUEUED = "The process that queued this run stopped before the run started; resume it to start it."

# What interrupt_if_orphaned found.
ORPHANED = "orphaned"   # marked interrupted just now
OWNED = "owned"         # a live process holds the lock
INACTIVE = "inactive"   # neither queued nor running: nothing to recover

_HELD_LOCKS: dict[Path, Any] = {}  # run folder -> the open handle that holds its flock
_HELD_LOCKS_GUARD = threading.Lock()


def try_lock(folder: RunFolder) -> Any:
    """Take the run's exclusive lock without waiting; None when someone else holds it.

    Returns the handle to pass to `unlock`, or True where the folder cannot be locked (read-only,
    or no flock on this platform): ownership then rests on the job managers' registry alone.
    """
    if fcntl is None:  # pragma: no cover - Windows
        return True
    try:
        handle = open(folder.path / LOCK_NAME, "a")  # noqa: SIM115 - held open for the job's life
    except OSError:
        return True
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    with _HELD_LOCKS_GUARD:
        _HELD_LOCKS[folder.path.resolve()] = handle
    return handle


def unlock(handle: Any) -> None:
    """Release a lock taken by `try_lock` (None and True are accepted and ignored)."""
    if handle is None or handle is True:
        return
    with _HELD_LOCKS_GUARD:
        for path, held in list(_HELD_LOCKS.items()):
            if held is handle:
                del _HELD_LOCKS[path]
    try:
        handle.close()  # closing drops the flock (once no child process holds a copy of it)
    except OSError:
        pass


def held_lock_fd(folder: RunFolder) -> int | None:
    """The file descriptor of this process's lock on a run folder, for a child process to inherit.

    A flock belongs to the open file, not to a process: a child that inherits the descriptor keeps
    the run owned for as long as it lives, even if this process dies first.
    """
    with _HELD_LOCKS_GUARD:
        handle = _HELD_LOCKS.get(folder.path.resolve())
    return handle.fileno() if handle is not None else None


@contextmanager
def run_lock(folder: RunFolder) -> Iterator[None]:
    """Hold a run's ownership lock (for the CLI); RunError if another process is training it."""
    handle = try_lock(folder)
    if handle is None:
        raise RunError(owned_message(folder))
    try:
        yield
    finally:
        unlock(handle)


def owned_message(folder: RunFolder) -> str:
    """What to tell a user who wants to train a run that another process owns."""
    return (
        f"Run {folder.run_id} is being trained by another Tuneboard process (it holds "
        f"{folder.path / LOCK_NAME}); stop it there, or wait for it to end."
    )


def interrupt_if_orphaned(folder: RunFolder, *, note: str) -> str:
    """Mark a run `interrupted` when its status says queued/running but no process holds its lock.

    Returns ORPHANED when it did, OWNED when a live process holds the lock, INACTIVE when the run
    is neither queued nor running. `note` starts the line written to run.log.
    """
    if folder.status().get("status") not in ACTIVE:
        return INACTIVE
    handle = try_lock(folder)
    if handle is None:
        return OWNED
    try:
        # Re-read under the lock: the owner may have finished between the two reads.
        info = folder.status()
        status = info.get("status")
        if status not in ACTIVE:
            return INACTIVE
        message = INTERRUPTED_RUNNING if status == "running" else INTERRUPTED_QUEUED
        changes: dict[str, Any] = {"status": "interrupted", "error": message, "finished_at": now_iso()}
        if status == "running" and info.get("started_at"):
            # Up to the last status write: the time after it, until the kill, left no trace.
            lasted = elapsed_seconds(info["started_at"], info.get("updated_at"))
            changes["elapsed_s"] = round(float(info.get("elapsed_before_s") or 0.0) + lasted, 3)
        folder.update_status(**changes)
        folder.log(f"{note}: {message}")
    finally:
        unlock(handle)
    return ORPHANED
