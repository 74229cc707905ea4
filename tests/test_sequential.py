"""Sequential fine-tuning: a finished run's model as the base of a new run ('run:FOLDER'), on tiny models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import core.insight.probes
from core.config import ModelConfig, RunConfig
from core.errors import ModelError
from core.models import load_for_task, load_saved, resolve_model
from core.models.resolve import original_base_source
from core.present import text
from core.run.folder import RunFolder
from core.training import engine
from tests.support import (
    all_text,
    make_run,
    open_page,
    texts,
)
from tests.test_generate import tiny_causal_config, train_run


@pytest.fixture(scope="module")
def parents(tiny_gpt2, tmp_path_factory) -> dict[str, Path]:
    """Two completed causal-LM runs of the tiny GPT-2: full fine-tuning and LoRA."""
    root = tmp_path_factory.mktemp("parents")
    return {
        "full": train_run(tiny_causal_config(tiny_gpt2, "full"), root, "parent-full"),
        "lora": train_run(tiny_causal_config(tiny_gpt2, "lora"), root, "parent-lora"),
    }


def merged_parent_state(parent: Path) -> dict:
    """The parent's fine-tuned weights as a plain state dict (a LoRA adapter merged into its base)."""
    model, _ = load_saved(parent / "final", "causal")
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(model, expected: dict) -> None:
    import torch

    actual = model.state_dict()
    assert set(actual) == set(expected)
    for name, tensor in expected.items():
        assert torch.equal(actual[name], tensor), name


@pytest.mark.parametrize("kind", ["full", "lora"])
def test_child_starts_from_the_parents_weights_and_records_the_parent(kind, parents, tiny_gpt2, tmp_path):
    parent = parents[kind]
    source = f"run:{parent}"
    loaded = load_for_task(ModelConfig(source=source), "causal")
    assert_same_weights(loaded.model, merged_parent_state(parent))
    assert loaded.report["kind"] == "run"
    if kind == "lora":  # merged once, into the folder the Runs page's merged download uses
        assert (parent / "export-merged" / "config.yaml").is_file()

    child_cfg = tiny_causal_config(tiny_gpt2, "lora" if kind == "full" else "full")
    child_cfg.model.source = source
    engine.preflight(child_cfg)
    child = train_run(child_cfg, tmp_path, f"child-of-{kind}")
    assert RunConfig.load(child / "config.yaml").model.source == source  # the config keeps the run: source
    status = json.loads((child / "status.json").read_text())
    recorded = status["parent_run"]
    assert recorded["id"] == parent.name and recorded["path"] == str(parent)
    assert recorded["model_source"] == tiny_gpt2 and recorded["original_base"] == tiny_gpt2
    assert recorded["strategy"] == kind and recorded["adapter"] == (kind == "lora")
    # Step 0 of the child is the parent's end: its 'base' probes are the parent's 'final' ones.
    child_base = [p for p in RunFolder(child).probes() if p["phase"] == "base"][0]["predictions"]
    parent_final = [p for p in RunFolder(parent).probes() if p["phase"] == "final"][0]["predictions"]
    assert [p["token"] for p in child_base] == [p["token"] for p in parent_final]
    assert [p["score"] for p in child_base] == pytest.approx([p["score"] for p in parent_final], abs=1e-5)

    # Compare's "before" of the child: the parent (its own base) or the original tiny GPT-2.
    texts_ = ["Nike shoes are very"]
    original = core.insight.probes.score_before(child, texts_, 3, before="original")
    base_model = load_for_task(ModelConfig(source=tiny_gpt2), "causal")
    expected = core.insight.probes.score_probes(base_model.model, base_model.tokenizer, "causal", texts_, 3)
    assert [p["token"] for p in original[0]["predictions"]] == [p["token"] for p in expected[0]["predictions"]]
    parent_side = core.insight.probes.probe_text(child, texts_[0], 3)  # default: the parent
    assert [p["token"] for p in parent_side["base"]] == [p["token"] for p in parent_final][:3]


def test_a_run_id_under_the_runs_root_resolves(parents, isolated_runs):
    isolated_runs.mkdir(parents=True, exist_ok=True)
    shutil.copytree(parents["full"], isolated_runs / "copied-parent")
    resolved = resolve_model("run:copied-parent")
    assert resolved.kind == "run" and Path(resolved.location) == isolated_runs / "copied-parent" / "final"


def test_unusable_parents_are_refused_with_what_to_do(parents, tiny_gpt2, tmp_path, isolated_runs):
    with pytest.raises(ModelError, match="There is no run 'nope'"):
        resolve_model("run:nope")
    with pytest.raises(ModelError, match="followed by its id"):
        resolve_model("run:")

    unfinished = tmp_path / "unfinished"
    shutil.copytree(parents["full"], unfinished)
    RunFolder(unfinished).update_status(status="running")
    with pytest.raises(ModelError, match="is running, not completed.*Let it finish"):
        resolve_model(f"run:{unfinished}")

    no_model = tmp_path / "no-model"
    shutil.copytree(parents["full"], no_model)
    shutil.rmtree(no_model / "final")
    with pytest.raises(ModelError, match="has no saved model"):
        resolve_model(f"run:{no_model}")

    other_task = tiny_causal_config(tiny_gpt2)
    other_task.task = "classification"
    other_task.model.source = f"run:{parents['full']}"
    with pytest.raises(ModelError, match="causal LM model, so a classification run cannot continue"):
        engine.preflight(other_task)
    with pytest.raises(ModelError, match="Set the task to causal LM"):
        load_for_task(other_task.model, "classification")


def test_cli_train_refuses_an_unfinished_parent_before_creating_a_folder(parents, tmp_path, capsys):
    from core.__main__ import main

    unfinished = tmp_path / "unfinished"
    shutil.copytree(parents["full"], unfinished)
    RunFolder(unfinished).update_status(status="stopped")
    out = tmp_path / "child"
    code = main(["train", "--task", "causal", "--model", f"run:{unfinished}", "--output-dir", str(out)])
    assert code == 2 and not out.exists()
    assert "is stopped, not completed" in capsys.readouterr().err


def test_original_base_follows_a_chain_of_runs(tmp_path, tiny_gpt2):
    previous = tiny_gpt2
    for name in ("a", "b", "c"):
        cfg = RunConfig(task="causal")
        cfg.model.source = previous
        RunFolder.create(tmp_path, name, cfg)
        previous = f"run:{tmp_path / name}"
    assert original_base_source(previous) == tiny_gpt2
    assert original_base_source("bundled") == "bundled"


# ---- pages -----------------------------------------------------------------------------------

def child_run(root: Path, parent_id: str = "20260101-000000-mlm-parent") -> str:
    """A canned completed run whose status.json says it continued `parent_id`."""
    run_id = make_run(root, final_model=True)
    RunFolder(root / run_id).update_status(parent_run={
        "id": parent_id, "path": str(root / parent_id), "task": "mlm", "strategy": "full",
        "model_source": "bundled", "original_base": "bundled", "adapter": False,
    })
    return run_id


def test_compare_before_selector_for_a_run_with_a_parent(jobs, runs_root, monkeypatch):
    from tests.support import BASE_MLM

    calls = []

    def fake_score_before(run_path, probe_texts, top_k, *, before="original"):
        calls.append((run_path.name, tuple(probe_texts), before))
        return [{"text": t, "predictions": [{"token": "pristine", "score": 0.5}]} for t in probe_texts]

    monkeypatch.setattr(core.insight.probes, "score_before", fake_score_before)
    plain = make_run(runs_root)
    at = open_page("pages/compare.py", {"run": plain})
    assert not at.radio and text.COLUMN_BASE in texts(at.caption)

    run_id = child_run(runs_root)
    at = open_page("pages/compare.py", {"run": run_id})
    assert not at.exception, [e.value for e in at.exception]
    radio = at.radio(key="tb_compare_before")
    assert radio.value == "parent"  # the default "before" is the run it continued
    assert text.COLUMN_BEFORE_PARENT.format(run="20260101-000000-mlm-parent") in texts(at.caption)
    assert "pristine" not in all_text(at) and not calls
    assert BASE_MLM  # the parent's scores come from probes.jsonl, as for any run

    radio.set_value("original").run()
    assert not at.exception, [e.value for e in at.exception]
    assert text.COLUMN_BEFORE_ORIGINAL.format(model="bundled") in texts(at.caption)
    assert len(calls) == 1 and calls[0][0] == run_id and calls[0][2] == "original"
    at.run()  # scored once per run and probe set, not on every rerun
    assert len(calls) == 1


def test_compare_free_probe_passes_the_chosen_before(jobs, runs_root, monkeypatch):
    from tests.support import BASE_MLM, TUNED_MLM

    calls = []

    def fake_probe_text(run_path, sentence, top_k, before="parent"):
        calls.append(before)
        return {"base": BASE_MLM, "tuned": TUNED_MLM}

    monkeypatch.setattr(core.insight.probes, "probe_text", fake_probe_text)
    monkeypatch.setattr(core.insight.probes, "score_before", lambda *a, **k: [])
    run_id = child_run(runs_root)
    at = open_page("pages/compare.py", {"run": run_id})
    at.radio(key="tb_compare_before").set_value("original").run()
    at.text_input(key="tb_compare_free_text").set_value("Nike socks are [MASK]")
    at.button(key="tb_compare_free_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert calls == ["original"]


def test_runs_fine_tune_further_opens_setup_with_the_run_as_model(jobs, runs_root):
    from ui.state import CONFIG_KEY

    failed = make_run(runs_root, status="failed", error="Out of memory.", final_model=True)
    at = open_page("pages/runs.py", {"run": failed})
    assert at.button(key="tb_runs_further").disabled
    no_model = make_run(runs_root)
    at = open_page("pages/runs.py", {"run": no_model})
    assert at.button(key="tb_runs_further").disabled

    run_id = make_run(runs_root, name="first pass", task="classification", strategy="lora", final_model=True)
    at = open_page("pages/runs.py", {"run": run_id})
    further = at.button(key="tb_runs_further")
    assert not further.disabled
    further.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == text.SETUP_TITLE
    cfg = at.session_state[CONFIG_KEY]
    assert cfg.model.source == f"run:{run_id}"
    assert cfg.task == "classification" and cfg.strategy.name == "lora"
    assert cfg.name == text.FINE_TUNE_FURTHER_NAME.format(name="first pass")
