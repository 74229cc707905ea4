"""The same config under `accelerate launch` with two CPU processes (DDP over gloo)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import RunConfig
from core.run.folder import read_jsonl

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes(tmp_path, tiny_bert):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate, "accelerate is a pinned requirement"
    cfg = RunConfig()
    cfg.model.source = tiny_bert
    cfg.model.max_length = 32
    cfg.data.synthetic.rows = 300
    cfg.training.max_steps = 6
    cfg.training.batch_size = 8
    cfg.training.eval_steps = 3
    cfg.training.save_steps = 3
    cfg.training.logging_steps = 1
    config_path = tmp_path / "run.yaml"
    cfg.save(config_path)
    run_dir = tmp_path / "runs" / "ddp"
    result = subprocess.run(
        [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no",
         "-m", "core", "train", "--config", str(config_path), "--output-dir", str(run_dir)],
        cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "completed"
    assert status["world_size"] == 2
    train_steps = [m["step"] for m in read_jsonl(run_dir / "metrics.jsonl") if "loss" in m]
    # accelerate's torchrun launcher (--multi_gpu) falls back to gloo on a machine without GPUs.
    # Only the main process writes: each step appears once, not once per rank.
    assert train_steps == sorted(set(train_steps)) and max(train_steps) == 6
    assert (run_dir / "final").is_dir()
    # Losses are averaged across ranks, not summed: the untrained tiny BERT starts near ln(vocab).
    first_loss = next(m["loss"] for m in read_jsonl(run_dir / "metrics.jsonl") if "loss" in m)
    assert first_loss < 7.0
