"""core.plan.estimate: durations from the data's real rows and lengths, measured speeds, disk use."""

from __future__ import annotations

import pandas as pd
import pytest

from core import devices
from core.config import RunConfig
from core.data.preflight import data_facts
from core.data.synthetic import generate_reviews
from core.plan.estimate import (
    CHECKPOINT_BYTES_PER_S,
    PROCESS_START_S,
    DataShape,
    MeasuredSpeed,
    checkpoint_bytes,
    checkpoint_saves,
    data_shape,
    disk_bytes,
    estimate_run,
    example_pass_tokens,
    expected_steps,
    measured_speed,
    token_lengths,
)
from core.run.history import RunSummary
from core.training.batching import padded_tokens_per_row
from core.training.run_length import length_for

MINILM_PARAMS = 22_700_000


@pytest.fixture(autouse=True)
def two_core_cpu(monkeypatch):
    monkeypatch.setattr(devices, "physical_cores", lambda: 2)
    monkeypatch.setattr(devices, "pick_device", lambda wanted="auto": "cpu")


def _reviews_facts(rows: int):
    return data_facts(generate_reviews(rows, seed=0, null_fraction=0.05), "text")


def _summary(run_id: str, finished_at: str, *, status="completed", model="bundled", task="mlm", speed=None):
    return RunSummary(run_id=run_id, status=status, task=task, model=model, strategy="full", device="cpu",
                      finished_at=finished_at, speed=speed)


def test_token_lengths_count_words_and_cap_at_max_length():
    assert token_lengths([3, 0, 1], 512) == [6, 2, 3]
    assert token_lengths([1000], 128) == [128]


def test_padding_costs_little_once_batches_are_grouped_by_length():
    lengths = [10] * 500 + [40] * 500
    grouped = padded_tokens_per_row(lengths, batch_size=32)
    assert 25 <= grouped < 29  # mean 25 (random batches: ~40): grouped ones pad only at the seams
    assert padded_tokens_per_row([12] * 100, 32) == 12
    assert padded_tokens_per_row([], 32) == 0


def test_data_shape_uses_the_real_rows_of_an_uploaded_file():
    cfg = RunConfig()
    cfg.data.source, cfg.data.path = "file", "reviews.csv"
    frame = pd.DataFrame({"text": ["Nike shoes are very comfortable"] * 300})
    shape = data_shape(cfg, data_facts(frame, "text"))
    assert shape.train_rows + shape.eval_rows == 300  # not an assumed 10,000
    assert shape.eval_rows == 30
    assert 8 <= shape.padded_tokens_per_row <= 9  # five words


def test_data_shape_of_synthetic_data_follows_the_configured_rows():
    cfg = RunConfig()
    shape = data_shape(cfg, _reviews_facts(2000))
    assert shape.train_rows + shape.eval_rows == 1900  # 2,000 rows less 5% nulls
    assert 8 < shape.padded_tokens_per_row < 16


def test_three_hundred_uploaded_rows_are_estimated_in_seconds_not_minutes():
    # The case: LoRA, 2 epochs, 300 rows was estimated at "about 18 min" and took under one.
    cfg = RunConfig()
    cfg.data.source, cfg.data.path = "file", "reviews.csv"
    cfg.strategy.name = "lora"
    cfg.training.epochs = 2.0  # as the run was set (the default rule now trains small data longer)
    estimate = estimate_run(cfg, data_shape(cfg, _reviews_facts(316)), trainable=600_000, total=MINILM_PARAMS)
    assert estimate.basis == "computed"
    assert 3 < estimate.seconds < 60


def test_the_default_seed_demo_is_estimated_near_what_the_benchmark_measured():
    # bench/: the default demo trains in ~50-77 s on the 2-core CPU.
    cfg = RunConfig()
    facts = _reviews_facts(2000)
    estimate = estimate_run(cfg, data_shape(cfg, facts), MINILM_PARAMS, MINILM_PARAMS)
    assert 30 < estimate.seconds < 150
    causal = RunConfig(task="causal")
    assert estimate_run(causal, data_shape(causal, facts), MINILM_PARAMS, MINILM_PARAMS).seconds > estimate.seconds


def test_a_measured_speed_of_the_same_kind_drives_the_estimate():
    cfg = RunConfig()
    shape = DataShape(train_rows=1000, eval_rows=0, padded_tokens_per_row=10.0)
    speed = MeasuredSpeed("earlier", tokens_per_s=1000.0, overhead_s=5.0)
    estimate = estimate_run(cfg, shape, MINILM_PARAMS, MINILM_PARAMS, speed)
    steps = expected_steps(cfg, 1000)
    assert estimate.basis == "measured" and estimate.measured_run == "earlier"
    # Start hands the run to a process whose imports are done: only its steps, checkpoints and own fixed work.
    saves = checkpoint_saves(cfg, length_for(cfg, 1000), has_eval=False)
    assert saves == steps // cfg.training.save_steps == 2  # no evaluation set: every 50 steps, the last one included
    writing = saves * checkpoint_bytes(cfg, MINILM_PARAMS, MINILM_PARAMS) / CHECKPOINT_BYTES_PER_S
    assert estimate.seconds == pytest.approx(steps * 32 * 10.0 / 1000.0 + writing + 5.0)
    timed = estimate_run(cfg, shape, MINILM_PARAMS, MINILM_PARAMS, MeasuredSpeed("earlier", 1000.0, 5.0, checkpoint_s=0.5))
    assert timed.seconds == pytest.approx(steps * 32 * 10.0 / 1000.0 + saves * 0.5 + 5.0)  # as that run wrote them
    cold = estimate_run(cfg, shape, MINILM_PARAMS, MINILM_PARAMS, speed, process_ready=False)
    assert cold.seconds == pytest.approx(estimate.seconds + PROCESS_START_S)


def test_a_small_upload_is_mostly_fixed_work_and_estimated_as_the_dashboard_runs_it():
    """Issue #28: 300 rows, LoRA, 2 epochs was estimated at 15 s and took 6 s from the dashboard."""
    cfg = RunConfig()
    cfg.data.source, cfg.data.path = "file", "reviews.csv"
    cfg.strategy.name = "lora"
    cfg.training.epochs = 2.0
    shape = data_shape(cfg, _reviews_facts(316))
    computed = estimate_run(cfg, shape, trainable=600_000, total=MINILM_PARAMS)
    assert 3 <= computed.seconds <= 12
    assert estimate_run(cfg, shape, 600_000, MINILM_PARAMS, process_ready=False).seconds == \
        pytest.approx(computed.seconds + PROCESS_START_S)
    measured = estimate_run(cfg, shape, 600_000, MINILM_PARAMS, MeasuredSpeed("earlier", 2000.0, 2.5))
    assert 3 <= measured.seconds <= 12


def test_fixed_work_grows_with_the_rows_read_and_the_per_example_passes():
    cfg = RunConfig()
    cfg.training.max_steps = 10  # the same steps and evaluation rows: only the rows read differ
    small = DataShape(train_rows=1_000, eval_rows=500, padded_tokens_per_row=12.0)
    large = DataShape(train_rows=1_000_000, eval_rows=500, padded_tokens_per_row=12.0)
    gap = estimate_run(cfg, large, MINILM_PARAMS, MINILM_PARAMS).seconds - \
        estimate_run(cfg, small, MINILM_PARAMS, MINILM_PARAMS).seconds
    assert 3 < gap < 10  # reading and checking a million rows (bench_scale)
    # The base and final passes of a language model read a sample of the evaluation rows; a classifier's base pass all.
    assert example_pass_tokens(cfg, DataShape(10_000, 2_000, 12.0)) == 2 * 500 * 12.0
    assert example_pass_tokens(RunConfig(task="classification"), DataShape(10_000, 2_000, 12.0)) == 2_000 * 12.0
    prompt = RunConfig(task="sft")
    prompt.strategy.name = "prompt"
    assert example_pass_tokens(prompt, small) == 0


def test_learning_rate_auto_counts_the_range_test_steps_and_a_second_start():
    from core.training.lr_finder import planned_steps

    cfg = RunConfig()
    shape = DataShape(train_rows=1000, eval_rows=0, padded_tokens_per_row=10.0)
    speed = MeasuredSpeed("earlier", tokens_per_s=1000.0, overhead_s=5.0)
    plain = estimate_run(cfg, shape, MINILM_PARAMS, MINILM_PARAMS, speed)
    cfg.training.learning_rate = "auto"
    auto = estimate_run(cfg, shape, MINILM_PARAMS, MINILM_PARAMS, speed)
    assert auto.seconds - plain.seconds == pytest.approx(planned_steps(cfg, 1000) * 32 * 10.0 / 1000.0 + 5.0)
    computed_plain = estimate_run(RunConfig(), shape, MINILM_PARAMS, MINILM_PARAMS)
    assert estimate_run(cfg, shape, MINILM_PARAMS, MINILM_PARAMS).seconds > computed_plain.seconds


def test_measured_speed_takes_the_newest_completed_run_of_the_same_kind():
    cfg = RunConfig()
    speed = {"tokens_per_s": 900.0, "overhead_s": 7.0}
    past = [
        _summary("old", "2026-12-01T10:00:00", speed={"tokens_per_s": 500.0}),
        _summary("new", "2026-12-02T10:00:00", speed=speed),
        _summary("failed", "2026-12-03T10:00:00", status="failed", speed=speed),
        _summary("other", "2026-12-04T10:00:00", model="bert-base-uncased", speed=speed),
        _summary("no-speed", "2026-12-05T10:00:00"),
    ]
    assert measured_speed(cfg, past) == MeasuredSpeed("new", 900.0, 7.0)
    past.append(_summary("newest", "2026-12-06T10:00:00", speed={**speed, "checkpoint_s": 1.2}))
    assert measured_speed(cfg, past) == MeasuredSpeed("newest", 900.0, 7.0, 1.2)
    assert measured_speed(RunConfig(task="causal"), past) is None


def test_disk_use_keeps_only_the_final_model_after_completion():
    cfg = RunConfig()
    peak, kept = disk_bytes(cfg, MINILM_PARAMS, MINILM_PARAMS)
    assert kept == MINILM_PARAMS * 4
    assert peak > 5 * kept  # checkpoints with AdamW states while training
    cfg.training.keep_checkpoints = True
    assert disk_bytes(cfg, MINILM_PARAMS, MINILM_PARAMS)[1] > 5 * kept
    lora = RunConfig()
    lora.strategy.name = "lora"
    assert disk_bytes(lora, 600_000, MINILM_PARAMS)[1] == 600_000 * 4  # the adapter only


def test_a_run_that_keeps_its_best_model_writes_a_checkpoint_at_every_evaluation():
    cfg = RunConfig()
    cfg.training.epochs = 1.0
    length = length_for(cfg, 1675)
    assert checkpoint_saves(cfg, length, has_eval=True) == length.evaluations == 8
    cfg.training.keep_model = "last"
    cfg.training.save_steps = 500
    assert checkpoint_saves(cfg, length, has_eval=True) == 0  # keeps its last weights, no checkpoint to delete
    lora = RunConfig()
    lora.strategy.name = "lora"
    assert checkpoint_bytes(lora, 600_000, MINILM_PARAMS) == 600_000 * (4 + 8)  # the adapter and its moments
    assert checkpoint_bytes(RunConfig(), MINILM_PARAMS, MINILM_PARAMS) == MINILM_PARAMS * 12
