"""Experiment trackers (training.log_to): transformers' own TensorBoard and MLflow callbacks, aimed at the run folder.

    tensorboard   event files in runs/<id>/tensorboard/, written with tensorboardX (a runtime requirement)
    mlflow        a run in $MLFLOW_TRACKING_URI when the user set one, else in the file store runs/<id>/mlruns/

`open_trackers` keeps them open for a whole attempt and closes them on the way out. The callbacks
themselves would close at the Trainer's on_train_end, before the evaluation the engine may still run
after training: TensorBoard would then reopen a writer elsewhere and MLflow would log that evaluation
into a new, never-ended run. Closing here also lets a failed attempt end its MLflow run FAILED.

Whatever the trackers need in os.environ is set for the attempt only and put back afterwards, so a
later run in the same process (a test, an OOM retry) starts from the user's environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from transformers.integrations import MLflowCallback, TensorBoardCallback

from core.config import RunConfig
from core.run.folder import RunFolder

TENSORBOARD_DIR = "tensorboard"
MLFLOW_DIR = "mlruns"


@contextmanager
def open_trackers(cfg: RunConfig, folder: RunFolder, *, enabled: bool = True) -> Iterator[list[Any]]:
    """The Trainer callbacks for cfg.training.log_to (none unless enabled: only rank 0 reports), closed on exit."""
    wanted = cfg.training.log_to if enabled else []
    with _environment(_mlflow_environment(folder) if "mlflow" in wanted else {}):
        trackers: list[Any] = []
        failed = True
        try:
            if "tensorboard" in wanted:
                trackers.append(_FolderTensorBoard(folder.path / TENSORBOARD_DIR))
            if "mlflow" in wanted:
                trackers.append(_FolderMLflow())
            yield trackers
            failed = False
        finally:
            for tracker in trackers:
                tracker.close(failed=failed)


class _FolderTensorBoard(TensorBoardCallback):
    """transformers' TensorBoard callback writing into one folder, open until `close`."""

    def __init__(self, log_dir: Path):
        super().__init__(tb_writer=_tensorboardx_writer(log_dir))
        # Where the callback would reopen a writer (it does after on_train_end): the same folder,
        # not the Trainer's output_dir/runs/<date>.
        self.logging_dir = str(log_dir)

    def on_train_end(self, args, state, control, **kwargs):
        if self.tb_writer is not None:
            self.tb_writer.flush()  # `close` ends it, after any evaluation past training

    def close(self, *, failed: bool) -> None:
        """Write out and close the event file."""
        if self.tb_writer is not None:
            self.tb_writer.close()
            self.tb_writer = None


class _FolderMLflow(MLflowCallback):
    """transformers' MLflow callback, whose MLflow run stays open until `close`."""

    def on_train_end(self, args, state, control, **kwargs):
        pass  # `close` ends the MLflow run, after any evaluation past training

    def close(self, *, failed: bool) -> None:
        """End the MLflow run this callback started (not one the caller had open): FINISHED, or FAILED."""
        # _auto_end_run is the parent's own record of whether setup() started the run.
        if self._auto_end_run and self._ml_flow.active_run() is not None:
            self._ml_flow.end_run("FAILED" if failed else "FINISHED")


def _tensorboardx_writer(log_dir: Path) -> Any:
    """A tensorboardX SummaryWriter; its import no longer leaves CRC32C_SW_MODE behind in os.environ."""
    had_mode = "CRC32C_SW_MODE" in os.environ
    # tensorboardX sets CRC32C_SW_MODE=auto on its first import, for the optional crc32c package it
    # then imports (and which reads it then); left set, it would reach every later child process.
    from tensorboardX import SummaryWriter

    if not had_mode:
        os.environ.pop("CRC32C_SW_MODE", None)
    return SummaryWriter(log_dir=str(log_dir))


def _mlflow_environment(folder: RunFolder) -> dict[str, str]:
    """What MLflow reads from os.environ for this run; a value the user set stays theirs."""
    return {
        # The run folder's own store, unless the user pointed MLflow elsewhere.
        "MLFLOW_TRACKING_URI": (folder.path / MLFLOW_DIR).as_uri(),
        # MLflow 3 refuses a file store (now in "maintenance mode") unless this opts in; it needs no
        # database package, which mlflow-skinny leaves out, and the MLflow UI reads it the same way.
        "MLFLOW_ALLOW_FILE_STORE": "true",
        # Read once, when mlflow is first imported (by MLflowCallback): runs log to files here and
        # reach no server, so neither does MLflow's usage telemetry.
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


@contextmanager
def _environment(defaults: dict[str, str]) -> Iterator[None]:
    """os.environ with these values where the user set none, removed again on exit."""
    added = [name for name in defaults if name not in os.environ]
    for name in added:
        os.environ[name] = defaults[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
