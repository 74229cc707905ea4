"""Engine smoke tests: real Trainer runs on tiny models, every task x strategy, stop and resume."""

from __future__ import annotations

import threading

import pytest
import torch

from core.config import RunConfig
from core.run.folder import RunFolder
from core.run.sink import RunSink
from core.training import engine, trainer

STRATEGIES = ("full", "feature-extraction", "freeze-layers", "gradual-unfreeze", "lora")


def tiny_config(model_dir: str, task: str, strategy: str = "full", **training) -> RunConfig:
    cfg = RunConfig(task=task)
    cfg.model.source = model_dir
    cfg.model.max_length = 32
    cfg.data.synthetic.rows = 160
    cfg.strategy.name = strategy
    cfg.strategy.freeze_layers = 1
    cfg.strategy.unfreeze_every_steps = 2
    cfg.training.max_steps = training.pop("max_steps", 4)
    cfg.training.batch_size = 8
    cfg.training.learning_rate = 1e-3
    cfg.training.logging_steps = 1
    cfg.training.eval_steps = training.pop("eval_steps", 2)
    cfg.training.save_steps = training.pop("save_steps", 2)
    for key, value in training.items():
        setattr(cfg.training, key, value)
    if task == "causal":
        cfg.probes.texts = ["Nike shoes are very"]
    return cfg.validate()


def run(cfg: RunConfig, root, stop_event=None, resume=False, folder=None):
    folder = folder or RunFolder.create(root, f"r-{cfg.task}-{cfg.strategy.name}", cfg)
    sink = RunSink(folder, load_existing=resume)
    status = engine.train(cfg, folder, sink, stop_event or threading.Event(), resume=resume)
    return status, folder


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("task", ["mlm", "classification", "causal"])
def test_every_task_and_strategy_trains(task, strategy, tiny_bert, tiny_gpt2, tmp_path):
    model_dir = tiny_gpt2 if task == "causal" else tiny_bert
    status, folder = run(tiny_config(model_dir, task, strategy), tmp_path)
    assert status == "completed"
    info = folder.status()
    assert info["status"] == "completed"
    assert 0 < info["trainable_params"] <= info["total_params"]
    if strategy in ("feature-extraction", "freeze-layers", "lora", "gradual-unfreeze"):
        assert info["trainable_params"] < info["total_params"]
    metrics = folder.metrics()
    assert [m["step"] for m in metrics if "loss" in m][:2] == [1, 2]
    evals = [m for m in metrics if "eval_loss" in m]
    assert evals, "no evaluation was recorded"
    if task == "classification":
        assert {"eval_accuracy", "eval_precision", "eval_recall", "eval_f1"} <= set(evals[-1])
        assert set(info["final_metrics"]) >= {"eval_accuracy", "eval_f1"}
    else:
        assert "eval_perplexity" in evals[-1]
    phases = {p["phase"] for p in folder.probes()}
    assert phases == {"base", "eval", "final"}
    assert (folder.final_path).is_dir()
    if strategy == "gradual-unfreeze":
        assert any(e.get("event") == "unfreeze" for e in metrics)


def test_classification_on_gpt2_uses_a_pad_token(tiny_gpt2, tmp_path):
    status, folder = run(tiny_config(tiny_gpt2, "classification"), tmp_path)
    assert status == "completed"
    probe = folder.probes()[0]
    assert {p["label"] for p in probe["predictions"]} == {"negative", "positive"}


class _StopAtStep(RunSink):
    """A sink that presses Stop once training reaches a step, as a user would."""

    def __init__(self, folder, stop_event, at_step, **kwargs):
        super().__init__(folder, **kwargs)
        self.stop_event, self.at_step = stop_event, at_step

    def progress(self, step, max_steps, epoch):
        super().progress(step, max_steps, epoch)
        if step >= self.at_step:
            self.stop_event.set()


def test_stop_then_resume_continues_the_same_run(tiny_bert, tmp_path):
    cfg = tiny_config(tiny_bert, "mlm", max_steps=8, save_steps=4, eval_steps=4)
    folder = RunFolder.create(tmp_path, "resumable", cfg)
    stop_event = threading.Event()
    status = engine.train(cfg, folder, _StopAtStep(folder, stop_event, 3), stop_event)
    assert status == "stopped"
    assert folder.status()["status"] == "stopped"
    checkpoint = folder.last_complete_checkpoint()
    assert checkpoint is not None and checkpoint.name == "checkpoint-3"
    steps_before = [m["step"] for m in folder.metrics() if "loss" in m]
    assert max(steps_before) == 3

    status, _ = run(cfg, tmp_path, resume=True, folder=folder)
    assert status == "completed"
    steps = [m["step"] for m in folder.metrics() if "loss" in m]
    assert steps[: len(steps_before)] == steps_before
    resumed = steps[len(steps_before):]
    assert resumed and min(resumed) > 3 and max(resumed) == 8
    assert any(m.get("event") == "resume" for m in folder.metrics())
    base_probes = [p for p in folder.probes() if p["phase"] == "base"]
    assert len(base_probes) == len(cfg.probe_texts())  # the base model is not re-scored on resume


def test_resume_without_checkpoint_is_refused(tiny_bert, tmp_path):
    from core.errors import TrainingError

    cfg = tiny_config(tiny_bert, "mlm")
    folder = RunFolder.create(tmp_path, "empty", cfg)
    with pytest.raises(TrainingError, match="no complete checkpoint"):
        engine.train(cfg, folder, RunSink(folder), threading.Event(), resume=True)


def test_nan_loss_fails_with_advice(tiny_bert, tmp_path, monkeypatch):
    """Weights turned to NaN after step 1 must end the run with advice, not train on garbage."""
    import core.models
    from core.errors import TrainingError

    cfg = tiny_config(tiny_bert, "mlm", max_steps=6)
    folder = RunFolder.create(tmp_path, "nan", cfg)
    loaded_models = []
    original = core.models.load_for_task

    def capture(*args, **kwargs):
        loaded = original(*args, **kwargs)
        loaded_models.append(loaded.model)
        return loaded

    class PoisonedSink(RunSink):
        def progress(self, step, max_steps, epoch):
            super().progress(step, max_steps, epoch)
            if step == 1:
                for parameter in loaded_models[0].parameters():
                    parameter.data.fill_(float("nan"))

    monkeypatch.setattr(core.models, "load_for_task", capture)
    with pytest.raises(TrainingError, match="learning rate"):
        engine.train(cfg, folder, PoisonedSink(folder), threading.Event())


def test_gradual_unfreezing_trains_a_block_unfrozen_mid_run_and_not_a_frozen_one(tiny_bert, tmp_path):
    """Phases of 2 steps over 4: the top block thaws at step 2 and trains; the bottom one thaws at 4, too late."""
    from pathlib import Path

    from safetensors.torch import load_file

    cfg = tiny_config(tiny_bert, "mlm", "gradual-unfreeze", max_steps=4, eval_steps=4, save_steps=4)
    cfg.training.weight_decay = 0.1  # decay would move a frozen block too, were it ever stepped
    status, folder = run(cfg.validate(), tmp_path)
    assert status == "completed"
    before = load_file(str(Path(tiny_bert) / "model.safetensors"))
    after = load_file(str(folder.final_path / "model.safetensors"))

    def changed(prefix: str) -> bool:
        names = [n for n in before if n.startswith(prefix) and n in after]
        assert names, prefix
        return any(not torch.equal(before[n], after[n]) for n in names)

    assert changed("bert.encoder.layer.1.")  # unfrozen at step 2, trained in steps 3 and 4
    assert not changed("bert.encoder.layer.0.")  # unfrozen after the last update
    assert not changed("bert.embeddings.")
    assert changed("cls.predictions.transform.")  # the head trains from the start
    unfreezes = [(e["step"], e["message"]) for e in folder.metrics() if e.get("event") == "unfreeze"]
    assert [step for step, _ in unfreezes] == [2, 4]
    assert unfreezes[0][1].startswith("Unfroze encoder block 1")


def test_preflight_refuses_missing_data_file(tmp_path):
    from core.errors import DataError

    cfg = RunConfig()
    cfg.data.source = "file"
    cfg.data.path = str(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="does not exist"):
        engine.preflight(cfg)


@pytest.mark.slow
def test_mlm_on_synthetic_reviews_raises_positive_adjectives(tmp_path):
    """The seed demo's promise: after fine-tuning, the probes predict positive adjectives."""
    from core.data.synthetic import POSITIVE_ADJECTIVES

    cfg = RunConfig(task="mlm")
    cfg.data.synthetic.rows = 1200
    cfg.training.max_steps = 30
    cfg.training.eval_steps = 30
    cfg.training.save_steps = 30
    cfg.probes.top_k = 10
    status, folder = run(cfg.validate(), tmp_path)
    assert status == "completed"
    positive = {word.lower() for word in POSITIVE_ADJECTIVES}

    def positive_mass(phase: str, text: str) -> float:
        scored = [p for p in folder.probes() if p["phase"] == phase and p["text"] == text][-1]
        return sum(p["score"] for p in scored["predictions"] if p["token"].lower() in positive)

    for text in ("Nike shoes are very [MASK]", "Nike tshirts are famous for being [MASK]"):
        before, after = positive_mass("base", text), positive_mass("final", text)
        # The base head is random: no positive adjective reaches its top 10 (mass 0). After 30 steps on
        # mixed reviews, positive and negative adjectives share the top; positives must hold real mass.
        assert after > before + 0.05, (text, before, after)


@pytest.mark.slow
def test_seed_scenario_curated_positive_set_leans_the_probes_positive(tmp_path):
    """Issue 6's scenario: keep Nike + its products + positive rows, fine-tune, probes lean positive."""
    from core.data.synthetic import NEGATIVE_ADJECTIVES, POSITIVE_ADJECTIVES

    cfg = RunConfig(task="mlm")
    cfg.data.synthetic.rows = 6000
    cfg.data.curation.signal = {
        "op": "and",
        "children": [
            {"kind": "word_list", "list": "brand:Nike"},
            {"kind": "word_list", "list": "brand_products:Nike"},
            {"kind": "sentiment", "polarity": "positive"},
        ],
    }
    cfg.training.max_steps = 30
    cfg.training.eval_steps = cfg.training.save_steps = 30
    cfg.probes.top_k = 20
    status, folder = run(cfg.validate(), tmp_path)
    assert status == "completed"
    report = folder.status()["data_report"]
    assert report["train_rows"] < 6000
    positive = {w.lower() for w in POSITIVE_ADJECTIVES}
    negative = {w.lower() for w in NEGATIVE_ADJECTIVES}
    final = [p for p in folder.probes() if p["phase"] == "final" and p["text"] == "Nike shoes are very [MASK]"][-1]
    scores = {p["token"].lower(): p["score"] for p in final["predictions"]}
    positive_mass = sum(v for k, v in scores.items() if k in positive)
    negative_mass = sum(v for k, v in scores.items() if k in negative)
    assert positive_mass > 0.2 and positive_mass > 5 * negative_mass, scores


def test_no_validation_split_trains_without_evaluation(tiny_bert, tmp_path):
    cfg = tiny_config(tiny_bert, "mlm")
    cfg.data.validation_fraction = 0.0
    status, folder = run(cfg.validate(), tmp_path)
    assert status == "completed"
    assert not any("eval_loss" in m for m in folder.metrics())
    assert {p["phase"] for p in folder.probes()} == {"base", "final"}


# ---- which model a run keeps, and what it leaves on disk -----------------------------------

def _eval_losses(folder) -> dict[int, float]:
    return {m["step"]: m["eval_loss"] for m in folder.metrics() if "eval_loss" in m}


def test_a_completed_run_keeps_the_best_evaluation_and_no_checkpoints(tiny_bert, tmp_path):
    # A learning rate this high makes the tiny model's eval loss jump about, so best != last is likely;
    # whichever it is, the headline must be the best evaluation and name its step.
    cfg = tiny_config(tiny_bert, "mlm", max_steps=8, eval_steps=2, save_steps=3, learning_rate=5e-2)
    status, folder = run(cfg, tmp_path)
    assert status == "completed"
    losses = _eval_losses(folder)
    best_step = min(losses, key=losses.get)
    info = folder.status()
    assert info["best"]["step"] == best_step and info["best"]["name"] == "eval_loss"
    assert info["final_metrics"]["eval_loss"] == pytest.approx(losses[best_step])
    assert folder.checkpoints() == []  # optimizer states are gone once the run completed
    assert (folder.final_path / "model.safetensors").exists()
    assert "Removed" in "\n".join(folder.log_tail(40))
    speed = info["speed"]
    assert speed["tokens_per_s"] > 0 and speed["overhead_s"] >= 0


def test_keep_last_and_keep_checkpoints(tiny_bert, tmp_path):
    cfg = tiny_config(tiny_bert, "mlm", max_steps=4, keep_model="last", keep_checkpoints=True)
    status, folder = run(cfg, tmp_path)
    assert status == "completed"
    info = folder.status()
    assert info.get("best") is None
    assert info["final_metrics"]["eval_loss"] == pytest.approx(_eval_losses(folder)[4])
    assert folder.checkpoints()


def test_a_run_that_keeps_its_last_weights_writes_no_checkpoint_it_would_delete(tiny_bert, tmp_path):
    cfg = tiny_config(tiny_bert, "mlm", max_steps=4, save_steps=3, keep_model="last", keep_checkpoints=False)
    status, folder = run(cfg, tmp_path)
    assert status == "completed"
    log = "\n".join(folder.log_tail(60))
    assert "Checkpoint saved at step 3." in log  # the resume point along the way stays
    assert "Checkpoint saved at step 4." not in log
    assert folder.checkpoints() == [] and (folder.final_path / "model.safetensors").exists()


@pytest.mark.parametrize(("on_cpu", "bf16", "expected"), [
    (True, True, "eager"), (True, False, "sdpa"), (False, True, "sdpa"), (False, False, "sdpa"),
])
def test_cpu_bf16_training_uses_matmul_attention(tiny_bert, on_cpu, bf16, expected):
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(tiny_bert, attn_implementation="sdpa")
    trainer.use_cpu_attention_kernel(model, on_cpu=on_cpu, bf16=bf16)
    assert model.config._attn_implementation == expected


def test_the_trainer_picks_the_attention_for_its_precision(tiny_bert, tmp_path):
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(tiny_bert, attn_implementation="sdpa")
    from core.training.run_length import length_for, with_length

    cfg = tiny_config(tiny_bert, "mlm", precision="bf16")
    # build_trainer gives TrainingArguments a config whose length is numbers; so does this direct call.
    cfg = with_length(cfg, length_for(cfg, train_rows=64), has_eval=False)
    args = trainer.training_arguments(cfg, RunFolder(tmp_path), "cpu", has_eval=False)
    assert args.bf16
    trainer.TuneboardTrainer(model=model, args=args)
    assert model.config._attn_implementation == "eager"


def test_early_stopping_ends_a_run_that_stops_improving(tiny_bert, tmp_path, monkeypatch):
    from core.training import callbacks

    # Every evaluation after the first is worse: patience 1 stops at the second evaluation.
    original = callbacks.SinkCallback.on_evaluate

    def worsening(self, args, state, control, metrics=None, **kwargs):
        metrics["eval_loss"] = float(state.global_step)
        return original(self, args, state, control, metrics=metrics, **kwargs)

    monkeypatch.setattr(callbacks.SinkCallback, "on_evaluate", worsening)
    cfg = tiny_config(tiny_bert, "mlm", max_steps=12, eval_steps=2, save_steps=2, early_stopping_patience=1)
    status, folder = run(cfg, tmp_path)
    assert status == "completed"
    assert folder.status()["step"] == 4
    assert any(m.get("event") == "early_stop" for m in folder.metrics())
    assert folder.status()["best"]["step"] == 2


def test_the_measured_speed_is_the_steps_own_and_leaves_the_evaluations_out():
    """The estimate counts evaluations apart, so the speed it reuses must not hold them too."""
    summary = {"train_samples_per_second": 10.0, "train_runtime": 100.0, "padded_tokens_per_row": 12.0,
               "evaluation_s": 15.0, "checkpoint_s": 5.0, "checkpoints": 4}
    assert engine._measured_speed(summary, 130.0) == {"tokens_per_s": 150.0, "overhead_s": 30.0, "checkpoint_s": 1.25}
    assert engine._measured_speed({**summary, "evaluation_s": 0.0, "checkpoint_s": 0.0}, 130.0)["tokens_per_s"] == 120.0
