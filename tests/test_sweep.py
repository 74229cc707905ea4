"""The strategy shoot-out (core.plan.sweep): planning, group lifecycle, comparison numbers, the CLI."""

from __future__ import annotations

import json

import pytest

from core.__main__ import EXIT_USER_ERROR, main
from core.config import RunConfig
from core.errors import ConfigError, RunError
from core.plan.comparison import Row, compare, group_rows, pareto_front, recommend, recommendation_text
from core.plan.sweep import (
    Member,
    delete_group,
    group_path,
    group_status,
    list_groups,
    load_group,
    member_states,
    plan_group,
    resume_group,
    stop_group,
    submit_group,
)
from tests.support import FakeTrainer, wait_for


def classification_config() -> RunConfig:
    cfg = RunConfig(task="classification", name="shoot")
    cfg.data.synthetic.rows = 200
    return cfg


# ---- planning ---------------------------------------------------------------------------------

def test_plan_crosses_strategies_and_rates_with_one_seed_and_split():
    group = plan_group(classification_config(), ["full", "lora"], [1e-4, 5e-4])
    assert [(m.strategy, m.learning_rate) for m in group.members] == [
        ("full", 1e-4), ("full", 5e-4), ("lora", 1e-4), ("lora", 5e-4)]
    configs = [group.member_config(m) for m in group.members]
    assert {c.training.seed for c in configs} == {42}
    assert {c.data.validation_fraction for c in configs} == {0.1}
    assert configs[2].strategy.name == "lora" and configs[2].training.learning_rate == 1e-4
    assert configs[2].name == "shoot · lora @ 1e-04"


def test_plan_without_rates_uses_the_config_rate():
    cfg = classification_config()
    cfg.training.learning_rate = 2e-4
    group = plan_group(cfg, "full, feature-extraction")
    assert [(m.strategy, m.learning_rate) for m in group.members] == [("full", 2e-4), ("feature-extraction", 2e-4)]
    assert group.member_config(group.members[1]).name == "shoot · feature-extraction"


@pytest.mark.parametrize("rate", [None, "auto"])
def test_plan_without_rates_keeps_an_unset_or_auto_rate_per_member(rate, runs_root):
    from core.plan.sweep import Group, save_group

    cfg = classification_config()
    cfg.training.learning_rate = rate
    group = plan_group(cfg, ["full", "lora"])
    # None: each member trains at its own strategy's default; 'auto': each runs its own range test.
    assert [(m.strategy, m.learning_rate) for m in group.members] == [("full", rate), ("lora", rate)]
    assert group.member_config(group.members[1]).training.learning_rate == rate
    save_group(runs_root, group)
    again = load_group(runs_root, group.group_id)
    assert [m.learning_rate for m in again.members] == [rate, rate] and again.learning_rates == [rate]
    assert Group.from_dict(group.to_dict()).members == group.members


def test_member_labels_name_every_kind_of_rate():
    from core.plan.sweep import member_label

    assert member_label(Member("lora", 1e-4), True) == "lora @ 1e-04"
    assert member_label(Member("lora", "auto"), True) == "lora @ auto"
    assert member_label(Member("lora", None), True) == "lora @ default"
    assert member_label(Member("lora", None), False) == "lora"


@pytest.mark.parametrize("strategies, rates, needle", [
    (["full"], [], "at least two"),
    (["full", "magic"], [], "unknown strategy"),
    (["full", "lora"], [1e-4, 2e-4, 3e-4, 4e-4], "at most 3"),
    (["full", "lora"], "1e-4, fast", "not a learning rate"),
    (["full", "lora"], [2.0], "out of range"),
])
def test_plan_refuses_bad_choices(strategies, rates, needle):
    with pytest.raises(ConfigError, match="(?i)" + needle):
        plan_group(classification_config(), strategies, rates)


# ---- lifecycle --------------------------------------------------------------------------------

def test_group_queues_runs_and_completes(jobs, runs_root):
    group_id = submit_group(jobs, classification_config(), ["full", "lora", "feature-extraction"])
    group = load_group(runs_root, group_id)
    assert len(group.run_ids()) == 3
    assert wait_for(lambda: member_states(jobs, group) == ["completed"] * 3)
    assert group_status(member_states(jobs, group)) == "completed"
    assert [g.group_id for g in list_groups(runs_root)] == [group_id]
    saved = [jobs.config(run_id).strategy.name for run_id in group.run_ids()]
    assert saved == ["full", "lora", "feature-extraction"]
    # The group file is the only thing under groups/, and the runs listing does not mistake it for a run.
    assert json.loads(group_path(runs_root, group_id).read_text())["group_id"] == group_id
    assert len(jobs.list_runs()) == 3


@pytest.fixture
def held_trainer(monkeypatch):
    return FakeTrainer(hold=True)


def test_stop_resume_and_delete(runs_root, held_trainer):
    from core.service.jobs import JobManager

    jobs = JobManager(runs_root, train_fn=held_trainer, preflight_fn=lambda cfg: None)
    try:
        group_id = submit_group(jobs, classification_config(), ["full", "lora", "freeze-layers"])
        group = load_group(runs_root, group_id)
        assert held_trainer.started.wait(10)
        with pytest.raises(RunError, match="stop the group first"):
            delete_group(jobs, group_id)
        assert stop_group(jobs, group_id) == 3
        assert wait_for(lambda: not jobs.is_busy())
        assert member_states(jobs, group) == ["stopped", "cancelled", "cancelled"]
        assert group_status(member_states(jobs, group)) == "stopped"

        held_trainer.hold = False
        before = group.run_ids()
        queued = resume_group(jobs, group_id)
        assert len(queued) == 3
        assert wait_for(lambda: not jobs.is_busy())
        group = load_group(runs_root, group_id)
        first, *rest = group.run_ids()
        assert first == queued[0]  # the stopped run resumed in its own folder
        assert not set(rest) & set(before)  # the cancelled ones were submitted anew
        assert member_states(jobs, group) == ["completed"] * 3
        with pytest.raises(RunError, match="nothing to resume"):
            resume_group(jobs, group_id)

        delete_group(jobs, group_id)
        assert not group_path(runs_root, group_id).exists()
        assert jobs.list_runs() == []
    finally:
        jobs.shutdown(timeout=10)


def test_an_interrupted_submission_queues_the_missing_members(jobs, runs_root):
    from core.plan.sweep import save_group

    group = plan_group(classification_config(), ["full", "lora"])
    save_group(runs_root, group)  # as if the process died before queueing any member
    assert member_states(jobs, group) == ["missing", "missing"]
    assert len(resume_group(jobs, group.group_id)) == 2
    assert wait_for(lambda: member_states(jobs, load_group(runs_root, group.group_id)) == ["completed"] * 2)


def test_a_broken_group_file_is_a_run_error(runs_root):
    path = group_path(runs_root, "20260101-000000-x-group-1")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(RunError, match="cannot be read"):
        load_group(runs_root, "20260101-000000-x-group-1")
    assert list_groups(runs_root) == []
    with pytest.raises(RunError):
        group_path(runs_root, "../escape")


# ---- comparison numbers -----------------------------------------------------------------------

def row(label, metric, wall, trainable, status="completed", total=1000):
    return Row(run_id=label, label=label, strategy=label, learning_rate=1e-4, status=status, metric=metric,
               wall_s=wall, trainable_params=trainable, total_params=total)


def test_pareto_front_and_recommendation_on_hand_made_rows():
    rows = [
        row("full", 0.90, 100.0, 1000),
        row("lora", 0.882, 40.0, 12),
        row("freeze-layers", 0.85, 60.0, 500),       # slower and worse than lora: dominated
        row("feature-extraction", 0.70, 20.0, 2),
        row("gradual-unfreeze", None, None, None, status="failed"),
    ]
    front = pareto_front(rows, higher_is_better=True)
    assert [r.label for r in front] == ["feature-extraction", "lora", "full"]
    rec = recommend(rows, "classification")
    assert rec.pick == "lora" and rec.reference == "full"
    assert rec.quality_ratio == pytest.approx(0.98)
    assert rec.time_ratio == pytest.approx(0.4)
    assert rec.params_ratio == pytest.approx(0.012)
    assert recommendation_text(rec) == "lora reaches 98% of full's F1 in 40% of the time, training 1.2% of the parameters."
    comparison = compare(rows, "classification")
    assert comparison.front == ("feature-extraction", "lora", "full")


def test_recommendation_for_losses_and_when_the_best_is_fastest():
    rows = [row("full", 2.00, 100.0, 1000), row("lora", 2.03, 30.0, 10), row("feature-extraction", 3.0, 10.0, 1)]
    rec = recommend(rows, "mlm")
    assert rec.pick == "lora" and rec.reference == "full"
    assert recommendation_text(rec).startswith("lora gets within 1.5% of full's eval loss (2.03 against 2)")
    rows = [row("full", 0.9, 50.0, 1000), row("lora", 0.8, 60.0, 10)]
    assert recommendation_text(recommend(rows, "classification")).startswith("full gives the best F1 (0.9)")
    assert recommend([row("full", 0.9, 50.0, 1000)], "classification") is None
    assert "at least two runs" in recommendation_text(None)


def test_rows_read_the_kept_evaluation_and_the_run_figures(jobs, runs_root):
    from core.run.folder import RunFolder

    group_id = submit_group(jobs, classification_config(), ["full", "lora"])
    group = load_group(runs_root, group_id)
    assert wait_for(lambda: not jobs.is_busy())
    full, lora = group.run_ids()
    RunFolder(runs_root / full).update_status(
        elapsed_s=100.0, samples_per_s=50.0, trainable_params=1000, total_params=1000,
        final_metrics={"eval_f1": 0.9, "eval_loss": 0.3}, best={"name": "eval_f1", "step": 10, "value": 0.91})
    RunFolder(runs_root / lora).update_status(
        elapsed_s=40.0, samples_per_s=120.0, trainable_params=10, total_params=1010,
        final_metrics={"eval_f1": 0.88, "eval_loss": 0.35})
    rows = group_rows(jobs, load_group(runs_root, group_id))
    assert [(r.label, r.metric, r.eval_loss, r.wall_s) for r in rows] == [
        ("full", 0.91, 0.3, 100.0), ("lora", 0.88, 0.35, 40.0)]
    assert rows[1].samples_per_s == 120.0 and rows[1].trainable_share == pytest.approx(10 / 1010)
    assert all(r.disk_bytes for r in rows)
    assert Member("full", 1e-4).run_id is None


def test_the_table_shows_peak_memory_and_leaves_it_blank_for_older_runs():
    from core.plan.comparison import comparison_table, format_table, row_from_status
    from core.present import text

    status = {"status": "completed", "elapsed_s": 10.0, "final_metrics": {"eval_f1": 0.8, "eval_loss": 0.4}}
    new = row_from_status(Member("full", 1e-4), "full", "a", {**status, "peak_memory_bytes": 1_500_000_000},
                          task="classification")
    old = row_from_status(Member("lora", 1e-4), "lora", "b", status, task="classification")
    assert (new.peak_memory_bytes, old.peak_memory_bytes) == (1_500_000_000, None)
    records = comparison_table(compare([new, old], "classification"))
    column = text.SWEEP_COLUMNS["peak_memory"]
    assert [r[column] for r in records] == [1_500_000_000, None]
    lines = format_table(records).splitlines()
    assert column in lines[0] and "1500000000" in lines[1] and "1500000000" not in lines[2]


# ---- the CLI ----------------------------------------------------------------------------------

def test_cli_sweep_refuses_bad_flags(capsys, tmp_path):
    assert main(["sweep", "--output-dir", str(tmp_path)]) == EXIT_USER_ERROR
    assert "error: Give --strategies" in capsys.readouterr().err
    assert main(["sweep", "--strategies", "full,nope", "--output-dir", str(tmp_path)]) == EXIT_USER_ERROR
    assert "error: Unknown strategy 'nope'" in capsys.readouterr().err
    assert main(["sweep", "--resume", str(tmp_path / "x.json")]) == EXIT_USER_ERROR
    assert "is not a group file" in capsys.readouterr().err


def test_cli_sweep_on_a_tiny_model(capsys, tmp_path, tiny_bert):
    code = main([
        "sweep", "--task", "classification", "--model", tiny_bert, "--rows", "120", "--max-steps", "4",
        "--batch-size", "8", "--eval-steps", "2", "--save-steps", "2", "--strategies", "full,lora",
        "--output-dir", str(tmp_path / "group"),
    ])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Group file:" in out and "[1/2] full: completed" in out and "[2/2] lora: completed" in out
    assert "Pareto front" in out and ("reaches" in out or "gives the best" in out)
    group = list_groups(tmp_path / "group")[0]
    assert len(group.run_ids()) == 2
    for run_id in group.run_ids():
        assert json.loads((tmp_path / "group" / run_id / "status.json").read_text())["status"] == "completed"
