"""Prompting, the strategy without training (core.training.prompting), and every sft run's answers before and after:
config, the answer pass and its frames, a prompt run through the engine (zero- and few-shot, stopped), a trained
run's answers, the shoot-out, the CLI, and the Setup and Evaluate pages.

The model is a tiny Llama built here with a ChatML tokenizer (tests.tiny_models.chat_tokenizer); its answers are
noise, so what they score is checked on frames made by hand, and the runs check what is stored and said.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pandas as pd
import pytest

from core.config import DEFAULT_PROMPT_TEMPLATE, MAX_FEW_SHOT, RunConfig, strategies_for
from core.errors import ConfigError
from core.insight.answer_pass import (
    AnswerPlan,
    AnswerResult,
    AnswerSettings,
    answer_frame,
    answer_scores,
    plan_answers,
    prepend_examples,
    split_reference,
    template_text,
)
from core.present import text

CATEGORIES = ["money", "politics", "science", "sports"]
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def headline_chats(n: int = 40) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"Which category is headline {i} about?"},
                          {"role": "assistant", "content": CATEGORIES[i % 4]}]} for i in range(n)]


@pytest.fixture(scope="module")
def tiny_chat_model(tmp_path_factory) -> Path:
    """A tiny Llama with a ChatML template, trained on nothing: seconds per run."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.tiny_models import chat_tokenizer

    out = tmp_path_factory.mktemp("tiny-chat") / "model"
    corpus = [m["content"] for row in headline_chats() for m in row["messages"]] + ["system user assistant"]
    tokenizer = chat_tokenizer(corpus, vocab_size=400, chat_template=CHATML, model_max_length=256)
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


@pytest.fixture
def chats_file(tmp_path) -> Path:
    path = tmp_path / "headlines.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in headline_chats()), encoding="utf-8")
    return path


def prompt_config(model: Path, data: Path, *, strategy: str = "prompt", few_shot: int = 0) -> RunConfig:
    cfg = RunConfig(task="sft")
    cfg.model.source, cfg.model.max_length = str(model), 96
    cfg.data.source, cfg.data.path, cfg.data.validation_fraction = "file", str(data), 0.25
    cfg.strategy.name, cfg.strategy.few_shot = strategy, few_shot
    cfg.training.batch_size, cfg.training.max_steps = 4, 2
    cfg.training.eval_steps = cfg.training.save_steps = cfg.training.logging_steps = 2
    cfg.training.device, cfg.training.precision = "cpu", "fp32"
    return cfg


def run_engine(cfg: RunConfig, root: Path, stop: threading.Event | None = None):
    from core.run.folder import RunFolder
    from core.run.sink import RunSink
    from core.training import engine

    engine.preflight(cfg)
    folder = RunFolder.create(root, f"{cfg.strategy.name}-{cfg.strategy.few_shot}", cfg)
    return engine.train(cfg, folder, RunSink(folder), stop or threading.Event()), folder


# ---- config ----------------------------------------------------------------------------------

def test_a_prompt_config_round_trips_through_yaml():
    cfg = RunConfig(task="sft")
    cfg.strategy.name, cfg.strategy.few_shot = "prompt", 4
    assert RunConfig.from_yaml(cfg.to_yaml()) == cfg.validate()
    assert RunConfig().strategy.few_shot == 0
    assert "prompt" in strategies_for("sft") and "prompt" not in strategies_for("classification")


@pytest.mark.parametrize(("task", "change", "field", "needle"), [
    ("classification", {"name": "prompt"}, "strategy.name", "for instruction tuning only"),
    ("mlm", {"name": "prompt"}, "strategy.name", "choose task sft"),
    ("sft", {"few_shot": MAX_FEW_SHOT + 1}, "strategy.few_shot", f"from 0 to {MAX_FEW_SHOT}"),
    ("sft", {"few_shot": -1}, "strategy.few_shot", "whole number"),
    ("classification", {"few_shot": 2}, "strategy.few_shot", "instruction tuning"),
])
def test_bad_prompting_settings_name_their_field(task, change, field, needle):
    cfg = RunConfig(task=task)
    for key, value in change.items():
        setattr(cfg.strategy, key, value)
    with pytest.raises(ConfigError) as err:
        cfg.validate()
    assert err.value.field == field and needle in str(err.value)


def test_prompting_needs_evaluation_prompts():
    cfg = RunConfig(task="sft")
    cfg.strategy.name, cfg.data.validation_fraction = "prompt", 0.0
    assert [e.field for e in cfg.problems()] == ["data.validation_fraction"]


# ---- chats, plans and frames -------------------------------------------------------------------

def test_examples_go_before_the_prompt_after_its_system_turn():
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q?"},
            {"role": "assistant", "content": "A"}]
    prompt, reference = split_reference(chat)
    assert (prompt, reference) == (chat[:2], "A")
    example = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}]
    assert [m["content"] for m in prepend_examples(prompt, [example])] == ["Be brief.", "q1", "a1", "Q?"]


def test_the_templated_text_is_recovered_for_human_labels():
    message = DEFAULT_PROMPT_TEMPLATE.format(text="Nike shoes are {great}.\n\nReally.", labels="negative, positive")
    assert template_text(message, DEFAULT_PROMPT_TEMPLATE) == "Nike shoes are {great}.\n\nReally."
    assert template_text("something else", DEFAULT_PROMPT_TEMPLATE) is None


def _chat_json(question: str, answer: str) -> str:
    return json.dumps([{"role": "user", "content": question}, {"role": "assistant", "content": answer}])


def labelled_plan() -> AnswerPlan:
    texts = [_chat_json(f"Which category is headline {i} about?", CATEGORIES[i % 4]) for i in range(8)]
    return plan_answers(texts, AnswerSettings(label_pool=[c for c in CATEGORIES for _ in range(3)]))


def test_a_small_set_of_references_makes_labels_and_free_text_does_not():
    assert labelled_plan().label_names == CATEGORIES
    free = plan_answers([_chat_json(f"q{i}", f"answer number {i}") for i in range(8)], AnswerSettings())
    assert free.label_names is None
    # A reference outside the data's own label set: the answers are not labels.
    outside = plan_answers([_chat_json("q", "maybe")] * 4, AnswerSettings(label_names=["yes", "no"]))
    assert outside.label_names is None


def test_answer_frames_carry_a_classifiers_columns_and_the_run_metrics():
    plan = labelled_plan()
    answers = ["money", "The answer is Politics.", "sports", "I do not know"] * 2
    result = AnswerResult(answers, [0.9, 0.5, 0.8, 0.1] * 2, 1.5, 0)
    frame = answer_frame([f"t{i}" for i in range(8)], plan, result, [1.0] * 8)
    assert frame["predicted"].tolist()[:3] == ["money", "politics", "sports"] and frame["predicted"].isna()[3]
    assert frame["correct"].tolist()[:4] == [True, True, False, False]
    assert frame["exact_match"].tolist()[:4] == [True, False, False, False]
    scores = answer_scores(plan, result)
    assert set(scores.metrics) == {"eval_exact_match", "eval_accuracy", "eval_f1"}
    assert scores.metrics["eval_accuracy"] == 0.5 and scores.metrics["eval_exact_match"] == 0.25
    assert scores.without_label == 2


def test_analysis_reads_answers_as_a_classifier_with_no_label_counted():
    from core.insight import analysis
    from core.insight.predictions import NO_LABEL

    plan = labelled_plan()
    base = answer_frame(["x"] * 8, plan, AnswerResult(["no idea"] * 8, [0.1] * 8, 1.0, 2), None)
    tuned = answer_frame(["x"] * 8, plan, AnswerResult(CATEGORIES * 2, [0.9] * 8, 1.0, 0), None)
    base["predicted"] = base["predicted"].fillna(NO_LABEL)  # as load_predictions reads it
    labels = CATEGORIES + [NO_LABEL]
    counts, _ = analysis.confusion(base["gold"].tolist(), base["predicted"].tolist(), labels)
    assert counts[:, -1].sum() == 8  # every base answer named no label
    table = analysis.per_class_change(base, tuned, labels)
    assert table["label"].tolist() == CATEGORIES and (table["recall_change"] == 1.0).all()
    examples = analysis.example_table(base, tuned)
    assert examples["text"].tolist()[0] == "Which category is headline 0 about?"  # the input, not the preview
    assert examples["base_answer"].tolist()[0] == "no idea" and examples["tuned_answer"].tolist()[0] == "money"
    assert len(analysis.filter_examples(examples, "fixed")) == 8
    assert analysis.answer_summary(tuned, CATEGORIES) == {"exact_match": 1.0, "accuracy": 1.0, "f1": 1.0}


def test_a_stopped_answer_pass_returns_nothing_and_restores_the_model(tiny_chat_model):
    from core.insight.answer_pass import answer_pass
    from core.models import load_for_task, load_tokenizer

    cfg = prompt_config(tiny_chat_model, Path("unused"))
    loaded = load_for_task(cfg.model, "sft")
    loaded.model.train()
    plan = plan_answers([_chat_json(f"Which category is headline {i} about?", "money") for i in range(6)],
                        AnswerSettings())
    seen = []
    result = answer_pass(loaded.model, load_tokenizer(cfg.model)[0], plan, with_examples=False, batch_size=2,
                         should_stop=lambda: True, on_batch=lambda done, total: seen.append((done, total)))
    assert result is None and seen == [(2, 6)] and loaded.model.training


# ---- the engine ------------------------------------------------------------------------------

@pytest.mark.parametrize("few_shot", [0, 2])
def test_a_prompt_run_answers_without_training(tmp_path, tiny_chat_model, chats_file, few_shot):
    from core.insight.predictions import load_predictions

    cfg = prompt_config(tiny_chat_model, chats_file, few_shot=few_shot)
    status, folder = run_engine(cfg, tmp_path / "runs")
    info = folder.status()
    assert status == "completed" and info["status"] == "completed", info.get("error")
    assert set(info["final_metrics"]) == {"eval_exact_match", "eval_accuracy", "eval_f1"}
    assert info["trainable_params"] == 0 and not folder.final_path.exists()
    shots = f"{few_shot}-shot" if few_shot else "zero-shot"
    log = folder.log_path.read_text()
    assert f"Prompting: no training; {shots}; 10 eval prompts answered in " in log
    assert "; exact match 0.000 (accuracy" in log
    predictions = load_predictions(folder.path)
    assert predictions.base is None and predictions.prompted and predictions.shots("final") == few_shot
    assert predictions.label_names == CATEGORIES and predictions.has_labels
    assert len(predictions.tuned) == 10 and {"answer", "reference", "confidence"} <= set(predictions.tuned.columns)
    examples = json.loads((folder.path / "prompting.json").read_text())["examples"]
    assert len(examples) == few_shot and all(e[-1]["role"] == "assistant" for e in examples)
    phases = {json.loads(line)["phase"] for line in folder.probes_path.read_text().splitlines()}
    assert phases == {"base", "final"}
    assert any("eval_exact_match" in m for m in folder.metrics())


def test_a_prompt_run_stops_before_answering(tmp_path, tiny_chat_model, chats_file):
    stop = threading.Event()
    stop.set()
    status, folder = run_engine(prompt_config(tiny_chat_model, chats_file), tmp_path / "runs", stop)
    assert status == "stopped" and folder.status()["status"] == "stopped"
    assert not (folder.predictions_path / "final.parquet").exists()


@pytest.mark.slow
def test_a_trained_sft_run_stores_answers_before_and_after(tmp_path, tiny_chat_model, chats_file):
    from core.insight.predictions import load_predictions

    cfg = prompt_config(tiny_chat_model, chats_file, strategy="lora", few_shot=1)
    status, folder = run_engine(cfg, tmp_path / "runs")
    info = folder.status()
    assert status == "completed", info.get("error")
    assert set(info["base_metrics"]) == {"eval_exact_match", "eval_accuracy", "eval_f1"}
    assert {"eval_loss", "eval_exact_match", "eval_f1"} <= set(info["final_metrics"])
    predictions = load_predictions(folder.path)
    assert (predictions.shots("base"), predictions.shots("final")) == (1, 0)
    for frame in (predictions.base, predictions.tuned):
        assert {"answer", "reference", "predicted", "gold", "correct", "loss"} <= set(frame.columns)
    log = folder.log_path.read_text()
    assert "Base model, 1-shot: exact match" in log and "Fine-tuned model, zero-shot: exact match" in log
    steps = [m["step"] for m in folder.metrics() if "eval_exact_match" in m]
    assert steps == [0, info["step"]]


# ---- the shoot-out and the CLI -------------------------------------------------------------------

def test_a_shoot_out_plans_prompting_once_beside_trained_strategies():
    from core.plan.sweep import plan_group

    cfg = RunConfig(task="sft")
    group = plan_group(cfg, ["prompt", "lora"], [1e-4, 1e-3])
    assert [(m.strategy, m.learning_rate) for m in group.members] == [("prompt", None), ("lora", 1e-4), ("lora", 1e-3)]
    with pytest.raises(ConfigError, match="instruction tuning only"):
        plan_group(RunConfig(task="classification"), ["prompt", "full"])


def test_the_comparison_judges_sft_runs_by_their_answers():
    from core.plan.comparison import Row, compare, recommendation_text

    def row(strategy: str, f1: float, wall: float, trainable: int) -> Row:
        return Row(run_id=strategy, label=strategy, strategy=strategy, learning_rate=None, status="completed",
                   metric=2.0, wall_s=wall, trainable_params=trainable, total_params=1000,
                   metrics={"eval_loss": 2.0, "eval_exact_match": f1, "eval_accuracy": f1, "eval_f1": f1})

    result = compare([row("prompt", 0.6, 10.0, 0), row("lora", 0.9, 100.0, 10)], "sft")
    assert (result.metric, result.higher_is_better) == ("f1", True)
    assert [r.metric for r in result.rows] == [0.6, 0.9] and result.front == ("prompt", "lora")
    sentence = recommendation_text(result.recommendation, {r.label: r.name for r in result.rows})
    assert sentence.startswith("LoRA adapters gives the best F1") or "Prompting (no training)" in sentence


@pytest.mark.slow
def test_cli_sweep_puts_prompting_beside_lora(capsys, tmp_path, tiny_chat_model, chats_file):
    from core.__main__ import main
    from core.plan.sweep import list_groups

    code = main(["sweep", "--task", "sft", "--model", str(tiny_chat_model), "--dataset", str(chats_file),
                 "--strategies", "prompt,lora", "--few-shot", "1", "--max-steps", "2", "--batch-size", "4",
                 "--eval-steps", "2", "--save-steps", "2", "--output-dir", str(tmp_path / "group")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "[1/2] prompt: completed" in out and "[2/2] lora: completed" in out
    header = out.splitlines()[-4]
    assert [cell for cell in header.split("  ") if cell.strip()][2].strip() == "F1"  # both judged by the labels their answers name, not by a training loss
    group = list_groups(tmp_path / "group")[0]
    cfg = RunConfig.load(tmp_path / "group" / group.run_ids()[0] / "config.yaml")
    assert (cfg.strategy.name, cfg.strategy.few_shot) == ("prompt", 1)


# ---- pages ---------------------------------------------------------------------------------------

def _setup_key(path: str) -> str:
    return f"cfg:{path}@0"


def test_setup_offers_prompting_for_sft_with_few_shot_and_no_training_fields(jobs):
    from tests.support import all_text, app

    at = app().run()
    assert "prompt" not in at.selectbox(key=_setup_key("strategy.name")).options
    at.radio(key=_setup_key("task")).set_value("sft").run()
    assert text.STRATEGY_NAMES["prompt"] in at.selectbox(key=_setup_key("strategy.name")).options
    at.selectbox(key=_setup_key("strategy.name")).set_value("prompt").run()
    at.number_input(key=_setup_key("strategy.few_shot")).set_value(3).run()
    assert not at.exception, [e.value for e in at.exception]
    cfg = at.session_state["tb_config"]
    assert (cfg.task, cfg.strategy.name, cfg.strategy.few_shot) == ("sft", "prompt", 3)
    keys = {w.key for w in at.number_input}
    assert _setup_key("training.batch_size") not in keys and _setup_key("training.seed") in keys
    assert text.PROMPTING_NO_TRAINING in all_text(at)


EVAL_TEXTS = [f"review number {i} is {'great' if i % 2 else 'awful'}" for i in range(12)]
EVAL_LABELS = ["negative", "positive"]


def add_answer_predictions(root: Path, run_id: str, *, prompted: bool = False) -> None:
    """Stages of answers as a labelled sft run stores them: the base names no label on rows 0-3, the fine-tuned
    model answers rows 4 and 5 wrongly."""
    from core.files import atomic_write_json
    from core.insight import predictions as insight
    from core.run.folder import RunFolder

    chats = [DEFAULT_PROMPT_TEMPLATE.format(text=t, labels="negative, positive") for t in EVAL_TEXTS]
    gold = [EVAL_LABELS[i % 2] for i in range(12)]
    plan = plan_answers([_chat_json(c, g) for c, g in zip(chats, gold, strict=True)],
                        AnswerSettings(label_names=EVAL_LABELS, template=DEFAULT_PROMPT_TEMPLATE))
    base = ["I cannot tell" if i < 4 else g for i, g in enumerate(gold)]
    tuned = [EVAL_LABELS[(i + 1) % 2] if i in (4, 5) else g.capitalize() + "." for i, g in enumerate(gold)]
    out = RunFolder(root / run_id).predictions_path
    atomic_write_json(out / insight.META_FILE, {
        "task": "sft", "label_names": EVAL_LABELS, "rows_used": 12, "rows_total": 12, "sampled": False,
        "final_step": 0 if prompted else 40, "shots": {"final": 2} if prompted else {"base": 2, "final": 0},
        **({"prompted": True} if prompted else {})})
    if not prompted:
        insight.write_frame_atomically(out / "base.parquet", answer_frame(
            EVAL_TEXTS, plan, AnswerResult(base, [0.3] * 12, 1.0, 2), [3.0] * 12))
    insight.write_frame_atomically(out / "final.parquet", answer_frame(
        EVAL_TEXTS, plan, AnswerResult(tuned, [0.9] * 12, 1.0, 0 if not prompted else 2),
        None if prompted else [2.0] * 12))


def test_evaluate_shows_an_sft_run_with_labels_as_a_classifier_with_its_answers(jobs, runs_root):
    from tests.support import all_text, make_run, open_page

    run_id = make_run(runs_root, task="sft", strategy="lora", probes=False)
    add_answer_predictions(runs_root, run_id)
    at = open_page("pages/evaluate.py", {"run": run_id})
    assert not at.exception, [e.value for e in at.exception]
    page = all_text(at)
    assert text.ANSWERS_TITLE in page and text.CONFUSION_TITLE in page and "(no label)" in page
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[text.ANSWER_METRICS["accuracy"]] == f"{10 / 12:.1%}"
    assert len(at.get("plotly_chart")) == 3  # base and fine-tuned confusion, and the loss distribution
    per_class = at.dataframe[0].value
    assert per_class[text.COLUMN_LABEL].tolist() == EVAL_LABELS  # no row for answers without a label
    examples = at.dataframe[1].value  # answered wrongly by default: rows 4 and 5
    assert examples[text.COLUMN_TEXT].tolist() == EVAL_TEXTS[4:6]
    assert {text.COLUMN_BASE_ANSWER, text.COLUMN_TUNED_ANSWER, text.COLUMN_REFERENCE} <= set(examples.columns)
    at.segmented_control(key="tb_eval_filter").set_value("fixed").run()
    assert at.dataframe[1].value[text.COLUMN_TEXT].tolist() == EVAL_TEXTS[:4]

    human = pd.DataFrame({"sentence": EVAL_TEXTS, "label": [EVAL_LABELS[i % 2] for i in range(12)]})
    at.file_uploader(key="tb_eval_human_upload").set_value(("humans.csv", human.to_csv(index=False).encode(), "text/csv"))
    at.run()
    at.selectbox(key="tb_eval_human_text").set_value("sentence").run()
    at.selectbox(key="tb_eval_human_label").set_value("label").run()
    assert not at.exception, [e.value for e in at.exception]
    assert text.HUMAN_MATCHED.format(matched=12, unmatched=0) in all_text(at)
    fine_tuned = at.metric[-4]  # base, fine-tuned and gold pairs, accuracy then kappa each
    assert fine_tuned.label == text.HUMAN_ACCURACY and fine_tuned.value == f"{10 / 12:.1%}"
    assert fine_tuned.delta == f"{(10 - 8) / 12 * 100:+.1f} pts"  # the base names no label on rows 0-3


def test_evaluate_shows_a_prompt_run_as_one_stage(jobs, runs_root):
    from tests.support import all_text, make_run, open_page

    run_id = make_run(runs_root, task="sft", strategy="prompt", probes=False)
    add_answer_predictions(runs_root, run_id, prompted=True)
    at = open_page("pages/evaluate.py", {"run": run_id})
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("plotly_chart")) == 1  # one confusion matrix, no losses
    assert text.ANSWERS_CAPTION_PROMPTED in all_text(at)
    examples = at.dataframe[1].value
    assert text.COLUMN_BASE_ANSWER not in examples.columns

    gold = [EVAL_LABELS[i % 2] for i in range(12)]
    human = pd.DataFrame({"text": EVAL_TEXTS, "label": gold, "human": gold})
    at.file_uploader(key="tb_eval_human_upload").set_value(("humans.csv", human.to_csv(index=False).encode(), "text/csv"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="tb_eval_human_label").value == "human"
    headings = [m.value.strip("*") for m in at.markdown]
    assert text.HUMAN_PAIR_PROMPTED in headings and text.HUMAN_PAIRS["gold"] in headings
    assert text.HUMAN_PAIRS["base"] not in headings  # one model: nothing to compare it with
    assert [m.value for m in at.metric[-4:]] == [f"{10 / 12:.1%}", at.metric[-3].value, "100.0%", "1.000"]
    assert text.COLUMN_BASE_PREDICTION not in at.dataframe[-1].value.columns


@pytest.mark.parametrize("page", ["pages/train.py", "pages/compare.py", "pages/runs.py"])
def test_pages_draw_a_prompt_run(jobs, runs_root, page):
    from core.run.folder import RunFolder
    from core.run.sink import RunSink
    from tests.support import open_page

    cfg = RunConfig(task="sft", name="prompted")
    cfg.strategy.name = "prompt"
    folder = RunFolder.create(runs_root, "20260101-120000-sft-prompt01", cfg)
    sink = RunSink(folder, load_existing=False)
    sink.probe(0, "base", "Is this review positive?", [{"answer": "Yes.", "score": 1.0}])
    sink.probe(0, "final", "Is this review positive?", [{"answer": "positive", "score": 1.0}])
    scores = {"eval_exact_match": 0.4, "eval_accuracy": 0.5, "eval_f1": 0.45}
    sink.metric({"step": 0, **scores})
    sink.set_status(status="completed", step=0, max_steps=0, elapsed_s=12.0, final_metrics=scores,
                    trainable_params=0, total_params=134_500_000)
    at = open_page(page, {"run": folder.run_id})
    assert not at.exception, [e.value for e in at.exception]
