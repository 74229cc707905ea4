"""RunSink: where a training run publishes plain data, and where readers take snapshots.

The worker thread (or the CLI) calls `metric`, `probe`, `event`, `progress`, `set_status`, `log`.
Each call appends to the run folder (so a crash or a closed tab loses nothing) and updates an
in-memory copy behind a lock (so polling every second never re-reads files). `snapshot()` returns
an immutable `RunSnapshot`: tuples and frozen dataclasses only, safe to hand to any thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from core.run.folder import RunFolder, append_jsonl, clean_number, elapsed_seconds

LOG_TAIL_LINES = 200


@dataclass(frozen=True)
class RunSnapshot:
    """An immutable view of one run at one moment."""

    run_id: str
    status: str
    step: int = 0
    max_steps: int = 0
    epoch: float = 0.0
    elapsed_s: float = 0.0
    eta_s: float | None = None
    samples_per_s: float | None = None
    metrics: tuple[Mapping[str, Any], ...] = ()
    probes: tuple[Mapping[str, Any], ...] = ()
    events: tuple[Mapping[str, Any], ...] = ()
    log_tail: tuple[str, ...] = ()
    error: str | None = None
    info: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    version: int = 0

    @property
    def progress(self) -> float:
        """Share of steps done, 0..1."""
        return min(1.0, self.step / self.max_steps) if self.max_steps else 0.0

    @property
    def is_active(self) -> bool:
        return self.status in ("queued", "running")


def _freeze(record: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(record))


class RunSink:
    """Thread-safe publisher for one run; one writer, any number of snapshot readers."""

    def __init__(self, folder: RunFolder, *, load_existing: bool = True):
        self.folder = folder
        self._lock = threading.Lock()
        self._metrics: list[Mapping[str, Any]] = []
        self._probes: list[Mapping[str, Any]] = []
        self._events: list[Mapping[str, Any]] = []
        self._log: list[str] = []
        status = folder.status()
        self._status = dict(status)
        self._progress: dict[str, Any] = {
            "step": int(status.get("step", 0) or 0),
            "max_steps": int(status.get("max_steps", 0) or 0),
            "epoch": float(status.get("epoch", 0.0) or 0.0),
            "samples_per_s": status.get("samples_per_s"),
        }
        self._progress_started: tuple[float, int] | None = None
        self._version = 0
        self._snapshot: RunSnapshot | None = None
        if load_existing:
            for record in folder.metrics():
                (self._events if "event" in record else self._metrics).append(_freeze(record))
            self._probes = [_freeze(r) for r in folder.probes()]
            self._log = folder.log_tail(LOG_TAIL_LINES)

    # ---- writers (training side) ---------------------------------------------------------
    # Each writer persists to the run folder, then updates the in-memory copy. A sink that mirrors
    # a run trained in another process (core.service.child_process) gets the same updates through `mirror`,
    # which only touches memory: the other process already wrote the files.
    def metric(self, record: dict[str, Any]) -> None:
        """One log or eval event; must carry `step`."""
        clean = {k: clean_number(v) for k, v in record.items()}
        clean.setdefault("time", round(time.time(), 3))
        append_jsonl(self.folder.metrics_path, clean)
        self._remember_metric(clean)
        self._relay("metric", clean)

    def event(self, kind: str, step: int, message: str) -> None:
        """A marker on the charts: unfreezing, checkpoint, OOM retry, resume, stop."""
        record = {"step": int(step), "event": kind, "message": message, "time": round(time.time(), 3)}
        append_jsonl(self.folder.metrics_path, record)
        self.log(message)
        self._remember_event(record)
        self._relay("event", record)

    def probe(self, step: int, phase: str, text: str, predictions: list[dict[str, Any]]) -> None:
        """One probe scoring: phase is 'base' (before training), 'eval' or 'final'."""
        record = {"step": int(step), "phase": phase, "text": text, "predictions": predictions}
        append_jsonl(self.folder.probes_path, record)
        self._remember_probe(record)
        self._relay("probe", record)

    def progress(self, step: int, max_steps: int, epoch: float) -> None:
        """Cheap, in-memory only: called at every optimizer step."""
        self._remember_progress(int(step), int(max_steps), float(epoch))
        self._relay("progress", {"step": int(step), "max_steps": int(max_steps), "epoch": float(epoch)})

    def set_samples_per_step(self, samples: int) -> None:
        with self._lock:
            self._progress["samples_per_step"] = samples
        self._relay("samples_per_step", {"samples": samples})

    def set_status(self, **changes: Any) -> None:
        """Update status.json atomically and the in-memory copy."""
        data = self.folder.update_status(**changes)
        self._remember_status(data)
        self._relay("status", data)

    def log(self, message: str) -> None:
        self.folder.log(message)
        self._remember_log(message)
        self._relay("log", {"message": message})

    def _relay(self, kind: str, payload: dict[str, Any]) -> None:
        """Hook for a sink that forwards what it publishes to another process; nothing here."""

    # ---- the in-memory copy -----------------------------------------------------------------
    def mirror(self, kind: str, payload: Mapping[str, Any]) -> None:
        """Apply one update published by a sink in another process (memory only, files untouched)."""
        if kind == "metric":
            self._remember_metric(dict(payload))
        elif kind == "event":
            self._remember_event(dict(payload))
        elif kind == "probe":
            self._remember_probe(dict(payload))
        elif kind == "progress":
            self._remember_progress(int(payload["step"]), int(payload["max_steps"]), float(payload["epoch"]))
        elif kind == "samples_per_step":
            with self._lock:
                self._progress["samples_per_step"] = payload["samples"]
        elif kind == "status":
            self._remember_status(dict(payload))
        elif kind == "log":
            self._remember_log(str(payload["message"]))

    def _remember_metric(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._metrics.append(_freeze(record))
            self._version += 1

    def _remember_event(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._events.append(_freeze(record))
            self._version += 1

    def _remember_probe(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._probes.append(_freeze(record))
            self._version += 1

    def _remember_progress(self, step: int, max_steps: int, epoch: float) -> None:
        now = time.monotonic()
        with self._lock:
            if self._progress_started is None or step < self._progress_started[1]:
                self._progress_started = (now, step)
            start_time, start_step = self._progress_started
            rate = (step - start_step) / (now - start_time) if now > start_time and step > start_step else None
            self._progress.update(step=step, max_steps=max_steps, epoch=epoch)
            if rate:
                self._progress["steps_per_s"] = rate
            self._version += 1

    def _remember_status(self, data: dict[str, Any]) -> None:
        with self._lock:
            self._status = data
            self._version += 1

    def _remember_log(self, message: str) -> None:
        with self._lock:
            self._log.append(message)
            del self._log[:-LOG_TAIL_LINES]
            self._version += 1

    def start_over(self) -> Path | None:
        """Set aside the curves of an attempt that left no checkpoint, before training from step 0.

        The files move to `previous-attempts/<time>/` (kept, not deleted), so the charts show one
        attempt rather than two overlapping step ranges. Returns that folder, or None if empty.
        """
        moving = [p for p in (self.folder.metrics_path, self.folder.probes_path) if p.exists()]
        if not moving:
            return None
        target = self.folder.path / "previous-attempts" / time.strftime("%Y%m%d-%H%M%S")
        target.mkdir(parents=True, exist_ok=True)
        for path in moving:
            path.replace(target / path.name)
        with self._lock:
            self._metrics, self._probes, self._events = [], [], []
            self._progress.update(step=0, epoch=0.0, samples_per_s=None)
            self._progress.pop("steps_per_s", None)
            self._progress_started = None
            self._version += 1
        return target

    # ---- readers (UI side) ----------------------------------------------------------------
    def snapshot(self) -> RunSnapshot:
        """Immutable copy; rebuilt only when something changed since the last call."""
        with self._lock:
            if self._snapshot is not None and self._snapshot.version == self._version:
                return self._snapshot
            status = self._status
            progress = self._progress
            step, max_steps = progress["step"], progress["max_steps"]
            steps_per_s = progress.get("steps_per_s")
            eta = (max_steps - step) / steps_per_s if steps_per_s and max_steps and status.get("status") == "running" else None
            samples_per_s = (
                steps_per_s * progress["samples_per_step"]
                if steps_per_s and progress.get("samples_per_step")
                else status.get("samples_per_s")
            )
            started = status.get("started_at")
            if status.get("status") == "running" and started:
                elapsed = float(status.get("elapsed_before_s", 0.0)) + elapsed_seconds(started)
            else:
                elapsed = float(status.get("elapsed_s", 0.0) or 0.0)
            self._snapshot = RunSnapshot(
                run_id=self.folder.run_id,
                status=str(status.get("status", "queued")),
                step=step,
                max_steps=max_steps,
                epoch=progress["epoch"],
                elapsed_s=elapsed,
                eta_s=eta,
                samples_per_s=samples_per_s,
                metrics=tuple(self._metrics),
                probes=tuple(self._probes),
                events=tuple(self._events),
                log_tail=tuple(self._log[-50:]),
                error=status.get("error"),
                info=MappingProxyType(dict(status)),
                version=self._version,
            )
            return self._snapshot

