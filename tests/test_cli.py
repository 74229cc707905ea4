"""The headless CLI: flags over config, one-line errors with exit code 2, graceful SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.__main__ import EXIT_USER_ERROR, main
from core.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["train", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]


def test_missing_data_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "--dataset", str(tmp_path / "nope.csv"))
    assert code == EXIT_USER_ERROR
    assert_one_line_error(err, "does not exist")


def test_unknown_hub_model_offline_fails_fast(capsys):
    started = time.monotonic()
    code, _, err = run_cli(capsys, "--model", "someone/not-a-real-model-xyz")
    assert code == EXIT_USER_ERROR
    assert time.monotonic() - started < 15
    assert_one_line_error(err, "bundled")


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (("--batch-size", "0"), "batch_size"),
        (("--learning-rate", "-1"), "learning_rate"),
        (("--task", "translate"), "task"),
        (("--strategy", "magic"), "strategy"),
        (("--epochs", "0"), "epochs"),
    ],
)
def test_bad_numbers_and_names(capsys, flags, needle):
    code, _, err = run_cli(capsys, *flags)
    assert code == EXIT_USER_ERROR
    assert_one_line_error(err, needle)


def test_config_that_is_not_yaml(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [mlm\n  oops: : :\n")
    code, _, err = run_cli(capsys, "--config", str(bad))
    assert code == EXIT_USER_ERROR
    assert_one_line_error(err, "YAML")


def test_missing_column_and_one_class(capsys, tmp_path, tiny_bert):
    data = tmp_path / "reviews.csv"
    data.write_text("review,sentiment\n" + "Nike shoes are great,pos\nAdidas socks are bad,pos\n" * 20)
    code, _, err = run_cli(capsys, "--task", "classification", "--model", tiny_bert, "--dataset", str(data))
    assert code == EXIT_USER_ERROR
    assert_one_line_error(err, "text")  # names the missing column
    out_dir = tmp_path / "one-class-run"
    code, _, err = run_cli(
        capsys, "--task", "classification", "--model", tiny_bert, "--dataset", str(data),
        "--text-column", "review", "--label-column", "sentiment", "--output-dir", str(out_dir),
    )
    assert code == EXIT_USER_ERROR
    assert_one_line_error(err, "single class", "'pos'")
    assert not out_dir.exists()  # refused before a run folder was made, as Setup refuses it before Start


def test_too_few_rows_for_the_batch_is_refused_before_training(capsys, tmp_path, tiny_bert):
    data = tmp_path / "few.csv"
    data.write_text("text\n" + "".join(f"Nike shoes number {i} are great\n" for i in range(12)))
    code, _, err = run_cli(capsys, "--model", tiny_bert, "--dataset", str(data), "--batch-size", "32")
    assert code == EXIT_USER_ERROR
    assert_one_line_error(err, "batch size")


def test_the_rows_after_curation_and_the_plan_are_printed_before_training(capsys, tmp_path, tiny_bert, monkeypatch):
    """The issue's headlines: 800 rows, 518 repeats. The CLI says what Setup says before anything trains."""
    from core.training import engine

    data = tmp_path / "news.csv"
    data.write_text("text,label\n" + "".join(f"Headline {i % 282} about topic {i % 282 % 8},t{i % 282 % 8}\n"
                                             for i in range(800)))
    trained = []
    monkeypatch.setattr(engine, "train", lambda cfg, *_, **__: trained.append(cfg) or "completed")
    code, out, err = run_cli(capsys, "--task", "classification", "--model", tiny_bert, "--dataset", str(data),
                             "--output-dir", str(tmp_path / "runs" / "news"))
    assert code == 0 and trained, err
    lines = out.splitlines()
    assert lines[0] == ("Data: 800 rows → 282 rows after curation (dropped: 518 duplicates) → 254 to train on, "
                        "28 held out for evaluation.")
    assert lines[1].startswith("Plan: ") and "over 254 training rows" in lines[1], lines[1]
    assert lines[2].startswith("Time: about "), lines[2]
    assert lines[3].startswith("Run folder: ")


def test_resume_of_missing_or_completed_run(capsys, tmp_path, tiny_bert):
    code, _, err = run_cli(capsys, "--resume", str(tmp_path / "runs" / "ghost"))
    assert code == EXIT_USER_ERROR
    assert_one_line_error(err, "no run")
    out_dir = tmp_path / "runs" / "done"
    code, out, _ = run_cli(
        capsys, "--model", tiny_bert, "--max-steps", "2", "--rows", "80", "--output-dir", str(out_dir)
    )
    assert code == 0 and "completed" in out
    code, _, err = run_cli(capsys, "--resume", str(out_dir))
    assert code == EXIT_USER_ERROR
    assert_one_line_error(err, "completed")


def test_flags_override_the_config_file(capsys, tmp_path, tiny_bert):
    cfg = RunConfig()
    cfg.model.source = tiny_bert
    cfg.training.max_steps = 50
    cfg.data.synthetic.rows = 80
    path = tmp_path / "run.yaml"
    cfg.save(path)
    out_dir = tmp_path / "runs" / "flags"
    code, _, _ = run_cli(capsys, "--config", str(path), "--max-steps", "2", "--output-dir", str(out_dir))
    assert code == 0
    saved = RunConfig.load(out_dir / "config.yaml")
    assert saved.training.max_steps == 2 and saved.model.source == tiny_bert


@pytest.mark.slow
def test_sigterm_stops_gracefully_with_a_checkpoint(tmp_path, tiny_bert):
    out_dir = tmp_path / "runs" / "sigterm"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "core", "train", "--model", tiny_bert, "--max-steps", "100000",
         "--rows", "400", "--save-steps", "100000", "--eval-steps", "100000", "--output-dir", str(out_dir)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    metrics = out_dir / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (metrics.exists() and metrics.read_text().count("loss") >= 2):
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    status = json.loads((out_dir / "status.json").read_text())
    assert status["status"] == "stopped"
    assert any(p.name.startswith("checkpoint-") for p in out_dir.iterdir())


def test_a_run_killed_before_its_first_checkpoint_starts_again(capsys, tmp_path, tiny_bert):
    from core.run.folder import RunFolder
    from tests.test_engine import tiny_config

    folder = RunFolder.create(tmp_path / "runs", "early", tiny_config(tiny_bert, "mlm", max_steps=2))
    folder.update_status(status="running", started_at="2024-01-01T00:00:00+00:00", step=1)  # as kill -9 left it
    folder.metrics_path.write_text('{"step": 1, "loss": 5.0}\n')
    code, out, err = run_cli(capsys, "--resume", str(folder.path))
    assert code == 0, err
    assert "marked interrupted" in out and "starts again from step 0" in out
    assert folder.status()["status"] == "completed"
    assert [m["step"] for m in folder.metrics() if "loss" in m] == [1, 2]  # one attempt's curve
    assert list((folder.path / "previous-attempts").glob("*/metrics.jsonl"))


@pytest.mark.slow
def test_a_run_killed_hard_resumes_from_its_last_checkpoint(capsys, tmp_path, tiny_bert):
    from core.run.folder import RunFolder
    from core.run.recovery import INTERRUPTED_RUNNING, run_lock
    from tests.test_engine import tiny_config

    config = tmp_path / "tiny.yaml"
    tiny_config(tiny_bert, "mlm", max_steps=12, save_steps=2, eval_steps=6).save(config)
    out_dir = tmp_path / "runs" / "killed"
    folder = RunFolder(out_dir)
    # The CLI trains in its own process, out of monkeypatch's reach: the hook slows each of its steps
    # so the kill lands after the first checkpoint and before the last step.
    hooks = ROOT / "tests" / "child_hooks"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hooks), str(ROOT)]), "TUNEBOARD_TEST_STEP_DELAY_S": "0.3"}
    with open(tmp_path / "cli.err", "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "core", "train", "--config", str(config), "--output-dir", str(out_dir)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )
        try:
            deadline = time.monotonic() + 180
            while folder.last_complete_checkpoint() is None and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            process.kill()  # SIGKILL: no handler runs, status.json keeps saying "running"
            process.wait(30)
    checkpoint = folder.last_complete_checkpoint()
    assert checkpoint is not None, (tmp_path / "cli.err").read_text()
    assert folder.status()["status"] == "running"
    saved_at = int(checkpoint.name.removeprefix("checkpoint-"))
    assert saved_at < 12
    logged_before = len([m for m in folder.metrics() if "loss" in m])

    with run_lock(folder):  # a live owner: resume must refuse and leave the run alone
        code, _, err = run_cli(capsys, "--resume", str(out_dir))
    assert code == EXIT_USER_ERROR
    assert_one_line_error(err, "another tuneboard process")
    assert folder.status()["status"] == "running"

    code, out, err = run_cli(capsys, "--resume", str(out_dir))
    assert code == 0, err
    assert "marked interrupted" in out and "Run completed" in out
    assert f"Marked interrupted before resuming: {INTERRUPTED_RUNNING}" in folder.log_path.read_text()
    status = folder.status()
    assert status["status"] == "completed" and status["step"] == 12 and status.get("error") is None
    resumed = [m["step"] for m in folder.metrics() if "loss" in m][logged_before:]
    assert resumed[0] == saved_at + 1 and resumed[-1] == 12  # the steps continue from the checkpoint
    assert resumed == sorted(set(resumed))
