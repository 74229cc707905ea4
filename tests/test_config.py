"""RunConfig: defaults validate, YAML round-trips, bad values name their field."""

from __future__ import annotations

import pytest

from core.config import RunConfig, field_help
from core.errors import ConfigError


def test_default_config_is_valid_and_round_trips():
    cfg = RunConfig().validate()
    again = RunConfig.from_yaml(cfg.to_yaml())
    assert again == cfg


def test_round_trip_keeps_nested_values_and_signal_tree(tmp_path):
    cfg = RunConfig(task="classification")
    cfg.strategy.name = "lora"
    cfg.strategy.lora_targets = ["query", "value"]
    cfg.training.learning_rate = 3e-4
    cfg.data.curation.signal = {"op": "not", "child": {"kind": "regex", "pattern": "^x"}}
    path = tmp_path / "run.yaml"
    cfg.save(path)
    loaded = RunConfig.load(path)
    assert loaded == cfg
    assert loaded.training.learning_rate == pytest.approx(3e-4)


@pytest.mark.parametrize(
    ("dotted", "value", "field"),
    [
        ("task", "translation", "task"),
        ("strategy.name", "magic", "strategy.name"),
        ("training.batch_size", 0, "training.batch_size"),
        ("training.batch_size", -4, "training.batch_size"),
        ("training.learning_rate", 0.0, "training.learning_rate"),
        ("training.learning_rate", float("nan"), "training.learning_rate"),
        ("training.eval_steps", 0, "training.eval_steps"),
        ("training.warmup_ratio", 1.5, "training.warmup_ratio"),
        ("model.max_length", 0, "model.max_length"),
        ("data.validation_fraction", 0.95, "data.validation_fraction"),
    ],
)
def test_bad_values_raise_with_their_field(dotted, value, field):
    cfg = RunConfig()
    target = cfg
    *parents, leaf = dotted.split(".")
    for part in parents:
        target = getattr(target, part)
    setattr(target, leaf, value)
    with pytest.raises(ConfigError) as info:
        cfg.validate()
    assert info.value.field == field


def test_file_source_needs_a_path():
    cfg = RunConfig()
    cfg.data.source = "file"
    with pytest.raises(ConfigError, match="needs a file"):
        cfg.validate()


def test_mlm_probe_without_mask_is_refused():
    cfg = RunConfig()
    cfg.probes.texts = ["no mask here"]
    with pytest.raises(ConfigError, match="MASK"):
        cfg.validate()


def test_problems_lists_every_invalid_value_in_form_order():
    cfg = RunConfig(task="mlm")
    cfg.data.source = "file"
    cfg.training.batch_size = 0
    cfg.probes.texts = ["Nike shoes are very comfortable"]
    problems = cfg.problems()
    assert [p.field for p in problems] == ["training.batch_size", "data.path", "probes.texts"]
    # validate() raises the first of them; a valid config has none.
    with pytest.raises(ConfigError) as raised:
        cfg.validate()
    assert raised.value.field == "training.batch_size"
    assert RunConfig().problems() == []


def test_yaml_that_is_not_yaml():
    with pytest.raises(ConfigError, match="not valid YAML"):
        RunConfig.from_yaml("task: [mlm\n  bad: : :")


def test_yaml_that_is_a_list():
    with pytest.raises(ConfigError, match="mapping"):
        RunConfig.from_yaml("- a\n- b\n")


def test_unknown_keys_are_named():
    with pytest.raises(ConfigError, match="training.lerning_rate"):
        RunConfig.from_dict({"training": {"lerning_rate": 1e-4}})


def test_newer_version_with_unknown_keys_says_upgrade():
    with pytest.raises(ConfigError, match="newer Tuneboard"):
        RunConfig.from_dict({"version": 99, "model": {"quantization": "4bit"}})


def test_wrong_types_are_refused_and_scientific_strings_parsed():
    with pytest.raises(ConfigError, match="whole number"):
        RunConfig.from_dict({"training": {"batch_size": "lots"}})
    cfg = RunConfig.from_dict({"training": {"learning_rate": "5e-5"}})
    assert cfg.training.learning_rate == pytest.approx(5e-5)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        RunConfig.load(tmp_path / "nope.yaml")


def test_field_help_reads_metadata():
    assert "learning rate" in field_help("training.learning_rate").lower()
    assert field_help("data.synthetic.rows")


def test_default_probes_follow_the_task():
    assert all("[MASK]" in t for t in RunConfig(task="mlm").probe_texts())
    assert RunConfig(task="causal").probe_texts()
    assert RunConfig(task="classification").probe_texts()
