"""`python -m core evaluate`: a run's base and fine-tuned models on an evaluation file (core.insight.evaluation).

One run per kind of comparison: instruction tuning (a tiny Llama with a ChatML template, LoRA, trained for two
steps on the synthetic reviews as labelled texts), classification (the tiny BERT) and causal LM (the tiny GPT-2).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from core.__main__ import EXIT_USER_ERROR, main
from core.config import RunConfig
from core.run.folder import RunFolder
from core.run.sink import RunSink
from tests.tiny_models import chat_tokenizer, review_sentences

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Review texts with their gold label and a second annotator who disagrees on the last one.
REVIEWS = [
    ("Nike shoes are very comfortable", "positive", "positive"),
    ("Adidas hoodies are known to be ugly", "negative", "negative"),
    ("Puma socks are famous for being durable", "positive", "positive"),
    ("Reebok jackets are very flimsy", "negative", "positive"),
]


def _build_tiny_chat_llama(out: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    corpus = review_sentences()[:200] + ["Classify the text into one of: negative, positive.", "Text:",
                                         "Answer with the category name only.", "system user assistant"]
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


def trained_sft_run(root: Path, model: Path) -> Path:
    """A real, short engine run: LoRA instruction tuning on the synthetic reviews, asked through the prompt template."""
    from core.training import engine

    cfg = RunConfig(task="sft")
    cfg.model.source, cfg.model.max_length, cfg.strategy.name = str(model), 96, "lora"
    cfg.data.synthetic.rows = 24
    cfg.training.max_steps, cfg.training.batch_size, cfg.training.learning_rate = 2, 8, 5e-3
    cfg.training.eval_steps = cfg.training.save_steps = 2
    cfg.training.device, cfg.training.precision = "cpu", "fp32"
    cfg.probes.texts = ["Nike shoes are very comfortable"]
    folder = RunFolder.create(root, "sft", cfg.validate())
    assert engine.train(cfg, folder, RunSink(folder), threading.Event()) == "completed"
    return folder.path


def finished_run(root: Path, task: str, model_dir: str, label_names: list[str] | None = None) -> Path:
    """A completed run folder as the engine leaves one, without training: final/ holds the base model with its
    last layer nudged, so that the two models differ."""
    import torch
    import transformers

    cfg = RunConfig(task=task)
    cfg.model.source, cfg.model.max_length, cfg.strategy.name = model_dir, 64, "full"
    folder = RunFolder.create(root, task, cfg.validate())
    with torch.random.fork_rng():
        torch.manual_seed(1)
        if task == "classification":
            model = transformers.AutoModelForSequenceClassification.from_pretrained(
                model_dir, id2label=dict(enumerate(label_names)), label2id={n: i for i, n in enumerate(label_names)})
        else:
            auto = {"causal": "AutoModelForCausalLM", "mlm": "AutoModelForMaskedLM"}[task]
            model = getattr(transformers, auto).from_pretrained(model_dir)
        with torch.no_grad():
            for parameter in list(model.parameters())[-2:]:
                parameter.add_(0.05 * torch.randn_like(parameter))
    model.save_pretrained(folder.final_path)
    transformers.AutoTokenizer.from_pretrained(model_dir).save_pretrained(folder.final_path)
    folder.update_status(status="completed", label_names=label_names)
    return folder.path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_bert, tiny_gpt2) -> dict[str, Path]:
    """The sft run is trained for real (its LoRA adapter and data report come from the engine); the others are
    written as the engine writes them."""
    root = tmp_path_factory.mktemp("evaluate-runs")
    llama = _build_tiny_chat_llama(tmp_path_factory.mktemp("tiny-chat-llama") / "llama")
    return {"sft": trained_sft_run(root, llama),
            "classification": finished_run(root, "classification", tiny_bert, ["negative", "positive"]),
            "causal": finished_run(root, "causal", tiny_gpt2), "mlm": finished_run(root, "mlm", tiny_bert)}


def write_csv(path: Path, header: str, rows: list[tuple]) -> Path:
    path.write_text(header + "\n" + "".join(",".join(map(str, row)) + "\n" for row in rows), encoding="utf-8")
    return path


def evaluate(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["evaluate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ---- instruction tuning ------------------------------------------------------------------------

def test_sft_on_labelled_texts_maps_answers_to_labels_and_agrees_with_the_human_column(runs, tmp_path, capsys):
    data = write_csv(tmp_path / "reviews.csv", "text,label,human", REVIEWS)
    output = tmp_path / "out" / "sft.jsonl"
    code, out, err = evaluate(capsys, str(runs["sft"]), "--eval-file", str(data), "--output", str(output),
                              "--human-column", "human", "--max-new-tokens", "4", "--batch-size", "3")
    assert code == 0, err
    lines = read_lines(output)
    assert [line["row"] for line in lines] == [1, 2, 3, 4]
    for line, (text, gold, human) in zip(lines, REVIEWS, strict=True):
        assert {"prompt", "reference", "base", "tuned", "reference_label", "base_label", "tuned_label",
                "human"} <= set(line)
        assert line["reference"] == line["reference_label"] == gold and line["human"] == human
        assert line["prompt"][-1]["role"] == "user" and text in line["prompt"][-1]["content"]
        assert "negative, positive" in line["prompt"][-1]["content"]  # the run's labels, through its template
        assert line["base_label"] in ("negative", "positive", None)
    assert "Answers are mapped to the labels: negative, positive." in out
    for needle in ("exact match", "accuracy", "macro-F1", "Agreement with the human column 'human' (4 of 4",
                   "base vs human", "fine-tuned vs human", str(output)):
        assert needle in out
    ceiling = next(line for line in out.splitlines() if "human vs gold" in line)
    assert "75.0%" in ceiling  # the annotator agrees with the gold label on 3 of 4 rows
    assert "Answering 4 prompts with the base model" in err


def test_sft_scores_exact_match_labels_and_agreement_as_defined(runs, tmp_path, capsys, monkeypatch):
    import core.insight.evaluation

    replies = iter([["Positive."] * 4,  # the base model: always positive
                    ["positive.", "The answer is negative", "positive", "negative"]])  # tuned: right, one in a sentence
    monkeypatch.setattr(core.insight.evaluation, "reply_to_chats", lambda *args, **kwargs: next(replies))
    data = write_csv(tmp_path / "reviews.csv", "text,label,human", REVIEWS)
    code, out, err = evaluate(capsys, str(runs["sft"]), "--eval-file", str(data), "--human-column", "human")
    assert code == 0, err
    table = {line.split("  ")[1].strip(): line.split()[-2:] for line in out.splitlines() if line.startswith("  ")}
    assert table["exact match"] == ["50.0%", "75.0%"]  # "The answer is negative" is no exact match...
    assert table["accuracy"] == ["50.0%", "100.0%"]  # ...but it names the label
    assert table["macro-F1"] == ["0.333", "1.000"]
    assert table["base vs human"] == ["75.0%", "0.000"]  # a constant answer agrees no better than chance
    assert table["fine-tuned vs human"] == ["75.0%", "0.500"]
    lines = read_lines(runs["sft"] / "evaluations" / "reviews.jsonl")
    assert lines[1]["tuned"] == "The answer is negative" and lines[1]["tuned_label"] == "negative"


def test_sft_reads_chats_whatever_the_run_trained_on_and_finds_their_label_set(runs, tmp_path, capsys):
    chats = [{"messages": [{"role": "system", "content": "Answer in one word."},
                           {"role": "user", "content": f"Is '{text}' positive or negative?"},
                           {"role": "assistant", "content": gold}]} for text, gold, _ in REVIEWS]
    data = tmp_path / "chats.jsonl"
    data.write_text("".join(json.dumps(chat) + "\n" for chat in chats), encoding="utf-8")
    code, out, err = evaluate(capsys, str(runs["sft"]), "--eval-file", str(data), "--max-new-tokens", "3")
    assert code == 0, err
    written = runs["sft"] / "evaluations" / "chats.jsonl"  # the default place
    lines = read_lines(written)
    assert [m["role"] for m in lines[0]["prompt"]] == ["system", "user"]
    assert [line["reference_label"] for line in lines] == [gold for _, gold, _ in REVIEWS]
    assert "exact match" in out and str(written) in out

    free = tmp_path / "free.jsonl"
    free.write_text("".join(json.dumps({"prompt": f"Describe item {i}.", "completion": f"Item {i} is new."}) + "\n"
                            for i in range(3)), encoding="utf-8")
    code, out, err = evaluate(capsys, str(runs["sft"]), "--eval-file", str(free), "--max-new-tokens", "3",
                              "--human-column", "prompt")
    assert code == EXIT_USER_ERROR and "is the file's prompt or answer column" in err
    code, out, err = evaluate(capsys, str(runs["sft"]), "--eval-file", str(free), "--max-new-tokens", "3")
    assert code == 0, err
    line = read_lines(runs["sft"] / "evaluations" / "free.jsonl")[0]
    assert line["reference"] == "Item 0 is new." and "reference_label" not in line  # free text: no label set
    assert "exact match" in out and "macro-F1" not in out


# ---- classification and causal LM ----------------------------------------------------------------

def test_classification_compares_predicted_labels_and_leaves_out_unknown_labels(runs, tmp_path, capsys):
    rows = [(text, gold, human) for text, gold, human in REVIEWS] + [("Asics socks are light", "neutral", "positive")]
    data = write_csv(tmp_path / "labelled.csv", "text,label,annotator", rows)
    output = tmp_path / "classification.jsonl"
    code, out, err = evaluate(capsys, str(runs["classification"]), "--eval-file", str(data), "--output", str(output),
                              "--human-column", "annotator")
    assert code == 0, err
    lines = read_lines(output)
    assert [line["reference"] for line in lines] == [gold for _, gold, _ in REVIEWS]
    for line in lines:
        assert line["base"] in ("negative", "positive") and line["tuned"] in ("negative", "positive")
        assert 0.5 <= line["tuned_confidence"] <= 1.0
    assert "1 row left out (1 with a label the run does not know)" in out
    assert "accuracy" in out and "macro-F1" in out and "human vs gold" in out


@pytest.mark.parametrize("task", ["causal", "mlm"])
def test_language_models_score_each_example_by_its_loss_and_refuse_a_human_column(runs, tmp_path, capsys, task,
                                                                                 monkeypatch):
    data = write_csv(tmp_path / "texts.csv", "text,human", [(text, human) for text, _, human in REVIEWS])
    output = tmp_path / f"{task}.jsonl"
    monkeypatch.setenv("TUNEBOARD_RUNS", str(runs[task].parent))  # a bare run id is looked up there
    code, out, err = evaluate(capsys, runs[task].name, "--eval-file", str(data), "--output", str(output))
    assert code == 0, err
    lines = read_lines(output)
    assert len(lines) == 4
    for line in lines:
        assert set(line) == {"row", "text", "base_loss", "tuned_loss", "change"}
        assert line["change"] == pytest.approx(line["tuned_loss"] - line["base_loss"], abs=1e-5)
    assert "mean loss" in out and "perplexity" in out and "lower on" in out
    code, _, err = evaluate(capsys, str(runs[task]), "--eval-file", str(data), "--human-column", "human")
    assert code == EXIT_USER_ERROR and "leave the human column out" in err


# ---- bad input: one line, exit status 2 ------------------------------------------------------------

def assert_one_line_error(err: str, needle: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert needle in lines[0], lines[0]


def test_bad_input_is_one_line_and_exit_2(runs, tmp_path, capsys):
    good = write_csv(tmp_path / "good.csv", "text,label,human", REVIEWS)
    header_only = tmp_path / "header.csv"
    header_only.write_text("text,label\n", encoding="utf-8")
    not_a_folder = tmp_path / "plain-file.txt"
    not_a_folder.write_text("x", encoding="utf-8")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    no_model = RunFolder.create(tmp_path / "runs", "no-model-yet", RunConfig(task="sft")).path
    sft = str(runs["sft"])
    cases = [
        ([str(tmp_path / "nowhere"), "--eval-file", str(good)], "is not a run folder"),
        ([str(no_model), "--eval-file", str(good)], "has no saved model yet"),
        ([sft, "--eval-file", str(tmp_path / "missing.csv")], "does not exist"),
        ([sft, "--eval-file", str(tmp_path)], "is a folder"),
        ([sft, "--eval-file", str(not_a_folder)], "cannot read"),
        ([sft, "--eval-file", str(binary)], "looks like a binary file"),
        ([sft, "--eval-file", str(header_only)], "no data rows"),
        ([sft, "--eval-file", str(good), "--human-column", "second"],
         "has no column 'second' for the human labels; its columns are 'text', 'label', 'human'"),
        ([sft, "--eval-file", str(good), "--human-column", "text"], "is the file's text column"),
        ([sft, "--eval-file", str(good), "--human-column", "label"], "is the file's gold label column"),
        ([sft, "--eval-file", str(good), "--output", str(not_a_folder / "out.jsonl")], "Cannot write the results"),
        ([sft, "--eval-file", str(good), "--output", str(tmp_path)], "is a folder"),
        ([sft, "--eval-file", str(good), "--batch-size", "0"], "batch size"),
        ([sft, "--eval-file", str(good), "--max-new-tokens", "9999"], "maximum of new tokens"),
    ]
    for argv, needle in cases:
        code, out, err = evaluate(capsys, *argv)
        assert code == EXIT_USER_ERROR, (argv, out, err)
        assert_one_line_error(err, needle)
    assert not (runs["sft"] / "evaluations" / "good.jsonl").exists()  # refused before anything was written
