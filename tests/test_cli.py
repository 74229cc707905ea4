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
    code, _, err = run_cli(
        capsys, "--task", "classification", "--model", tiny_bert, "--dataset", str(data),
        "--text-column", "review", "--label-column", "sentiment",
    )
    assert code == EXIT_USER_ERROR
    assert_one_line_error(err, "class")


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
