"""The run history: summaries, snapshots and configs of run folders, read from disk and cached.

Pages ask for these every second from several tabs. Each read is cached under the `stat` (mtime
and size) of the files it came from, so a repeated read costs a few `stat` calls and a dict
lookup, and a file is parsed again only when it changed. The job manager lays its live state
(the run it trains, its queue, a status it could not write) over what this module returns.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from core.config import RunConfig
from core.errors import RunError, TuneboardError
from core.run.folder import STATUSES, RunFolder, elapsed_seconds, mtime_ns
from core.run.recovery import ACTIVE
from core.run.sink import RunSink

SINK_CACHE_SIZE = 32          # finished runs whose snapshots stay in memory
ACTIVE_DISK_TTL_S = 10.0      # how often the disk use of a run that is training is walked again


@dataclass(frozen=True)
class RunSummary:
    """One row of the run history, read from a run folder."""

    run_id: str
    status: str
    name: str = ""
    task: str = ""
    model: str = ""
    strategy: str = ""
    summary: str = ""
    created_at: str | None = None
    duration_s: float | None = None
    final_metrics: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    disk_bytes: int = 0
    resumable: bool = False
    error: str | None = None
    step: int = 0
    max_steps: int = 0
    finished_at: str | None = None
    device: str = ""  # "cpu" | "cuda" | "mps": where it trained
    # The evaluation a completed run kept ({"name", "step", "value"}) when it kept the best one.
    best: Mapping[str, Any] | None = None
    # What the run measured for core.plan.estimate: {"tokens_per_s", "overhead_s"}.
    speed: Mapping[str, Any] | None = None


class RunHistory:
    """Cached reads of the run folders under one root; safe to share between threads."""

    def __init__(self, runs_root: Path):
        self.runs_root = runs_root
        self._lock = threading.Lock()
        self._sinks: OrderedDict[str, tuple[Any, RunSink]] = OrderedDict()
        self._summaries: dict[str, tuple[Any, RunSummary]] = {}
        self._disk: dict[str, tuple[Any, float, int]] = {}
        self._configs: dict[str, tuple[Any, RunConfig]] = {}

    def summary(self, folder: RunFolder) -> RunSummary:
        """The run's row as its files say now: parsed again only when status or config changed."""
        key = (stat_key(folder.status_path), stat_key(folder.config_path))
        with self._lock:
            cached = self._summaries.get(folder.run_id)
        if cached is not None and cached[0] == key:
            summary = cached[1]
        else:
            summary = read_summary(folder)
            with self._lock:
                self._summaries[folder.run_id] = (key, summary)
        changes: dict[str, Any] = {"disk_bytes": self._disk_bytes(folder, summary.status)}
        if summary.status == "running":  # e.g. the CLI in another process: its clock keeps going
            info = folder.status()
            if info.get("started_at"):
                changes["duration_s"] = float(info.get("elapsed_before_s") or 0.0) + elapsed_seconds(info["started_at"])
        return replace(summary, **changes)

    def sink(self, run_id: str) -> RunSink:
        """A sink read from the run folder once, rebuilt only when the folder's files change."""
        folder = RunFolder(self.runs_root / run_id)
        key = folder_key(folder)
        with self._lock:
            cached = self._sinks.get(run_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        folder = RunFolder.open(self.runs_root, run_id)  # RunError when it does not exist
        sink = RunSink(folder)
        self.remember(run_id, sink, key)
        return sink

    def remember(self, run_id: str, sink: RunSink, key: Any = None) -> None:
        """Keep a finished run's sink (e.g. the one that just trained it), least recently used out first."""
        key = folder_key(sink.folder) if key is None else key
        with self._lock:
            self._sinks[run_id] = (key, sink)
            self._sinks.move_to_end(run_id)
            while len(self._sinks) > SINK_CACHE_SIZE:
                self._sinks.popitem(last=False)

    def config(self, run_id: str) -> RunConfig:
        """The RunConfig saved in a run folder (a copy: callers may edit it)."""
        folder = RunFolder.open(self.runs_root, run_id)
        key = stat_key(folder.config_path)
        with self._lock:
            cached = self._configs.get(run_id)
        if cached is None or cached[0] != key:  # pages ask every refresh; parse the YAML once
            cached = (key, load_config(folder))
            with self._lock:
                self._configs[run_id] = cached
        return copy.deepcopy(cached[1])

    def forget(self, run_id: str) -> None:
        """Drop everything cached about a run (it is deleted, or about to be trained again)."""
        with self._lock:
            for cache in (self._sinks, self._summaries, self._disk, self._configs):
                cache.pop(run_id, None)

    def _disk_bytes(self, folder: RunFolder, status: str) -> int:
        """Disk use of a run folder, walked again only when the folder changed (or every few s while active)."""
        key = (mtime_ns(folder.path), stat_key(folder.status_path))
        now = time.monotonic()
        with self._lock:
            cached = self._disk.get(folder.run_id)
        if cached is not None and cached[0] == key and (status not in ACTIVE or now - cached[1] < ACTIVE_DISK_TTL_S):
            return cached[2]
        total = folder.disk_usage_bytes()
        with self._lock:
            self._disk[folder.run_id] = (key, now, total)
        return total


def load_config(folder: RunFolder) -> RunConfig:
    """The run's config; RunError naming the run when it cannot be read."""
    try:
        return folder.config()
    except TuneboardError as err:
        raise RunError(f"The config of run {folder.run_id} cannot be read: {err}") from None


def read_summary(folder: RunFolder) -> RunSummary:
    """Build a summary from status.json and config.yaml (the slow part, which callers cache)."""
    info = folder.status()
    status = info.get("status")
    error = info.get("error")
    if status not in STATUSES:
        error = error or f"status.json holds an unknown status {status!r}."
        status = "failed"
    try:
        cfg = folder.config()
        config_fields = {
            "name": cfg.name or "",
            "task": cfg.task,
            "model": cfg.model.source,
            "strategy": cfg.strategy.name,
            "summary": cfg.summary(),
        }
    except TuneboardError as err:
        config_fields = {}
        status, error = "failed", f"config.yaml cannot be read: {err}"
    metrics = info.get("final_metrics")
    elapsed = info.get("elapsed_s")
    return RunSummary(
        run_id=folder.run_id,
        status=status,
        created_at=info.get("created_at"),
        duration_s=float(elapsed) if isinstance(elapsed, (int, float)) else None,
        final_metrics=MappingProxyType(dict(metrics) if isinstance(metrics, dict) else {}),
        error=error,
        step=_as_int(info.get("step")),
        max_steps=_as_int(info.get("max_steps")),
        finished_at=info.get("finished_at"),
        device=str(info.get("device_kind") or ""),
        best=MappingProxyType(dict(info["best"])) if isinstance(info.get("best"), dict) else None,
        speed=MappingProxyType(dict(info["speed"])) if isinstance(info.get("speed"), dict) else None,
        **config_fields,
    )


def stat_key(path: Path) -> tuple[int, int] | None:
    """(mtime, size) of a file, None when it is missing: changes whenever the file is rewritten."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def folder_key(folder: RunFolder) -> tuple[Any, ...]:
    """Changes whenever anything a snapshot shows changes on disk."""
    return tuple(stat_key(p) for p in (folder.status_path, folder.metrics_path, folder.probes_path, folder.log_path))


def _as_int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
