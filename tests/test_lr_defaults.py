"""Learning-rate defaults per task, strategy and model size; 'auto' in the config and its resolution by
the engine (core.training.lr_finder.resolve_auto, lr_finder.json); the run's peak memory in status.json."""

from __future__ import annotations

import json
import threading

import pytest

from core.config import (
    DEFAULT_LEARNING_RATES,
    DEFAULTS_MEASURED_PARAMS,
    LEARNING_RATE_AUTO,
    MIN_SIZE_FACTOR,
    PROMPT_STRATEGY,
    STRATEGIES,
    TASKS,
    RunConfig,
    default_learning_rate,
    describe_learning_rate,
    resolved_learning_rate,
)
from core.errors import ConfigError, TrainingError
from core.training import lr_finder, peak_memory

# ---- the defaults table (pure) ------------------------------------------------------------------


def test_every_task_and_strategy_has_a_default():
    # Every training strategy has a rate; prompting trains nothing.
    trained = [strategy for strategy in STRATEGIES if strategy != PROMPT_STRATEGY]
    assert set(DEFAULT_LEARNING_RATES) == {(task, strategy) for task in TASKS for strategy in trained}
    assert all(1e-5 <= rate <= 3e-3 for rate in DEFAULT_LEARNING_RATES.values())


@pytest.mark.parametrize("task", TASKS)
def test_head_only_and_lora_take_higher_rates_than_full_fine_tuning(task):
    full = default_learning_rate(task, "full")
    assert default_learning_rate(task, "feature-extraction") > full
    assert default_learning_rate(task, "lora") > full


def test_large_models_take_lower_rates_down_to_a_floor():
    small = default_learning_rate("classification", "full")
    assert default_learning_rate("classification", "full", DEFAULTS_MEASURED_PARAMS) == small
    assert default_learning_rate("classification", "full", 1_000_000) == small       # smaller: never higher
    base = default_learning_rate("classification", "full", 110_000_000)              # BERT-base: 4e-05..5e-05
    assert small / 3 <= base < small
    huge = default_learning_rate("classification", "full", 70_000_000_000)
    assert huge == pytest.approx(float(f"{small * MIN_SIZE_FACTOR:.1g}"))
    assert default_learning_rate("causal", "lora", 7_000_000_000) < default_learning_rate("causal", "lora")


def test_unknown_task_or_strategy_has_no_default():
    with pytest.raises(ConfigError, match="No default learning rate"):
        default_learning_rate("translation", "full")


def test_resolved_rate_and_its_words():
    cfg = RunConfig(task="classification")
    cfg.strategy.name = "lora"
    assert cfg.training.learning_rate is None
    assert resolved_learning_rate(cfg) == default_learning_rate("classification", "lora")
    # The model's size, known once it is loaded, lowers the default as default_learning_rate says.
    assert resolved_learning_rate(cfg, 110_000_000) == default_learning_rate("classification", "lora", 110_000_000)
    cfg.training.learning_rate = 2e-5
    assert resolved_learning_rate(cfg) == resolved_learning_rate(cfg, 110_000_000) == 2e-5
    cfg.training.learning_rate = LEARNING_RATE_AUTO
    with pytest.raises(ConfigError, match="range test"):
        resolved_learning_rate(cfg)
    assert [describe_learning_rate(x) for x in (None, "auto", 5e-4)] == ["default", "auto", "0.0005"]


# ---- 'auto' and 'not set' in the config -------------------------------------------------------------


@pytest.mark.parametrize("rate", [None, "auto", 5e-4])
def test_learning_rate_round_trips_as_default_auto_or_a_number(rate, tmp_path):
    cfg = RunConfig(task="causal")
    cfg.training.learning_rate = rate
    cfg.validate().save(tmp_path / "c.yaml")
    loaded = RunConfig.load(tmp_path / "c.yaml")
    assert loaded == cfg and loaded.training.learning_rate == rate


def test_an_old_config_keeps_its_stated_rate_and_a_new_one_states_none():
    old = RunConfig.from_yaml("task: classification\ntraining:\n  learning_rate: 0.0005\n  epochs: 2.0\n")
    assert old.training.learning_rate == 5e-4
    assert RunConfig.from_yaml("training:\n  learning_rate: 5e-5\n").training.learning_rate == pytest.approx(5e-5)
    assert "learning_rate: null" in RunConfig().to_yaml()
    assert RunConfig.from_yaml("task: mlm\n").training.learning_rate is None


@pytest.mark.parametrize("value", ["fast", "Auto", "", True, [1e-4]])
def test_other_words_and_types_are_refused_naming_the_field(value):
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({"training": {"learning_rate": value}}).validate()
    assert info.value.field == "training.learning_rate"


def test_help_text_explains_default_and_auto():
    from core.config import field_help

    help_text = field_help("training.learning_rate")
    assert "Empty" in help_text and "'auto'" in help_text


# ---- resolve_auto (the engine's first step) ----------------------------------------------------------


class _Sink:
    def __init__(self):
        self.lines: list[str] = []
        self.events: list[tuple] = []

    def log(self, message):
        self.lines.append(message)

    def event(self, *args):
        self.events.append(args)


class _Folder:
    def __init__(self, path):
        self.path = path


def _fake_test(pick):
    rates = tuple(lr_finder.ramp_rate(i, 20) for i in range(20))
    losses = tuple([2.0 - i * 0.05 for i in range(14)] + [3.0, 9.0, 30.0, 90.0, 200.0, float("nan")])
    return lr_finder.RangeTest(rates, losses, tuple(lr_finder.smooth(losses)), pick, 1e-3 if pick else None,
                               20, 20, True, 2.5)


def test_resolve_auto_trains_at_the_pick_and_writes_the_curve(tmp_path, monkeypatch):
    monkeypatch.setattr(lr_finder, "find_learning_rate", lambda cfg, **kw: _fake_test(1e-4))
    cfg = RunConfig(task="classification")
    cfg.training.learning_rate = "auto"
    sink = _Sink()
    resolved = lr_finder.resolve_auto(cfg, _Folder(tmp_path), sink, threading.Event())
    assert resolved.training.learning_rate == 1e-4 and cfg.training.learning_rate == "auto"  # a copy
    saved = json.loads((tmp_path / lr_finder.RESULT_FILE).read_text())
    assert saved["used"] == 1e-4 and len(saved["losses"]) == 20 and saved["losses"][-1] is None  # NaN -> null
    assert any("using 1.0e-04" in line for line in sink.lines)
    # Resuming reads the pick back instead of testing again.
    monkeypatch.setattr(lr_finder, "find_learning_rate", lambda cfg, **kw: pytest.fail("tested again"))
    again = lr_finder.resolve_auto(cfg, _Folder(tmp_path), sink, threading.Event(), resume=True)
    assert again.training.learning_rate == 1e-4


def test_resolve_auto_without_a_pick_falls_back_to_the_default_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(lr_finder, "find_learning_rate", lambda cfg, **kw: _fake_test(None))
    cfg = RunConfig(task="mlm")
    cfg.training.learning_rate = "auto"
    sink = _Sink()
    resolved = lr_finder.resolve_auto(cfg, _Folder(tmp_path), sink, threading.Event())
    assert resolved.training.learning_rate is None  # the engine trains at the default
    assert json.loads((tmp_path / lr_finder.RESULT_FILE).read_text())["used"] is None
    assert sink.events and sink.events[0][0] == "warning" and "default" in sink.events[0][2]


def test_resolve_auto_leaves_numbers_alone_and_a_stop_ends_without_a_pick(tmp_path, monkeypatch):
    cfg = RunConfig()
    cfg.training.learning_rate = 3e-4
    assert lr_finder.resolve_auto(cfg, _Folder(tmp_path), _Sink(), threading.Event()) is cfg
    stop = threading.Event()

    def stopped(cfg, **kwargs):
        stop.set()
        raise TrainingError("stopped")

    monkeypatch.setattr(lr_finder, "find_learning_rate", stopped)
    cfg.training.learning_rate = "auto"
    assert lr_finder.resolve_auto(cfg, _Folder(tmp_path), _Sink(), stop).training.learning_rate is None


# ---- peak memory -------------------------------------------------------------------------------------


def test_peak_memory_is_the_process_peak_rss_in_bytes_and_resets_per_run():
    if not peak_memory.CLEAR_REFS.exists():
        pytest.skip("the peak RSS can only be reset on Linux")
    peak_memory.reset("cpu")
    before = peak_memory.peak_bytes("cpu")
    assert before > 10_000_000  # a Python process with numpy holds more than 10 MB
    block = bytearray(64 * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])  # touch every page so it is resident
    assert peak_memory.peak_bytes("cpu") >= before + 50 * 1024 * 1024
    del block
    peak_memory.reset("cpu")  # the next run in this process starts from what is resident now
    assert peak_memory.peak_bytes("cpu") < before + 50 * 1024 * 1024


# ---- the engine: an unset rate becomes the default; peak memory in status --------------------------------


def test_engine_trains_an_unset_rate_at_the_default_and_records_peak_memory(tiny_bert, tmp_path):
    from core.run.folder import RunFolder
    from core.run.sink import RunSink
    from core.training import engine

    cfg = RunConfig(task="classification")
    cfg.model.source = tiny_bert
    cfg.strategy.name = "lora"
    cfg.data.synthetic.rows = 120
    t = cfg.training
    t.batch_size, t.max_steps, t.eval_steps, t.save_steps, t.keep_model = 8, 3, 3, 3, "last"
    folder = RunFolder.create(tmp_path, "default-rate", cfg)
    assert engine.train(cfg, folder, RunSink(folder, load_existing=False), threading.Event()) == "completed"
    status = folder.status()
    trained_at = resolved_learning_rate(cfg, status["total_params"])  # the engine's one derivation
    assert status["learning_rate"] == trained_at
    assert status["peak_memory_bytes"] > 10_000_000
    assert f"Learning rate {trained_at:.1e}: the default for classification with lora" in folder.log_path.read_text()
    assert RunConfig.load(folder.config_path).training.learning_rate is None  # the config keeps "not set"
