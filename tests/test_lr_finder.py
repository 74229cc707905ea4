"""The learning-rate range test (core.training.lr_finder): the pick rule on synthetic curves, a tiny model."""

from __future__ import annotations

import math

import pytest

from core.config import RunConfig
from core.training.lr_finder import (
    END_LR,
    MAX_PICK,
    MAX_STEPS,
    MIN_PICK,
    MIN_STEPS,
    START_LR,
    find_learning_rate,
    pick_learning_rate,
    planned_steps,
    ramp_rate,
)


def synthetic_curve(steps: int = 40, minimum_at: float = 1e-3) -> tuple[list[float], list[float]]:
    """A range-test-shaped loss: flat, falls towards `minimum_at`, then blows up."""
    rates = [ramp_rate(i, steps) for i in range(steps)]
    losses = []
    for rate in rates:
        distance = math.log10(rate / minimum_at)
        losses.append(2.0 - 1.0 / (1 + math.exp(-3 * (distance + 2))) + (max(0.0, distance) ** 2) * 3)
    return rates, losses


def test_ramp_runs_from_start_to_end():
    assert ramp_rate(0, 30) == pytest.approx(START_LR)
    assert ramp_rate(29, 30) == pytest.approx(END_LR)
    assert ramp_rate(15, 31) == pytest.approx(math.sqrt(START_LR * END_LR))


def test_pick_is_a_tenth_of_the_smoothed_minimum():
    rates, losses = synthetic_curve()
    pick, minimum, smoothed = pick_learning_rate(rates, losses)
    assert len(smoothed) == len(losses)
    # The smoothed minimum lags the raw one a little; it stays within one ramp step or two of 1e-3.
    assert 2e-4 <= minimum <= 5e-3
    assert pick == pytest.approx(minimum / 10)


def test_pick_is_clipped_and_absent_when_the_loss_never_falls():
    rates = [ramp_rate(i, 20) for i in range(20)]
    assert pick_learning_rate(rates, [1.0 + i for i in range(20)])[0] is None     # rises from the start
    assert pick_learning_rate(rates[:3], [3.0, 2.0, 1.0])[0] is None              # too few points
    falling = [10.0 - i * 0.4 for i in range(20)]                                 # lowest at the last, 1.0
    assert pick_learning_rate(rates, falling)[0] == MAX_PICK
    early = [1.0, 0.5] + [5.0 + i for i in range(18)]                             # lowest near 1e-7
    assert pick_learning_rate(rates, early)[0] == MIN_PICK
    assert pick_learning_rate(rates, [float("nan")] * 20)[0] is None


def test_planned_steps_cost_a_third_of_the_run():
    cfg = RunConfig()
    cfg.training.max_steps = 90
    assert planned_steps(cfg, 1000) == 30
    cfg.training.max_steps, cfg.training.epochs = 0, 2.0  # 2 epochs of 1800 rows at batch 32: 114 steps
    assert planned_steps(cfg, 1800) == 38
    cfg.training.epochs = None  # the default rule: 282 rows get its 100-step floor (core.training.run_length)
    assert planned_steps(cfg, 282) == 33
    cfg.training.max_steps = 6
    assert planned_steps(cfg, 1000) == MIN_STEPS
    cfg.training.max_steps = 10_000
    assert planned_steps(cfg, 1000) == MAX_STEPS


def test_range_test_on_a_tiny_model(tiny_bert):
    cfg = RunConfig(task="classification")
    cfg.model.source = tiny_bert
    cfg.data.synthetic.rows = 200
    cfg.training.batch_size = 8
    cfg.training.max_steps = 45
    lines: list[str] = []
    result = find_learning_rate(cfg, log=lines.append)
    assert result.planned_steps == 15
    assert 5 <= result.steps <= 15
    assert list(result.learning_rates) == sorted(result.learning_rates)
    assert result.learning_rates[0] == pytest.approx(START_LR)
    assert all(math.isfinite(x) or result.diverged for x in result.losses)
    assert result.pick is None or MIN_PICK <= result.pick <= MAX_PICK
    if result.pick is not None:
        assert result.pick == pytest.approx(max(MIN_PICK, min(MAX_PICK, result.minimum_lr / 10)))
    assert any("range test" in line for line in lines)


def test_cli_train_with_learning_rate_auto(capsys, tmp_path, tiny_bert):
    """The engine runs the range test: the config keeps 'auto', the pick and curve go to the run folder."""
    import json

    from core.__main__ import main

    code = main(["train", "--task", "classification", "--model", tiny_bert, "--rows", "200", "--batch-size", "8",
                 "--max-steps", "4", "--eval-steps", "4", "--save-steps", "4", "--learning-rate", "auto",
                 "--output-dir", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    assert code == 0, err
    run = tmp_path / "run"
    assert RunConfig.load(run / "config.yaml").training.learning_rate == "auto"
    found = json.loads((run / "lr_finder.json").read_text())
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "completed" and status["peak_memory_bytes"] > 0
    if found["used"] is not None:
        line = next(line for line in out.splitlines() if line.startswith("Learning-rate range test:") and "using" in line)
        assert float(line.rsplit("using ", 1)[1].rstrip(".")) == pytest.approx(found["used"], rel=0.05)
        assert MIN_PICK <= found["used"] <= MAX_PICK and status["learning_rate"] == found["used"]
    else:  # no pick on this tiny model: the default, said in the run log
        assert "found no rate" in (run / "run.log").read_text()
    assert len(found["learning_rates"]) == found["steps"] == len(found["losses"])


def test_cli_learning_rate_flag_refuses_words(capsys):
    from core.__main__ import EXIT_USER_ERROR, main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--learning-rate", "fast"])
    assert exit_info.value.code == EXIT_USER_ERROR
    assert "not a number or 'auto'" in capsys.readouterr().err
