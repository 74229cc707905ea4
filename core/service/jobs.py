"""JobManager: the one owner of run lifecycles inside a server process (the queue and its worker).

One manager per process (the dashboard holds it in `st.cache_resource`; the CLI calls the engine
directly). `submit` validates synchronously, creates the run folder and queues the job; a single
daemon worker thread trains one job at a time (one device) and is the only place where training
failures are caught: every run ends in a final status with a message a user can act on.

Readers call `snapshot(run_id)`, which returns the live `RunSink`'s immutable snapshot for runs of
this manager and a cached, folder-built one (core.run.history) for everything else, so polling every
second from several tabs costs a dict lookup and a few `stat` calls, never a re-read of whole files.

A job holds its run's ownership lock (core.run.recovery) from `submit`/`resume` until it ends; at
start-up the manager marks runs that say `running` or `queued` but have no owner `interrupted`.

Longer than 500 lines on purpose: one class whose state (queue, active job, overrides) is guarded by
one lock; its methods are read together to see that every path releases the run and its lock.
"""

from __future__ import annotations

import atexit
import copy
import logging
import os
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.config import RunConfig
from core.errors import RunError, TuneboardError, describe_failure
from core.run.folder import (
    FINISHED,
    RESUMABLE,
    RunFolder,
    default_runs_root,
    list_runs,
    new_run_id,
    now_iso,
    validate_run_id,
)
from core.run.history import RunHistory, RunSummary, folder_key, load_config
from core.run.recovery import (
    ACTIVE,
    INTERRUPTED_QUEUED,
    INTERRUPTED_RUNNING,
    held_lock_fd,
    interrupt_if_orphaned,
    owned_message,
    run_lock,
    try_lock,
    unlock,
)
from core.run.sink import RunSink, RunSnapshot

# Re-exported: pages, tests and the CLI import these from here.
__all__ = [
    "INTERRUPTED_QUEUED", "INTERRUPTED_RUNNING", "JobManager", "RunSummary", "held_lock_fd",
    "run_lock", "train_in_this_process",
]

logger = logging.getLogger(__name__)

TrainFn = Callable[..., Any]
PreflightFn = Callable[[RunConfig], None]

NO_RESULT = (
    "Training ended without reporting a result (the run was still marked {status!r}). "
    "The log is in run.log; resume the run or start it again."
)
SHUTDOWN_TIMEOUT_S = 60.0     # time a stopping run gets to save its checkpoint at exit


# ---- the manager ------------------------------------------------------------------------------

@dataclass(eq=False)
class _Job:
    """A queued or running job; lives in the manager until it ends."""

    run_id: str
    folder: RunFolder
    cfg: RunConfig
    sink: RunSink
    resume: bool
    lock: Any
    previous: dict[str, Any] = field(default_factory=dict)  # status.json before a resume was queued
    from_checkpoint: bool = False  # what train_fn gets as `resume`
    stop_event: threading.Event = field(default_factory=threading.Event)


class JobManager:
    """Background training with a FIFO queue, cooperative stop, resume and crash recovery."""

    def __init__(
        self,
        runs_root: Path | None = None,
        *,
        train_fn: TrainFn | None = None,
        preflight_fn: PreflightFn | None = None,
    ):
        self.runs_root = Path(runs_root).resolve() if runs_root is not None else default_runs_root()
        self.runs_root.mkdir(parents=True, exist_ok=True)
        self._train_fn = train_fn or _default_train_fn()
        self._keeps_standby = False  # asked to: a child waits with its imports done whenever idle
        self._preflight_fn = preflight_fn or _engine_preflight
        self._lock = threading.Lock()
        self._queue: deque[_Job] = deque()
        self._live: dict[str, _Job] = {}          # queued + active jobs by run id
        self._active: _Job | None = None
        self._pending: set[str] = set()           # resumes / deletes being prepared
        self._worker: threading.Thread | None = None
        self._closed = False
        self._overrides: dict[str, dict[str, Any]] = {}  # final status we could not write to disk
        self._history = RunHistory(self.runs_root)  # what the folders say, for runs not live here
        self._recover()
        _register(self)

    # ---- starting runs ----------------------------------------------------------------------
    def keep_training_process_ready(self) -> bool:
        """Have a training process wait with torch and the engine imported, so Start begins at once.

        From then on the manager keeps one waiting whenever it is idle (never while a run trains:
        importing would take CPU from it). Only with training in child processes; returns whether
        one is kept. Cheap to call on every page run.
        """
        if self._train_fn is not _child_train_fn():
            return False
        with self._lock:
            if self._closed:
                return False
            self._keeps_standby = True
            idle = self._active is None and not self._queue
        if idle:
            _safe_standby()
        return True

    def submit(self, cfg: RunConfig) -> str:
        """Validate, create the run folder and queue the run; returns its id."""
        self._check_open()
        cfg.validate()
        self._preflight_fn(cfg)
        cfg = copy.deepcopy(cfg)  # the caller's object may keep changing in the UI
        folder = RunFolder.create(self.runs_root, new_run_id(cfg), cfg)
        handle = try_lock(folder)
        job = _Job(folder.run_id, folder, cfg, RunSink(folder, load_existing=False), False, handle)
        job.sink.log(f"Queued: {cfg.summary()}")
        self._enqueue(job)
        return job.run_id

    def resume(self, run_id: str) -> str:
        """Queue a stopped or interrupted run to continue from its last checkpoint."""
        self._check_open()
        validate_run_id(run_id)
        self._reserve(run_id, "resume")
        handle = None
        try:
            folder = RunFolder.open(self.runs_root, run_id)
            previous = folder.status()
            status = previous.get("status")
            if not folder.is_resumable(status):
                raise RunError(_not_resumable(run_id, status))
            cfg = load_config(folder)
            self._preflight_fn(cfg)
            handle = try_lock(folder)
            if handle is None:
                raise RunError(owned_message(folder))
            checkpoint = folder.last_complete_checkpoint()
            sink = RunSink(folder)
            sink.set_status(status="queued", error=None)
            if checkpoint is not None:
                sink.log(f"Queued to resume from {checkpoint.name}.")
            else:  # stopped or cut off before its first save: the engine needs a fresh start
                sink.log("Queued to resume; no complete checkpoint was saved, so training starts again from step 0.")
            job = _Job(run_id, folder, cfg, sink, True, handle, previous=previous, from_checkpoint=checkpoint is not None)
        except BaseException:
            unlock(handle)
            with self._lock:
                self._pending.discard(run_id)
            raise
        with self._lock:
            self._pending.discard(run_id)
            self._overrides.pop(run_id, None)
        self._history.forget(run_id)
        self._enqueue(job)
        return run_id

    # ---- controlling runs -------------------------------------------------------------------
    def stop(self, run_id: str) -> bool:
        """Ask a run to stop after its current step (saving a checkpoint); a queued run is cancelled.

        Returns False when the run was neither queued nor running.
        """
        validate_run_id(run_id)
        job, running = self._take_queued(run_id)
        if job is not None and not running:
            self._cancelled(job)
            return True
        if job is None:
            other = _owner_of(self, run_id)
            if other is not None:
                return other.stop(run_id)
            RunFolder.open(self.runs_root, run_id)  # RunError when there is no such run
            return False
        if not job.stop_event.is_set():
            job.stop_event.set()
            _safe(job.sink.log, "Stop requested: the run stops and saves a checkpoint after this step.")
        return True

    def cancel(self, run_id: str) -> None:
        """Remove a queued run from the queue (status cancelled, or back to stopped for a resume)."""
        validate_run_id(run_id)
        job, running = self._take_queued(run_id)
        if running:
            raise RunError(f"Run {run_id} is already running; use Stop to end it with a checkpoint.")
        if job is not None:
            self._cancelled(job)
            return
        other = _owner_of(self, run_id)
        if other is not None:
            other.cancel(run_id)
            return
        status = RunFolder.open(self.runs_root, run_id).status().get("status")
        if status != "cancelled":
            raise RunError(f"Run {run_id} is {status}, not queued; only queued runs can be cancelled.")

    def _take_queued(self, run_id: str) -> tuple[_Job | None, bool]:
        """Atomically take a queued job out of the queue; (job, True) when it is running instead.

        The job stays in `_live` (seen as queued) until `_retire` has released its folder lock.
        """
        with self._lock:
            job = self._live.get(run_id)
            if job is not None and job is self._active:
                return job, True
            if job is None or job not in self._queue:
                return None, False  # unknown here, or already being retired
            self._queue.remove(job)
            return job, False

    def _cancelled(self, job: _Job) -> None:
        if job.resume:  # cancelling a resume must not cost the run its resumability
            restored = job.previous.get("status", "stopped")
            self._set_status(job, status=restored, error=job.previous.get("error"))
            _safe(job.sink.log, f"Resume cancelled; the run is {restored} again.")
        else:
            self._set_status(job, status="cancelled", finished_at=now_iso())
            _safe(job.sink.log, "Cancelled before it started.")
        self._retire(job)

    def delete(self, run_id: str) -> None:
        """Remove a finished run's folder; refuses queued or running runs."""
        validate_run_id(run_id)
        self._reserve(run_id, "delete")
        try:
            folder = RunFolder(self.runs_root / run_id)
            if not folder.path.is_dir():
                raise RunError(f"There is no run {run_id} in {self.runs_root}: check the id on the Runs page.")
            handle = try_lock(folder)
            if handle is None:
                raise RunError(f"Run {run_id} is running in another Tuneboard process; stop it before deleting it.")
            try:
                folder.delete()
            finally:
                unlock(handle)
            if folder.path.exists():
                raise RunError(f"Run {run_id} could not be deleted completely; check the permissions of {folder.path}.")
        finally:
            with self._lock:
                self._pending.discard(run_id)
                self._overrides.pop(run_id, None)
            self._history.forget(run_id)

    def shutdown(self, timeout: float | None = SHUTDOWN_TIMEOUT_S) -> None:
        """Stop the running run (it saves a checkpoint), hand queued runs back as resumable, join."""
        with self._lock:
            self._closed = True
            queued = list(self._queue)
            self._queue.clear()
            active, worker = self._active, self._worker
        for job in queued:
            self._hand_back(job)
        if active is not None:
            active.stop_event.set()
            _safe(active.sink.log, "The server is shutting down: stopping the run with a checkpoint.")
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)
        if self._keeps_standby:
            _child_process().discard_standby()
        _unregister(self)

    # ---- reading ----------------------------------------------------------------------------
    def snapshot(self, run_id: str) -> RunSnapshot:
        """An immutable view of a run; cheap enough to poll every second from many tabs."""
        validate_run_id(run_id)
        with self._lock:
            job = self._live.get(run_id)
            override = self._overrides.get(run_id)
        if job is not None:
            sink = job.sink
        else:
            other = _owner_of(self, run_id)
            sink = other.live_sink(run_id) if other is not None else None
            if sink is None:
                sink = self._history.sink(run_id)
        snap = sink.snapshot()
        if override:
            snap = replace(snap, **override)
        return snap

    def active_run_id(self) -> str | None:
        """The run training now, if any."""
        with self._lock:
            return self._active.run_id if self._active is not None else None

    def is_busy(self, run_id: str | None = None) -> bool:
        """Whether a run (or any run) is queued or training, asked under one lock.

        Asking `active_run_id()` and then `queued()` can miss a job that moves from the queue to
        the worker between the two calls.
        """
        with self._lock:
            if run_id is None:
                return self._active is not None or bool(self._queue)
            active = self._active is not None and self._active.run_id == run_id
            return active or any(job.run_id == run_id for job in self._queue)

    def is_resumable(self, run_id: str) -> bool:
        """Whether Resume can continue this run now (not while it is queued or training)."""
        validate_run_id(run_id)
        if self.is_busy(run_id):
            return False
        status = self.snapshot(run_id).status
        if status in RESUMABLE:
            return True
        try:
            return status == "failed" and RunFolder.open(self.runs_root, run_id).is_resumable(status)
        except TuneboardError:
            return False

    def queued(self) -> list[str]:
        """Queued run ids, next first."""
        with self._lock:
            return [job.run_id for job in self._queue]

    def config(self, run_id: str) -> RunConfig:
        """The RunConfig saved in a run folder (a copy: callers may edit it)."""
        return self._history.config(run_id)

    def list_runs(self) -> list[RunSummary]:
        """Every run folder, newest first; unreadable folders are listed as failed with a reason."""
        rows = []
        for folder in list_runs(self.runs_root):
            try:
                rows.append(self._summary(folder))
            except Exception as err:  # one broken folder must not break the history page
                logger.warning("Cannot read run folder %s: %s", folder.path, err)
                rows.append(RunSummary(
                    run_id=folder.run_id,
                    status="failed",
                    error=f"This run folder cannot be read ({type(err).__name__}: {err}); delete it.",
                ))
        return rows

    # ---- the worker -------------------------------------------------------------------------
    def _enqueue(self, job: _Job) -> None:
        with self._lock:
            if self._closed:
                closed = True
            else:
                closed = False
                self._queue.append(job)
                self._live[job.run_id] = job
                if self._worker is None or not self._worker.is_alive():
                    self._worker = threading.Thread(target=self._work, name="tuneboard-jobs", daemon=True)
                    self._worker.start()
        if closed:
            self._hand_back(job)
            raise RunError("Tuneboard is shutting down; start the run again after the restart.")

    def _hand_back(self, job: _Job) -> None:
        """A queued job that will not run in this process stays resumable for the next one."""
        if job.resume:
            self._set_status(job, status=job.previous.get("status", "stopped"), error=job.previous.get("error"))
        else:
            self._set_status(job, status="interrupted", error=INTERRUPTED_QUEUED)
        _safe(job.sink.log, "The server stopped before this run started; it can be resumed.")
        self._retire(job)

    def _work(self) -> None:
        """Worker loop: run queued jobs one at a time; exit when the queue is empty."""
        while True:
            with self._lock:
                if not self._queue:
                    if self._worker is threading.current_thread():
                        self._worker = None
                    rearm = self._keeps_standby and not self._closed
                    break
                job = self._queue.popleft()
                self._active = job
            try:
                self._execute(job)
            except Exception:  # _execute catches training errors; this is a bug here, keep serving the queue
                logger.exception("Job manager failed around run %s", job.run_id)
            finally:
                self._retire(job)
        if rearm:
            _safe_standby()

    def _execute(self, job: _Job) -> None:
        """Run one job; the only place where training exceptions are caught."""
        sink = job.sink
        before = float(job.previous.get("elapsed_s") or 0.0) if job.from_checkpoint else 0.0
        t0 = time.monotonic()
        engine_elapsed = job.previous.get("elapsed_s")
        try:
            self._set_status(
                job, status="running", started_at=now_iso(), finished_at=None, error=None,
                elapsed_before_s=before, pid=os.getpid(),
            )
            engine_elapsed = sink.snapshot().info.get("elapsed_s")
            if job.stop_event.is_set():
                raise _StoppedBeforeStart()
            if job.resume and not job.from_checkpoint:
                kept = sink.start_over()
                if kept is not None:
                    sink.log(f"Training starts again from step 0; the earlier curves are kept in {kept.relative_to(job.folder.path)}.")
            self._train_fn(job.cfg, job.folder, sink, job.stop_event, resume=job.from_checkpoint)
        except _StoppedBeforeStart:
            self._set_status(job, status=job.previous.get("status", "stopped") if job.resume else "cancelled")
        except TuneboardError as err:
            self._fail(job, str(err), field=err.field)
        except Exception as err:
            self._fail(job, describe_failure(err))
        finally:
            info = sink.snapshot().info
            with self._lock:
                override = dict(self._overrides.get(job.run_id, {}))
            status = override.get("status", info.get("status"))
            changes: dict[str, Any] = {"finished_at": now_iso()}
            if status in ACTIVE:
                changes.update(status="failed", error=NO_RESULT.format(status=status))
                _safe(sink.log, changes["error"])
            if info.get("elapsed_s") == engine_elapsed:  # the engine did not record its own
                changes["elapsed_s"] = round(before + time.monotonic() - t0, 3)
            self._set_status(job, **changes)

    def _fail(self, job: _Job, message: str, *, field: str | None = None) -> None:
        _safe(job.sink.log, f"Run failed: {message}")
        # The traceback goes to run.log only: the Train page shows the log's tail, and a page never
        # shows a traceback.
        _safe(job.folder.log, traceback.format_exc().rstrip())
        self._set_status(job, status="failed", error=message, error_field=field)

    def _set_status(self, job: _Job, **changes: Any) -> None:
        """Write status.json; if the disk refuses (full), keep the final word in memory."""
        with self._lock:
            pending = dict(self._overrides.get(job.run_id, {}))
        try:
            job.sink.set_status(**{**pending, **changes})  # a write that failed earlier goes along
        except OSError as err:
            logger.error("Cannot write status of run %s: %s", job.run_id, err)
            keep = {k: changes[k] for k in ("status", "error") if k in changes}
            with self._lock:
                self._overrides.setdefault(job.run_id, {}).update(keep)
        else:
            with self._lock:
                self._overrides.pop(job.run_id, None)

    def _retire(self, job: _Job) -> None:
        """A job left the manager: release its folder lock, then forget it, keeping its sink cached."""
        unlock(job.lock)
        job.lock = None
        # Cached before the job leaves `_live`, so a reader always finds one of the two.
        self._history.remember(job.run_id, job.sink, folder_key(job.folder))
        with self._lock:
            if self._active is job:
                self._active = None
            if self._live.get(job.run_id) is job:
                del self._live[job.run_id]

    # ---- helpers ----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise RunError("Tuneboard is shutting down; start the run again after the restart.")

    def _reserve(self, run_id: str, action: str) -> None:
        """Mark a run as being resumed/deleted; RunError when this process is already handling it."""
        other = _owner_of(self, run_id)  # asked outside our lock: managers never nest their locks
        state = other.job_state(run_id) if other is not None else None
        with self._lock:
            state = state or self._state_locked(run_id)
            if state is None:
                self._pending.add(run_id)
                return
        if state == "busy":
            raise RunError(f"Run {run_id} is already being changed by another request; wait a moment.")
        if state == "finishing":
            raise RunError(f"Run {run_id} is still saving its final state; try again in a moment.")
        if action == "delete":
            raise RunError(f"Run {run_id} is {state}; stop or cancel it before deleting it.")
        raise RunError(f"Run {run_id} is already {state}.")

    def _state_locked(self, run_id: str) -> str | None:
        """Under the lock: 'running', 'queued', 'busy' (being resumed/deleted) or None."""
        job = self._live.get(run_id)
        if job is None:
            return "busy" if run_id in self._pending else None
        if job is not self._active:
            return "queued"
        # The trainer already reported its end; the worker is writing the last status fields.
        return "finishing" if job.sink.snapshot().status in FINISHED else "running"

    def job_state(self, run_id: str) -> str | None:
        """'queued', 'running' or 'finishing' while this manager holds the run, else None."""
        with self._lock:
            return self._state_locked(run_id)

    def live_sink(self, run_id: str) -> RunSink | None:
        """The sink of a run this manager trains or queues (fresher than its files), else None."""
        with self._lock:
            job = self._live.get(run_id)
            return job.sink if job is not None else None

    def _summary(self, folder: RunFolder) -> RunSummary:
        """The history's row for a run, with this manager's live state laid over it."""
        run_id = folder.run_id
        with self._lock:
            job = self._live.get(run_id)
            busy = job is not None or run_id in self._pending
            override = self._overrides.get(run_id)
        summary = self._history.summary(folder)
        changes: dict[str, Any] = dict(override or {})
        if job is not None:  # training here: the live sink is fresher than status.json
            snap = job.sink.snapshot()
            changes.update(status=snap.status, step=snap.step, max_steps=snap.max_steps or summary.max_steps, duration_s=snap.elapsed_s)
        status = changes.get("status", summary.status)
        changes["resumable"] = not busy and (status in RESUMABLE or (status == "failed" and folder.is_resumable(status)))
        return replace(summary, **changes)

    def _recover(self) -> None:
        """Runs marked running/queued that nobody owns were cut off by a crash: mark them interrupted."""
        for folder in list_runs(self.runs_root):
            if _owner_of(self, folder.run_id) is not None:
                continue  # another manager in this process trains or queued it
            try:
                interrupt_if_orphaned(folder, note="Marked interrupted at start-up")
            except OSError as err:
                logger.warning("Cannot recover run %s: %s", folder.run_id, err)


class _StoppedBeforeStart(Exception):
    """Stop was pressed between the queue and the start of training."""


# ---- module helpers ---------------------------------------------------------------------------

def train_in_this_process(cfg: RunConfig, folder: RunFolder, sink: RunSink, stop_event: threading.Event, *,
                          resume: bool = False):
    """engine.train on the worker thread itself: for tests that patch the engine in this process."""
    from core.training import engine  # lazy: keeps torch out of imports of this module

    return engine.train(cfg, folder, sink, stop_event, resume=resume)


def _default_train_fn() -> TrainFn:
    """Training in a child process (core.service.child_process): the server's page work and the training
    never share a GIL. $TUNEBOARD_TRAIN_IN_PROCESS=1 keeps it on the worker thread instead."""
    if os.environ.get("TUNEBOARD_TRAIN_IN_PROCESS") == "1":
        return train_in_this_process
    return _child_train_fn()


def _child_process():
    import core.service.child_process  # lazy: the module spawns processes, only a manager that trains needs it

    return core.service.child_process


def _child_train_fn() -> TrainFn:
    return _child_process().train_in_child_process


def _safe_standby() -> None:
    """A standby that cannot start costs only its head start: the next run starts a fresh child."""
    try:
        _child_process().keep_standby_ready()
    except OSError as err:
        logger.warning("Cannot start a standby training process: %s", err)


def _engine_preflight(cfg: RunConfig) -> None:
    from core.training import engine

    engine.preflight(cfg)


def _not_resumable(run_id: str, status: Any) -> str:
    if status == "completed":
        return f"Run {run_id} is completed; start a new run from its config instead."
    if status in ACTIVE:
        return f"Run {run_id} is already {status}."
    if status == "failed":
        return (f"Run {run_id} failed before its first complete checkpoint; fix the cause shown in its error, "
                "then start a new run from its config.")
    if status == "cancelled":
        return f"Run {run_id} was cancelled before it started; start a new run from its config instead."
    return f"Run {run_id} has status {status!r} and cannot be resumed; start a new run from its config."


def _safe(fn: Callable[..., Any], *args: Any) -> None:
    """Best-effort logging at the thread boundary: a full disk must not hide the real error."""
    try:
        fn(*args)
    except OSError as err:
        logger.error("Cannot write to a run log: %s", err)


# ---- managers alive in this process ------------------------------------------------------------
# Streamlit can create a second manager (e.g. after the cached factory's source changed) while the
# first one still trains. They find each other here so the newcomer neither marks the other's runs
# interrupted nor shows stale snapshots of them.

_REGISTRY_LOCK = threading.Lock()
_MANAGERS: weakref.WeakSet[JobManager] = weakref.WeakSet()


def _register(manager: JobManager) -> None:
    with _REGISTRY_LOCK:
        _MANAGERS.add(manager)


def _unregister(manager: JobManager) -> None:
    with _REGISTRY_LOCK:
        _MANAGERS.discard(manager)


def _owner_of(me: JobManager, run_id: str) -> JobManager | None:
    """Another live manager of the same runs folder that holds this run."""
    with _REGISTRY_LOCK:
        others = [m for m in _MANAGERS if m is not me and m.runs_root == me.runs_root]
    for other in others:
        if other.job_state(run_id) is not None:
            return other
    return None


@atexit.register
def _shutdown_all() -> None:
    """At interpreter exit, stop running runs so they end `stopped` with a checkpoint."""
    with _REGISTRY_LOCK:
        managers = list(_MANAGERS)
    for manager in managers:
        try:
            manager.shutdown(timeout=SHUTDOWN_TIMEOUT_S)
        except Exception as err:  # exit must go on
            logger.error("Job manager shutdown failed: %s", err)
