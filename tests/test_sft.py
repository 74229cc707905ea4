"""Instruction tuning (task sft) through the headless path: config, preflight, collated batches, engine, CLI, Setup.

The model is a tiny Llama built here from a LlamaConfig, with a small byte-level BPE tokenizer and a
ChatML chat template like SmolLM2's (its default system turn included), so an engine run takes seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import DEFAULT_PROMPT_TEMPLATE, RunConfig, default_learning_rate
from core.errors import ConfigError, DataError
from tests.tiny_models import chat_tokenizer

CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' "
    "+ message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CATEGORIES = ["sports", "politics", "science", "money"]
ROOT = Path(__file__).resolve().parents[1]


def chat_rows(n: int = 24) -> list[dict]:
    rows = []
    for i in range(n):
        label = CATEGORIES[i % len(CATEGORIES)]
        rows.append({"messages": [
            {"role": "user", "content": f"Which category is headline {i} about {label} news?"},
            {"role": "assistant", "content": label},
        ]})
    return rows


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def _build_tiny_llama(out: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    corpus = [m["content"] for r in chat_rows() for m in r["messages"]] + [
        "You are a helpful assistant.", "system user assistant", "Classify the text into one of", "negative positive",
        "Nike shoes are very comfortable. Is this review positive or negative?"]
    tokenizer = chat_tokenizer(corpus, vocab_size=500, chat_template=CHATML, model_max_length=256)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return _build_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "tiny-llama")


def sft_config(model: Path, data: Path, **training) -> RunConfig:
    cfg = RunConfig(task="sft")
    cfg.model.source, cfg.model.max_length = str(model), 48
    cfg.data.source, cfg.data.path = "file", str(data)
    cfg.strategy.name = "lora"
    cfg.training.batch_size, cfg.training.max_steps = 4, 4
    cfg.training.eval_steps = cfg.training.save_steps = cfg.training.logging_steps = 2
    cfg.training.device, cfg.training.precision = "cpu", "fp32"
    for key, value in training.items():
        setattr(cfg.training, key, value)
    return cfg


# ---- config ----------------------------------------------------------------------------------

def test_sft_config_round_trips_through_yaml_with_its_fields():
    cfg = RunConfig(task="sft")
    cfg.data.prompt_column, cfg.data.response_column = "question", "answer"
    cfg.data.prompt_template, cfg.data.train_on_prompt = "Label {text} as one of {labels}", True
    again = RunConfig.from_yaml(cfg.to_yaml())
    assert again == cfg.validate()
    assert RunConfig(task="sft").data.prompt_template == DEFAULT_PROMPT_TEMPLATE
    assert default_learning_rate("sft", "lora") == default_learning_rate("causal", "lora")


@pytest.mark.parametrize(("change", "field"), [
    ({"prompt_column": "q"}, "data.response_column"),
    ({"response_column": "a"}, "data.prompt_column"),
    ({"prompt_column": "q", "response_column": "q"}, "data.response_column"),
    ({"prompt_template": "no placeholder"}, "data.prompt_template"),
    ({"prompt_template": "{text} {oops}"}, "data.prompt_template"),
])
def test_bad_sft_fields_name_their_field(change, field):
    cfg = RunConfig(task="sft")
    for key, value in change.items():
        setattr(cfg.data, key, value)
    with pytest.raises(ConfigError) as err:
        cfg.validate()
    assert err.value.field == field


# ---- preflight -------------------------------------------------------------------------------

@pytest.mark.parametrize(("bad", "where"), [
    ('{"messages": [{"role": "user", "content": "hi"}', "line 3, field 'messages'"),  # torn JSON is read as a bad row or file
    ({"messages": [{"role": "user", "content": "hi"}]}, "line 3, field 'messages'"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " "}]},
     "line 3, field 'messages[1].content'"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}]},
     "line 3, field 'messages[1].role'"),
    ({"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "x"}]},
     "line 3, field 'messages[0].content'"),
])
def test_preflight_refuses_a_bad_chat_with_its_line_and_field(tmp_path, tiny_llama, bad, where):
    from core.training.engine import preflight

    rows = chat_rows(4)
    path = write_jsonl(tmp_path / "chats.jsonl", rows[:2] + [bad] + rows[2:])
    cfg = sft_config(tiny_llama, path)
    with pytest.raises(DataError) as err:
        preflight(cfg)
    message = str(err.value)
    if isinstance(bad, str):
        assert "line 3" in message and "chats.jsonl" in message
    else:
        assert f"chats.jsonl, {where}" in message


def test_preflight_refuses_pairs_with_a_null_completion_and_unknown_fields(tmp_path, tiny_llama):
    from core.training.engine import preflight

    pairs = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(5)] + [{"prompt": "q", "completion": None}]
    cfg = sft_config(tiny_llama, write_jsonl(tmp_path / "pairs.jsonl", pairs))
    with pytest.raises(DataError, match=r"pairs.jsonl, line 6, field 'completion'"):
        preflight(cfg)
    cfg = sft_config(tiny_llama, write_jsonl(tmp_path / "other.jsonl", [{"q": f"a{i}", "z": f"b{i}"} for i in range(5)]))
    with pytest.raises(DataError, match="No prompt and answer fields were recognised") as err:
        preflight(cfg)
    assert err.value.field == "data.prompt_column"
    cfg.data.prompt_column, cfg.data.response_column = "q", "z"
    cfg.training.batch_size = 2
    preflight(cfg)  # mapped, it passes


def test_preflight_takes_labelled_texts_and_the_synthetic_reviews():
    from core.data.preflight import check_data

    facts = check_data(RunConfig(task="sft"))
    assert facts is not None and facts.usable > 1000


# ---- collated batches ------------------------------------------------------------------------

def test_collated_labels_are_ignored_on_every_prompt_token_and_the_padding(tmp_path, tiny_llama):
    from core.data.instructions import IGNORE_INDEX
    from core.data.prepare import ConversationEncoder
    from core.models import load_tokenizer
    from core.training.trainer import collator

    cfg = sft_config(tiny_llama, tmp_path / "unused.jsonl")
    tokenizer, _ = load_tokenizer(cfg.model)
    rows = chat_rows(3)
    rows[1]["messages"][0]["content"] += " and a much longer question to force padding in the batch"
    encoder = ConversationEncoder(tokenizer, 200)
    encoded = encoder({"text": [json.dumps(r["messages"]) for r in rows]})
    features = [{k: encoded[k][i] for k in encoded} for i in range(3)]
    batch = collator(cfg, tokenizer)(features)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["labels"].shape == batch["input_ids"].shape
    for i, row in enumerate(rows):
        trained = batch["labels"][i][batch["labels"][i] != IGNORE_INDEX]
        answer = row["messages"][1]["content"]
        assert tokenizer.decode(trained) == answer + "<|im_end|>\n"  # the answer and its end of turn, nothing else
        assert (batch["labels"][i][batch["attention_mask"][i] == 0] == IGNORE_INDEX).all()


# ---- the engine ------------------------------------------------------------------------------

@pytest.mark.slow
def test_an_sft_run_on_a_tiny_llama_trains_on_chat_jsonl(tmp_path, tiny_llama):
    from core.run.folder import RunFolder
    from core.run.sink import RunSink
    from core.training import engine

    rows = chat_rows(24)
    rows[0]["messages"][0]["content"] = "a very long prompt " * 30 + rows[0]["messages"][0]["content"]
    cfg = sft_config(tiny_llama, write_jsonl(tmp_path / "chats.jsonl", rows))
    cfg.probes.texts = ["Which category is headline 1 about sports news?"]
    engine.preflight(cfg)
    folder = RunFolder.create(tmp_path / "runs", "sft", cfg)
    sink = RunSink(folder)
    import threading

    engine.train(cfg, folder, sink, threading.Event())
    status = folder.status()
    assert status["status"] == "completed", status
    assert (folder.final_path / "adapter_config.json").exists()
    metrics = [json.loads(line) for line in folder.metrics_path.read_text().splitlines()]
    assert any("eval_loss" in m for m in metrics) and any("loss" in m for m in metrics)
    log = folder.log_path.read_text()
    assert "prompt was cut from the left to fit max_length (48 tokens)" in log or \
        "prompts were cut from the left to fit max_length" in log or "No training prompt had to be cut" in log
    probes = [json.loads(line) for line in folder.probes_path.read_text().splitlines()]
    assert probes and isinstance(probes[0]["predictions"][0]["answer"], str)


@pytest.mark.slow
def test_the_cli_trains_sft_on_a_tiny_model(tmp_path, tiny_llama):
    data = write_jsonl(tmp_path / "chats.jsonl", chat_rows(16))
    out = tmp_path / "runs" / "cli-sft"
    result = subprocess.run(
        [sys.executable, "-m", "core", "train", "--task", "sft", "--dataset", str(data), "--model", str(tiny_llama),
         "--max-steps", "2", "--batch-size", "4", "--eval-steps", "2", "--save-steps", "2", "--output-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    cfg = RunConfig.load(out / "config.yaml")
    assert (cfg.task, cfg.strategy.name) == ("sft", "lora")
    assert json.loads((out / "status.json").read_text())["status"] == "completed"


def test_the_cli_refuses_bad_chat_data_with_its_line(tmp_path, tiny_llama):
    data = write_jsonl(tmp_path / "chats.jsonl", chat_rows(3) + [{"messages": [{"role": "user", "content": "hi"}]}])
    result = subprocess.run(
        [sys.executable, "-m", "core", "train", "--task", "sft", "--dataset", str(data), "--model", str(tiny_llama),
         "--batch-size", "2", "--output-dir", str(tmp_path / "runs" / "x")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "chats.jsonl, line 4, field 'messages': has no assistant turn" in result.stderr


# ---- Setup -----------------------------------------------------------------------------------

def _setup_key(path: str, *extra: str) -> str:
    return f"cfg:{path}{''.join('/' + e for e in extra)}@0"


def _setup_sft(jobs):
    from tests.support import app

    at = app().run()
    at.radio(key=_setup_key("task")).set_value("sft").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_setup_draws_with_task_sft_and_defaults_to_smollm2_with_lora(jobs):
    at = _setup_sft(jobs)
    cfg = at.session_state["tb_config"]
    assert (cfg.task, cfg.model.source, cfg.strategy.name) == ("sft", "bundled:smollm2-135m", "lora")
    # The synthetic reviews are labelled texts: the prompt template is offered.
    assert at.text_area(key=_setup_key("data.prompt_template")).value == DEFAULT_PROMPT_TEMPLATE


def test_setup_recognises_chat_jsonl_and_maps_other_columns(jobs):
    from core.present import text
    from tests.support import all_text

    at = _setup_sft(jobs)
    at.radio(key=_setup_key("data.source")).set_value("file").run()
    content = "".join(json.dumps(r) + "\n" for r in chat_rows(40)).encode()
    at.file_uploader(key=_setup_key("data.upload")).upload("chats.jsonl", content, "application/json").run()
    assert not at.exception, [e.value for e in at.exception]
    assert text.SFT_FORMAT_FOUND.split(":")[0] in all_text(at)
    assert not [s for s in at.selectbox if s.label == text.SFT_PROMPT_COLUMN]

    pairs = "".join(json.dumps({"q": f"question {i}", "a": f"answer {i}"}) + "\n" for i in range(40)).encode()
    at.file_uploader(key=_setup_key("data.upload")).upload("pairs.jsonl", pairs, "application/json").run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key=_setup_key("data.prompt_column", "q|a")).set_value("q").run()
    at.selectbox(key=_setup_key("data.response_column", "q|a")).set_value("a").run()
    assert not at.exception, [e.value for e in at.exception]
    cfg = at.session_state["tb_config"]
    assert (cfg.data.prompt_column, cfg.data.response_column) == ("q", "a")


@pytest.mark.parametrize("page", ["pages/compare.py", "pages/evaluate.py", "pages/runs.py", "pages/train.py"])
def test_pages_draw_an_sft_run_with_its_probe_answers(jobs, runs_root, page):
    from core.run.folder import RunFolder
    from core.run.sink import RunSink
    from tests.support import make_run, open_page

    run_id = make_run(runs_root, task="sft", strategy="lora", probes=False)
    sink = RunSink(RunFolder.open(runs_root, run_id))
    for step, phase, answer in ((0, "base", "I am not sure."), (20, "eval", "positive"), (40, "final", "positive")):
        sink.probe(step, phase, "Is this review positive?", [{"answer": answer, "score": 1.0}])
    at = open_page(page, {"run": run_id})
    assert not at.exception, [e.value for e in at.exception]
    if page == "pages/compare.py":
        shown = [t.value for t in at.text]
        assert "I am not sure." in shown and "positive" in shown
