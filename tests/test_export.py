"""Exports that load where users take them: transformers' pipeline() answers with the run's own label names,
fills masks, and generates (chat template and generation config included); each with a model card. The same
export function behind `python -m core export` and the Runs page, and what it refuses: one line, nothing left."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pandas as pd
import pytest

from core.__main__ import EXIT_USER_ERROR, main
from core.config import RunConfig
from core.errors import ConfigError, ModelError, RunError
from core.models.export import export_run
from core.run.folder import RunFolder
from core.run.sink import RunSink
from tests.test_engine import run, tiny_config
from tests.tiny_models import tiny_chat_llama_dir


def _sentiment_file(tmp_path):
    rows = [(f"Nike shoes number {i} are very comfortable", "positive") for i in range(40)]
    rows += [(f"Nike socks number {i} are very flimsy", "negative") for i in range(40)]
    rows += [(f"Nike caps number {i} are sold in shops", "neutral") for i in range(40)]  # three classes: a LoRA head must be rebuilt to size
    path = tmp_path / "reviews.csv"
    pd.DataFrame(rows, columns=["review", "sentiment"]).to_csv(path, index=False)
    return path


def sft_run(root: Path, model: Path, strategy: str = "lora") -> RunFolder:
    """A real, short engine run: instruction tuning of the tiny chat Llama on the synthetic reviews."""
    from core.training import engine

    cfg = RunConfig(task="sft")
    cfg.model.source, cfg.model.max_length, cfg.strategy.name = str(model), 96, strategy
    cfg.data.synthetic.rows = 24
    cfg.training.max_steps, cfg.training.batch_size, cfg.training.learning_rate = 2, 8, 5e-3
    cfg.training.eval_steps = cfg.training.save_steps = 2
    cfg.training.device, cfg.training.precision = "cpu", "fp32"
    cfg.probes.texts = ["Nike shoes are very comfortable"]
    folder = RunFolder.create(root, f"sft-{strategy}", cfg.validate())
    assert engine.train(cfg, folder, RunSink(folder), threading.Event()) == "completed"
    return folder


@pytest.fixture(scope="module")
def chat_llama(tmp_path_factory) -> Path:
    return tiny_chat_llama_dir(tmp_path_factory.mktemp("chat-llama"))


@pytest.fixture(scope="module")
def lora_sft(tmp_path_factory, chat_llama) -> RunFolder:
    return sft_run(tmp_path_factory.mktemp("sft-runs"), chat_llama)


def pipeline(task: str, folder: Path):
    import transformers

    return transformers.pipeline(task, model=str(folder), device="cpu")


# ---- loading in pipeline() -------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_a_classification_export_answers_with_its_label_names_and_has_a_model_card(tiny_bert, tmp_path, strategy):
    cfg = tiny_config(tiny_bert, "classification", strategy)
    cfg.data.source, cfg.data.path = "file", str(_sentiment_file(tmp_path))
    cfg.data.text_column, cfg.data.label_column = "review", "sentiment"
    status, folder = run(cfg, tmp_path / "runs")
    assert status == "completed"
    target = export_run(folder.path)
    config = json.loads((target / "config.json").read_text())
    assert sorted(config["id2label"].values()) == ["negative", "neutral", "positive"]
    assert set(config["label2id"]) == {"negative", "neutral", "positive"}
    answers = pipeline("text-classification", target)(["Nike shoes number 3 are very comfortable", "Nike caps"])
    assert {answer["label"] for answer in answers} <= {"negative", "neutral", "positive"}
    card = (target / "README.md").read_text()
    for expected in (tiny_bert, "classification", strategy, "reviews.csv", 'pipeline("text-classification"',
                     "| f1 |", "`negative`", "Learning rate", "| Steps trained | 4 |", "## Intended use",
                     "| Base model licence | see the base model's card |"):
        assert expected in card, expected
    before_after = card.split("## Before and after fine-tuning")[1].split("##")[0]
    assert "| accuracy (" in before_after, card
    assert (target / "config.yaml").exists()


def test_a_masked_lm_export_fills_masks(tiny_bert, tmp_path):
    status, folder = run(tiny_config(tiny_bert, "mlm", "full"), tmp_path / "runs")
    assert status == "completed"
    target = export_run(folder.path)
    filled = pipeline("fill-mask", target)("Nike shoes are very [MASK].")
    assert len(filled) == 5 and all(answer["token_str"] for answer in filled)
    card = (target / "README.md").read_text()
    assert 'pipeline("fill-mask"' in card and "| mean example loss (" in card and "| perplexity of that loss |" in card


def test_a_causal_lora_export_is_merged_and_generates_with_its_generation_config(tiny_gpt2, tmp_path):
    status, folder = run(tiny_config(tiny_gpt2, "causal", "lora"), tmp_path / "runs")
    assert status == "completed"
    target = export_run(folder.path)
    assert (target / "model.safetensors").exists() and not (target / "adapter_config.json").exists()
    generation = json.loads((target / "generation_config.json").read_text())
    tokenizer = json.loads((target / "tokenizer_config.json").read_text())
    assert generation["eos_token_id"] == generation["pad_token_id"] or tokenizer.get("pad_token")
    text = pipeline("text-generation", target)("Nike shoes are very", max_new_tokens=4, do_sample=False)
    assert text[0]["generated_text"].startswith("Nike shoes are very")


def test_an_sft_export_chats_through_its_template_and_stops_at_the_end_of_turn(lora_sft, tmp_path):
    target = export_run(lora_sft.path, tmp_path / "sft-export")
    assert "<|im_start|>" in (target / "chat_template.jinja").read_text()
    generation = json.loads((target / "generation_config.json").read_text())
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(target)
    assert generation["eos_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    chat = [{"role": "user", "content": "Classify the text into one of: negative, positive. Text: Nike shoes are great"}]
    answer = pipeline("text-generation", target)(chat, max_new_tokens=4, do_sample=False)
    assert answer[0]["generated_text"][-1]["role"] == "assistant"
    card = (target / "README.md").read_text()
    assert "| answer exact match |" in card and '"role": "user"' in card and "chat template" in card


def test_an_adapter_export_card_loads_it_through_peft(tiny_gpt2, tmp_path):
    status, folder = run(tiny_config(tiny_gpt2, "causal", "lora"), tmp_path / "runs")
    assert status == "completed"
    target = export_run(folder.path, merge=False)
    assert (target / "adapter_config.json").exists() and not (target / "model.safetensors").exists()
    card = (target / "README.md").read_text()
    assert "AutoPeftModelForCausalLM.from_pretrained" in card
    assert "perplexity" in card


def test_the_bundled_base_models_licence_comes_from_the_catalogue():
    from core.models.export import base_model_facts

    assert base_model_facts("bundled:smollm2-135m")["licence"] == "Apache-2.0"
    assert base_model_facts("some-org/unknown-model")["licence"] == "see the base model's card"


# ---- the command -----------------------------------------------------------------------------------

def export_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["export", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def leftovers(parent: Path) -> list[str]:
    """Temporary export folders left beside the target (there must be none)."""
    return [path.name for path in parent.iterdir() if ".tmp-" in path.name or ".old-" in path.name]


def test_the_command_exports_a_run_by_id_and_the_adapter_on_request(lora_sft, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TUNEBOARD_RUNS", str(lora_sft.path.parent))
    code, out, err = export_cli(capsys, lora_sft.run_id, str(tmp_path / "merged"))
    assert code == 0, err
    assert "model.safetensors" in out and "README.md" in out and "generation_config.json" in out
    code, out, err = export_cli(capsys, str(lora_sft.path), str(tmp_path / "adapter"), "--adapter")
    assert code == 0, err
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    assert not leftovers(tmp_path)


def test_an_empty_target_folder_is_used(lora_sft, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = export_cli(capsys, str(lora_sft.path), str(tmp_path / "empty"), "--adapter")
    assert code == 0, err
    assert (tmp_path / "empty" / "adapter_config.json").exists()


@pytest.mark.parametrize("case", ["not-a-run", "no-model", "adapter-of-full", "quantized-safetensors", "gguf-adapter",
                                  "non-empty", "a-file", "under-a-file"])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, lora_sft, tmp_path, capsys):
    target = tmp_path / "out" / "export"
    run_path, flags = lora_sft.path, []
    if case == "not-a-run":
        run_path = tmp_path
    elif case == "no-model":
        run_path = RunFolder.create(tmp_path / "runs", "unfinished", RunConfig(task="sft")).path
    elif case == "adapter-of-full":
        run_path = tmp_path / "full-run"
        RunFolder.create(tmp_path, "full-run", RunConfig(task="causal"))
        (run_path / "final").mkdir()
        (run_path / "final" / "config.json").write_text("{}")
        flags = ["--adapter"]
    elif case == "quantized-safetensors":
        flags = ["--quantization", "q8_0"]
    elif case == "gguf-adapter":
        flags = ["--format", "gguf", "--adapter"]
    elif case == "non-empty":
        target.mkdir(parents=True)
        (target / "keep.txt").write_text("mine")
    elif case == "a-file":
        target.parent.mkdir(parents=True)
        target.write_text("a file")
    elif case == "under-a-file":  # a folder nobody can create, even root
        target.parent.write_text("a file")
    code, out, err = export_cli(capsys, str(run_path), str(target), *flags)
    assert code == EXIT_USER_ERROR
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and not out
    if case == "non-empty":
        assert [p.name for p in target.iterdir()] == ["keep.txt"]
    elif case not in ("a-file", "under-a-file"):
        assert not target.exists()
    if target.parent.is_dir():
        assert not leftovers(target.parent)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_folder_is_named_in_the_error(lora_sft, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="Cannot write to .*locked"):
            export_run(lora_sft.path, locked / "export")
    finally:
        locked.chmod(0o700)


def test_gguf_of_a_masked_lm_or_classifier_is_refused_before_loading(tmp_path, monkeypatch):
    import core.models.export

    monkeypatch.setattr(core.models.export, "load_saved", lambda *a, **k: pytest.fail("loaded a model"))
    for task in ("mlm", "classification"):
        folder = RunFolder.create(tmp_path, f"r-{task}", RunConfig(task=task))
        (folder.final_path).mkdir()
        (folder.final_path / "config.json").write_text("{}")
        with pytest.raises(ModelError, match="GGUF is for text-generating models"):
            export_run(folder.path, tmp_path / f"out-{task}", fmt="gguf")
        assert not (tmp_path / f"out-{task}").exists()


def test_a_failure_while_writing_leaves_nothing_half_written(lora_sft, tmp_path, monkeypatch):
    import core.models.export

    def fail_midway(model, tokenizer, out, *, merge):
        (Path(out) / "model.safetensors").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(core.models.export, "export_model", fail_midway)
    with pytest.raises(RunError, match="No space left on device"):
        export_run(lora_sft.path, tmp_path / "export")
    assert not (tmp_path / "export").exists() and not leftovers(tmp_path)


def test_the_runs_page_export_is_kept_in_the_run_and_reused_until_the_model_changes(lora_sft):
    first = export_run(lora_sft.path)
    assert first == lora_sft.path / "export-merged"
    assert export_run(lora_sft.path) == first  # reused: newer than the model
    gguf_download = export_run(lora_sft.path, fmt="gguf")
    assert gguf_download == lora_sft.path / "export-gguf-f16"
    assert sorted(p.name for p in gguf_download.iterdir()) == ["Modelfile", "README.md", "config.yaml",
                                                               f"{lora_sft.run_id}.F16.gguf"]
    assert not leftovers(lora_sft.path)


def test_the_cards_example_is_a_probe_the_run_scored_not_a_fixed_sentence(tmp_path):
    from core.models.export import card_example

    cfg = RunConfig(task="classification")
    folder = RunFolder.create(tmp_path, "news-classifier", cfg)
    assert card_example(folder) == cfg.probe_texts()[0]  # nothing scored yet: the task's default
    with folder.probes_path.open("a", encoding="utf-8") as out:
        out.write(json.dumps({"step": 0, "phase": "base", "text": "Parliament votes down the housing bill",
                              "predictions": []}) + "\n")
    assert card_example(folder) == "Parliament votes down the housing bill"
