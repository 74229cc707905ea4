"""A run folder: everything about one fine-tune, so nothing depends on a browser tab.

runs/<run_id>/
    config.yaml      the full RunConfig (enough to rerun)          written atomically
    status.json      status, params, timestamps, error              written atomically
    metrics.jsonl    one event per log / eval / marker              append-only
    probes.jsonl     one object per probe scoring                   append-only
    load_report.json what the model loader had to initialise        written atomically
    run.log          human-readable log, tracebacks of failures     append-only
    checkpoint-N/    Trainer checkpoints
    final/           the trained model (or adapter) and tokenizer
    predictions/     per-example eval predictions by stage (parquet)   written atomically
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.config import RunConfig
from core.errors import RunError

# The crash-safe file primitives live in core.files; re-exported here for existing callers.
from core.files import (  # noqa: F401
    append_jsonl,
    atomic_write_json,
    atomic_write_text,
    clean_number,
    read_jsonl,
)

STATUSES = ("queued", "running", "stopped", "completed", "failed", "interrupted", "cancelled")
RESUMABLE = ("stopped", "interrupted")
FINISHED = ("stopped", "completed", "failed", "interrupted", "cancelled")

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
LOG_ENTRY = re.compile(r"^\[\d\d:\d\d:\d\d\] (?!Traceback)")  # what RunFolder.log writes, tracebacks excepted
# A checkpoint is usable only when all of these exist: Trainer writes them one after another and a
# kill between two writes leaves a folder that resume_from_checkpoint would choke on.
CHECKPOINT_REQUIRED = ("trainer_state.json", "optimizer.pt", "scheduler.pt")
WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors", "model.safetensors.index.json")


def default_runs_root() -> Path:
    """Where run folders live: $TUNEBOARD_RUNS or ./runs."""
    return Path(os.environ.get("TUNEBOARD_RUNS", "runs")).resolve()


def new_run_id(cfg: RunConfig | None = None) -> str:
    """A sortable, unique id: time first so folders list in order."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    task = cfg.task if cfg is not None else "run"
    # 32 random bits: with 16 a burst of submissions in one second (several tabs, two users) collided
    # once in ~100 bursts of 40, and a collision refuses the second submission.
    return f"{stamp}-{task}-{secrets.token_hex(4)}"


def validate_run_id(run_id: str) -> str:
    """Refuse ids that could escape the runs folder (no slashes, no '..')."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id) or ".." in run_id:
        raise RunError(f"{run_id!r} is not a valid run id: use letters, digits, '-', '_' and '.'.")
    return run_id


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---- the run folder -------------------------------------------------------------------------

@dataclass
class RunFolder:
    """Paths and reads/writes of one run folder."""

    path: Path

    @classmethod
    def create(cls, root: Path, run_id: str, cfg: RunConfig) -> RunFolder:
        validate_run_id(run_id)
        folder = cls(root / run_id)
        try:
            folder.path.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise RunError(f"Run {run_id} already exists; pick another name.") from None
        except OSError as err:
            raise RunError(f"Cannot create run folder {folder.path}: {err.strerror}.") from None
        cfg.save(folder.config_path)
        folder.write_status({"status": "queued", "created_at": now_iso()})
        return folder

    @classmethod
    def open(cls, root: Path, run_id: str) -> RunFolder:
        validate_run_id(run_id)
        folder = cls(root / run_id)
        if not folder.config_path.exists():
            raise RunError(f"There is no run {run_id} in {root}: check the id on the Runs page.")
        return folder

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def probes_path(self) -> Path:
        return self.path / "probes.jsonl"

    @property
    def log_path(self) -> Path:
        return self.path / "run.log"

    @property
    def load_report_path(self) -> Path:
        return self.path / "load_report.json"

    @property
    def final_path(self) -> Path:
        return self.path / "final"

    @property
    def predictions_path(self) -> Path:
        """Per-example predictions on the eval set, one parquet file per stage (see core.insight.predictions)."""
        return self.path / "predictions"

    def config(self) -> RunConfig:
        return RunConfig.load(self.config_path)

    def status(self) -> dict[str, Any]:
        try:
            data = json.loads(self.status_path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {"status": "failed"}
        except (FileNotFoundError, json.JSONDecodeError):
            return {"status": "failed", "error": "status.json is missing or unreadable."}

    def write_status(self, data: dict[str, Any]) -> None:
        atomic_write_json(self.status_path, data)

    def update_status(self, **changes: Any) -> dict[str, Any]:
        data = self.status()
        data.update(changes)
        data["updated_at"] = now_iso()
        self.write_status(data)
        return data

    def metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics_path)

    def probes(self) -> list[dict[str, Any]]:
        return read_jsonl(self.probes_path)

    def load_report(self) -> dict[str, Any]:
        try:
            return json.loads(self.load_report_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def log(self, message: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        with open(self.log_path, "a", encoding="utf-8") as handle:
            handle.write(f"[{stamp}] {message}\n")

    def log_tail(self, lines: int = 30) -> list[str]:
        """The last log entries a page may show: Tuneboard's own timestamped lines, not the
        tracebacks and library warnings that run.log also keeps for whoever debugs a run."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                entries = [line for line in handle.read().splitlines() if LOG_ENTRY.match(line)]
        except FileNotFoundError:
            return []
        return entries[-lines:]

    def checkpoints(self) -> list[Path]:
        """Checkpoint folders, oldest first."""
        found = []
        if self.path.exists():
            for child in self.path.iterdir():
                match = CHECKPOINT_PATTERN.match(child.name)
                if match and child.is_dir():
                    found.append((int(match.group(1)), child))
        return [path for _, path in sorted(found)]

    def last_complete_checkpoint(self) -> Path | None:
        """Newest checkpoint with weights, optimizer, scheduler and trainer state all present."""
        for checkpoint in reversed(self.checkpoints()):
            if is_complete_checkpoint(checkpoint):
                return checkpoint
        return None

    def is_resumable(self, status: str | None = None) -> bool:
        """Stopped and interrupted runs resume; a failed one too when it left a complete checkpoint
        (e.g. the disk filled up after a save: free space, then continue instead of starting over)."""
        status = self.status().get("status") if status is None else status
        return status in RESUMABLE or (status == "failed" and self.last_complete_checkpoint() is not None)

    def disk_usage_bytes(self) -> int:
        total = 0
        for root, _dirs, files in os.walk(self.path):
            for name in files:
                try:
                    total += (Path(root) / name).stat().st_size
                except OSError:
                    pass
        return total

    def delete(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def is_complete_checkpoint(checkpoint: Path) -> bool:
    """True when Trainer finished writing every file resume needs."""
    if not all((checkpoint / name).is_file() for name in CHECKPOINT_REQUIRED):
        return False
    if not any((checkpoint / name).is_file() for name in WEIGHT_FILES):
        return False
    try:
        json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return True


def list_runs(root: Path) -> list[RunFolder]:
    """Every run folder under root (a config.yaml or a status.json in it), newest first.

    The one walk of a runs folder: the history, the job manager's listing and its start-up recovery
    all build on it. A folder with a status but an unreadable or missing config is listed, so the
    history can show it as broken instead of hiding it.
    """
    try:
        children = list(root.iterdir())
    except OSError:
        return []
    folders = [
        RunFolder(path) for path in children
        if RUN_ID_PATTERN.match(path.name) and ".." not in path.name and path.is_dir()
        and ((path / "config.yaml").exists() or (path / "status.json").exists())
    ]
    # config.yaml is written once at creation; the folder's own mtime moves with every status write.
    return sorted(folders, key=lambda f: (mtime_ns(f.config_path) or mtime_ns(f.path), f.run_id), reverse=True)


def mtime_ns(path: Path) -> int:
    """A path's modification time in ns, 0 when it cannot be read."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def elapsed_seconds(started_at: str | None, ended_at: str | None = None) -> float:
    """Seconds from an ISO time to another (default: now); 0 when either cannot be read."""
    if not started_at:
        return 0.0
    try:
        end = datetime.fromisoformat(ended_at).timestamp() if ended_at else time.time()
        return max(0.0, end - datetime.fromisoformat(started_at).timestamp())
    except (TypeError, ValueError):
        return 0.0
