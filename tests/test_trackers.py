"""Experiment trackers (--log-to), read back by their own tools: TensorBoard's event loader, MLflow's client."""

from __future__ import annotations

import importlib.util
import os

import pytest

from core.__main__ import EXIT_USER_ERROR, _config_from_args, _parser
from core.config import RunConfig
from core.run.folder import RunFolder
from core.training.trackers import open_trackers
from tests.test_cli import assert_one_line_error, run_cli

# What the trackers must leave as they found it: MLflow's settings, and the one tensorboardX's import sets.
WATCHED_ENVIRONMENT = ("MLFLOW_", "CRC32C_SW_MODE")


def watched_environment() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name.startswith(WATCHED_ENVIRONMENT)}


def test_log_to_reaches_the_config_of_train_and_sweep(tmp_path):
    cfg = _config_from_args(_parser().parse_args(["train", "--log-to", "TensorBoard, mlflow"]))
    assert cfg.training.log_to == ["tensorboard", "mlflow"]
    saved = RunConfig()
    saved.training.log_to = ["tensorboard"]
    saved.save(tmp_path / "run.yaml")
    cfg = _config_from_args(_parser().parse_args(["train", "--config", str(tmp_path / "run.yaml"), "--log-to", "none"]))
    assert cfg.training.log_to == []
    args = _parser().parse_args(["sweep", "--strategies", "full,lora", "--log-to", "tensorboard"])
    assert _config_from_args(args).training.log_to == ["tensorboard"]


def test_an_unknown_or_missing_tracker_is_one_line(capsys, monkeypatch):
    code, _, err = run_cli(capsys, "--log-to", "tensorboard,wandb")
    assert code == EXIT_USER_ERROR
    assert_one_line_error(err, "unknown tracker 'wandb'", "tensorboard, mlflow")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "mlflow" else real_find_spec(name, *rest))
    code, _, err = run_cli(capsys, "--log-to", "mlflow")
    assert code == EXIT_USER_ERROR
    assert_one_line_error(err, "pip install mlflow")


def test_tensorboard_and_mlflow_read_back_a_classification_run(capsys, tmp_path, tiny_bert, monkeypatch):
    from mlflow import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the run folder's own store
    before = watched_environment()
    out_dir = tmp_path / "runs" / "tracked"
    code, out, err = run_cli(
        capsys, "--task", "classification", "--model", tiny_bert, "--rows", "160", "--max-length", "32",
        "--batch-size", "8", "--learning-rate", "1e-3", "--max-steps", "4", "--eval-steps", "2", "--save-steps", "2",
        "--log-to", "tensorboard,mlflow", "--output-dir", str(out_dir),
    )
    assert code == 0 and "completed" in out, err
    assert watched_environment() == before
    folder = RunFolder(out_dir)
    logged = folder.metrics()
    eval_losses = {m["step"]: m["eval_loss"] for m in logged if "eval_loss" in m}
    assert list(eval_losses) == [2, 4]

    # TensorBoard: one folder of event files, read by TensorBoard's own loader.
    assert not (out_dir / "runs").exists(), "a writer was opened in the Trainer's default folder"
    events = EventAccumulator(str(out_dir / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/learning_rate", "eval/loss", "eval/accuracy", "eval/f1"} <= scalars, scalars
    assert {e.step: e.value for e in events.Scalars("eval/loss")} == pytest.approx(eval_losses)
    assert events.Scalars("train/loss")[0].step == 1

    # MLflow: the file store in the run folder, read by MLflow's client (which needs the same opt-in to it).
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(out_dir / "mlruns").as_uri())
    [tracked] = client.search_runs(experiment_ids=[client.get_experiment_by_name("Default").experiment_id])
    assert tracked.info.run_name == folder.run_id
    assert tracked.info.status == "FINISHED"
    assert {"loss", "learning_rate", "eval_loss", "eval_accuracy", "eval_f1"} <= set(tracked.data.metrics)
    history = client.get_metric_history(tracked.info.run_id, "eval_loss")
    assert {m.step: m.value for m in history} == pytest.approx(eval_losses)


def test_a_user_tracking_uri_is_kept_and_a_failed_attempt_ends_failed(tmp_path, monkeypatch):
    from mlflow import MlflowClient
    from transformers import TrainerControl, TrainerState, TrainingArguments

    elsewhere = (tmp_path / "elsewhere").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    before = watched_environment()
    cfg = RunConfig()
    cfg.training.log_to = ["mlflow"]
    folder = RunFolder.create(tmp_path / "runs", "r-failed", cfg)
    args = TrainingArguments(output_dir=str(folder.path), run_name=folder.run_id, report_to="none")
    with pytest.raises(RuntimeError, match="the attempt failed"), open_trackers(cfg, folder) as [tracker]:
        tracker.on_train_begin(args, TrainerState(), TrainerControl())
        raise RuntimeError("the attempt failed")
    assert watched_environment() == before
    assert not (folder.path / "mlruns").exists()
    client = MlflowClient(tracking_uri=elsewhere)
    [tracked] = client.search_runs(experiment_ids=[client.get_experiment_by_name("Default").experiment_id])
    assert (tracked.info.run_name, tracked.info.status) == ("r-failed", "FAILED")


def test_only_the_main_process_opens_trackers(tmp_path):
    cfg = RunConfig()
    cfg.training.log_to = ["tensorboard", "mlflow"]
    folder = RunFolder.create(tmp_path / "runs", "r-rank1", cfg)
    with open_trackers(cfg, folder, enabled=False) as trackers:
        assert trackers == []
    assert not (folder.path / "tensorboard").exists()
