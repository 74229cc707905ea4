"""Instruction data: shapes and their bad rows, labelled texts as chats, answer-only labels, truncation, answers.

Tokenising runs on a tiny byte-level BPE tokenizer trained here, with SmolLM2's own chat template
(SMOLLM2_CHAT_TEMPLATE, read from the bundled GGUF; the slow test checks it still matches), so no
network and no 25 s conversion are needed. The slow tests use the real SmolLM2 tokenizer and TRL.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from core.config import DEFAULT_PROMPT_TEMPLATE, check_prompt_template
from core.data import instructions, read_table
from core.data.instructions import (
    IGNORE_INDEX,
    classification_labels,
    conversations_from_frame,
    conversations_from_labels,
    detect_format,
    encode_conversation,
    map_to_label,
    normalise_answer,
    training_chat_template,
)
from core.data.news import NEWS_CATEGORIES, generate_headlines
from core.errors import ConfigError, DataError
from tests.tiny_models import chat_tokenizer

SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' "
    "+ message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# ChatML with {% generation %} around each answer and its end-of-turn, as TRL's training templates mark it.
MARKED_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>\n' }}{% endgeneration %}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Like Qwen3's: the last answer carries an (empty) reasoning block that earlier answers lose once a
# later turn follows, so a chat's prefix renders differently alone than inside the whole chat.
REASONING_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' and loop.last %}{{ '<think>\n\n</think>\n\n' }}{% endif %}"
    "{{ message['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
END = "<|im_end|>\n"
QA = [{"role": "user", "content": "What is the capital of France?"}, {"role": "assistant", "content": "Paris."}]
MULTI = [
    {"role": "system", "content": "Answer in one short sentence."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris is the capital of France."},
    {"role": "user", "content": "And of Italy?"},
    {"role": "assistant", "content": "Rome is the capital of Italy."},
]


def _tiny_tokenizer(chat_template: str | None):
    corpus = [m["content"] for m in QA + MULTI] + ["You are a helpful AI assistant named SmolLM, trained by Hugging "
                                                   "Face", "system user assistant Classify the text", "### User:"]
    return chat_tokenizer(corpus, vocab_size=600, chat_template=chat_template)


@pytest.fixture(scope="module")
def tokenizer():
    return _tiny_tokenizer(SMOLLM2_CHAT_TEMPLATE)


def trained_runs(tokenizer, encoded: dict) -> list[str]:
    """The labelled tokens, one decoded string per contiguous run."""
    runs, current = [], []
    for token, label in zip(encoded["input_ids"], encoded["labels"], strict=True):
        if label != IGNORE_INDEX:
            assert label == token
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    runs += [current] if current else []
    return [tokenizer.decode(run) for run in runs]


def write_jsonl(path: Path, rows: list, bom: bool = False) -> Path:
    text = "\n".join(json.dumps(row) for row in rows) + "\n"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


# ---- shapes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("columns, shape", [
    (["messages"], "messages"),
    (["id", "Messages"], "messages"),
    (["conversations"], "messages"),
    (["prompt", "completion"], "prompt_completion"),
    (["prompt", "response", "source"], "prompt_completion"),
    (["instruction", "input", "output"], "instruction"),
    (["instruction", "output"], "instruction"),
])
def test_detect_format_recognises_each_shape(columns, shape):
    assert detect_format(columns) == shape


def test_mapped_columns_win_and_are_checked():
    assert detect_format(["question", "answer"], prompt_column="question", response_column="answer") == "mapped"
    with pytest.raises(DataError) as err:
        detect_format(["question", "answer"], prompt_column="question", response_column="reply")
    assert err.value.field == "data.response_column"
    assert "'reply'" in str(err.value) and "'question', 'answer'" in str(err.value)
    with pytest.raises(DataError, match="both the prompt column and the response column"):
        detect_format(["question", "answer"], prompt_column="question")


def test_unrecognised_columns_name_what_was_found_and_what_is_accepted():
    with pytest.raises(DataError) as err:
        detect_format(["question", "reply"])
    message = str(err.value)
    assert "'question', 'reply'" in message
    for shape in ("'messages'", "'prompt' and 'completion'", "'instruction' and 'output'", "map the prompt"):
        assert shape in message
    assert err.value.field == "data.prompt_column"


def test_chats_from_jsonl_multi_turn_with_system_and_a_bom(tmp_path):
    path = write_jsonl(tmp_path / "chats.jsonl", [{"messages": MULTI}, {"messages": QA}], bom=True)
    frame = read_table(path)
    assert list(frame.columns) == ["messages"]  # the reader strips the BOM, so the column name is clean
    assert "removed a UTF-8 byte-order mark" in frame.attrs["read_report"]["repairs"]
    assert conversations_from_frame(frame) == [MULTI, QA]


def test_chats_from_csv_json_strings_and_parquet_arrays(tmp_path):
    csv_path = tmp_path / "chats.csv"
    pd.DataFrame({"messages": [json.dumps(MULTI), json.dumps(QA)]}).to_csv(csv_path, index=False)
    csv_path.write_bytes(b"\xef\xbb\xbf" + csv_path.read_bytes())
    assert conversations_from_frame(read_table(csv_path)) == [MULTI, QA]
    parquet_path = tmp_path / "chats.parquet"
    pd.DataFrame({"messages": [MULTI, QA]}).to_parquet(parquet_path)
    assert conversations_from_frame(read_table(parquet_path)) == [MULTI, QA]


def test_pairs_instructions_mapped_columns_sharegpt_and_system_column(tmp_path):
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps([{"prompt": "2+2?", "completion": "4", "system": "Be terse."}]), encoding="utf-8")
    assert conversations_from_frame(read_table(pairs)) == [[
        {"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"}]]
    alpaca = pd.DataFrame({"instruction": ["Translate to French.", "Name a colour."], "input": ["cat", ""],
                           "output": ["chat", "Blue"]})
    assert [c[0]["content"] for c in conversations_from_frame(alpaca)] == ["Translate to French.\n\ncat",
                                                                           "Name a colour."]
    mapped = pd.DataFrame({"question": ["Why?"], "answer": ["Because."]})
    assert conversations_from_frame(mapped, prompt_column="question", response_column="answer") == [[
        {"role": "user", "content": "Why?"}, {"role": "assistant", "content": "Because."}]]
    sharegpt = pd.DataFrame({"conversations": [[{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]]})
    assert conversations_from_frame(sharegpt) == [[{"role": "user", "content": "Hi"},
                                                   {"role": "assistant", "content": "Hello"}]]
    # TRL's conversational prompt-completion rows hold message lists.
    trl_rows = pd.DataFrame({"prompt": [[QA[0]]], "completion": [[QA[1]]]})
    assert conversations_from_frame(trl_rows) == [QA]


def test_a_prompt_longer_than_any_max_length_is_accepted():
    long = pd.DataFrame({"prompt": ["word " * 5000], "completion": ["ok"]})
    assert len(conversations_from_frame(long)[0][0]["content"]) == 25_000


BAD_ROWS = [
    ({"messages": [{"role": "user", "content": "Hi"}]}, "messages", "has no assistant turn"),
    ({"messages": [QA[0], {"role": "assistant", "content": "  "}]}, "messages[1].content", "empty answer"),
    ({"messages": [QA[0], {"role": "bot", "content": "Hello"}]}, "messages[1].role", "'bot'"),
    ({"messages": [{"role": "user", "content": 42}, QA[1]]}, "messages[0].content", "is int"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}, QA[1]]}, "messages[0].content",
     "content parts"),
    ({"messages": [QA[1], QA[0], QA[1]]}, "messages[0].role", "starts the chat with an assistant turn"),
    ({"messages": "Hi"}, "messages", "not valid JSON"),
    ({"messages": [{"content": "Hi"}, QA[1]]}, "messages[0].role", "is missing"),
]


@pytest.mark.parametrize("bad, field, problem", BAD_ROWS)
def test_a_bad_chat_is_named_by_file_line_and_field(tmp_path, bad, field, problem):
    path = write_jsonl(tmp_path / "chats.jsonl", [{"messages": QA}, bad, {"messages": QA}])
    with pytest.raises(DataError) as err:
        conversations_from_frame(read_table(path))
    assert str(err.value).startswith(f"chats.jsonl, line 2, field '{field}': ")
    assert problem in str(err.value)
    assert err.value.field == "data.path"


@pytest.mark.parametrize("row, field, problem", [
    ({"prompt": "Hi", "completion": None}, "completion", "is missing (null): write the answer"),
    ({"prompt": "Hi", "completion": ""}, "completion", "is an empty answer"),
    ({"prompt": None, "completion": "Hello"}, "prompt", "is missing (null): write the prompt"),
    ({"prompt": "Hi", "completion": 7}, "completion", "is int, not text"),
    ({"prompt": "Hi"}, "completion", "is missing (null)"),  # a JSON row without the key
])
def test_a_bad_pair_is_named_by_file_line_and_field(tmp_path, row, field, problem):
    path = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "a", "completion": "b"}, row])
    with pytest.raises(DataError, match=rf"^pairs\.jsonl, line 2, field '{field}': .*{re.escape(problem)}"):
        conversations_from_frame(read_table(path))


def test_csv_rows_are_counted_as_rows_and_other_bad_rows_are_counted(tmp_path):
    path = tmp_path / "pairs.csv"
    pd.DataFrame({"prompt": ["a", "b", "c", "d"], "completion": ["x", "", "", ""]}).to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        conversations_from_frame(read_table(path))
    assert str(err.value).startswith("pairs.csv, row 2, field 'completion': is an empty answer")
    assert str(err.value).endswith("2 other rows have problems too.")
    frame = pd.DataFrame({"prompt": ["a", "b"], "completion": ["x", None]})
    with pytest.raises(DataError, match=r"^the data, row 2, field 'completion'.*\.$"):
        conversations_from_frame(frame)


# ---- repeated chats ---------------------------------------------------------------------------

def _file_data(path: Path):
    from core.config import RunConfig

    cfg = RunConfig(task="sft")
    cfg.data.source, cfg.data.path = "file", str(path)
    cfg.training.batch_size = 1
    return cfg


def test_repeated_chats_are_dropped_and_counted_as_repeated_texts_are(tmp_path):
    """25 copies of one chat train as one, and the run, the preflight and Setup's line all say so."""
    from core.data.instructions import run_conversations
    from core.data.preflight import check_data
    from core.data.prepare import prepare_data
    from core.plan.data_plan import rows_line

    rows = [{"messages": QA}] * 25 + [{"messages": MULTI}] + [{"messages": [QA[0], {**QA[1], "content": "Paris!"}]}]
    cfg = _file_data(write_jsonl(tmp_path / "chats.jsonl", rows))
    chats, shape, dropped = run_conversations(read_table(cfg.data.path), cfg.data)
    assert shape == "messages" and chats == [QA, MULTI, [QA[0], {**QA[1], "content": "Paris!"}]]
    assert dropped == {"duplicate": 24}
    report = prepare_data(cfg).report
    assert report["dropped"] == {"duplicate": 24} and report["rows_usable"] == 3
    facts = check_data(cfg)
    assert (facts.rows, facts.usable, facts.dropped) == (27, 3, {"duplicate": 24})
    assert rows_line(facts, cfg).startswith("Data: 27 rows → 3 conversations after curation (dropped: 24 duplicates)")


def test_repeated_chats_follow_the_curation_settings():
    from core.config import DataConfig
    from core.data.instructions import repeated_chats, run_conversations

    shouted = [{**QA[0], "content": "WHAT is the capital  of France?"}, QA[1]]
    frame = pd.DataFrame({"messages": [QA, shouted, QA]})
    data = DataConfig(source="file", path="chats.jsonl")
    assert run_conversations(frame, data)[2] == {"duplicate": 1}
    data.curation.normalise_duplicates = True
    assert run_conversations(frame, data)[2] == {"duplicate": 2}
    assert repeated_chats([QA, shouted, QA], normalise=True).tolist() == [False, True, True]
    data.curation.check_action = "flag"  # a chat has no flag column: flagged repeats are kept, as in a table
    assert len(run_conversations(frame, data)[0]) == 3
    data.curation.check_action, data.curation.drop_duplicates = "remove", False
    assert run_conversations(frame, data)[2] == {}


def test_labelled_texts_repeat_only_with_the_same_answer():
    from core.config import DataConfig
    from core.data.instructions import run_conversations

    frame = pd.DataFrame({"text": ["Great shoes", "Great shoes", "Great shoes"], "label": ["pos", "pos", "neg"]})
    chats, shape, dropped = run_conversations(frame, DataConfig(source="synthetic"))
    assert shape == "labels" and len(chats) == 2 and dropped == {"duplicate": 1}


# ---- labelled texts ---------------------------------------------------------------------------

def test_labelled_rows_through_the_default_and_a_custom_template():
    frame = pd.DataFrame({"text": ["Great shoes", "Awful socks"], "label": [1, 0]})
    frame.attrs["label_names"] = ["negative", "positive"]
    chats = conversations_from_labels(frame)
    assert chats[0] == [
        {"role": "user", "content": "Classify the text into one of: negative, positive.\n\nText: Great shoes\n\n"
                                    "Answer with the category name only."},
        {"role": "assistant", "content": "positive"}]
    assert chats[0][0]["content"] == DEFAULT_PROMPT_TEMPLATE.format(text="Great shoes", labels="negative, positive")
    custom = conversations_from_labels(frame, template="Review: {text}\nSentiment ({labels})?")
    assert custom[1][0]["content"] == "Review: Awful socks\nSentiment (negative, positive)?"
    assert custom[1][1]["content"] == "negative"


def test_news_headlines_become_instruction_data():
    news = generate_headlines(40, seed=2)
    chats = conversations_from_labels(news)
    assert [c[1]["content"] for c in chats] == news["label"].tolist()
    assert all(", ".join(NEWS_CATEGORIES) in c[0]["content"] for c in chats)


def test_label_names_come_from_values_and_bad_labels_are_named():
    frame = pd.DataFrame({"sentence": ["a", "b", "c"], "topic": ["sport", "art", "sport"]})
    assert classification_labels(frame, "topic") == ["art", "sport"]
    assert classification_labels(pd.DataFrame({"label": ["10", "2", "1"]})) == ["1", "2", "10"]
    with pytest.raises(DataError, match=r"^the data, row 2, field 'topic': is 'art', not one of the labels"):
        conversations_from_labels(frame, text_column="sentence", label_column="topic", label_names=["sport", "music"])
    with pytest.raises(DataError, match="field 'text': is empty"):
        conversations_from_labels(pd.DataFrame({"text": ["ok", " "], "label": ["a", "b"]}))
    with pytest.raises(DataError, match="The column 'body' is not in the data") as err:
        conversations_from_labels(frame, text_column="body", label_column="topic")
    assert err.value.field == "data.text_column"


@pytest.mark.parametrize("template, problem", [
    ("Classify {txt} into {labels}", "unknown placeholder {txt}"),
    ("Classify {text:>10}", "unknown placeholder {text:>10}"),
    ("Classify {}", "unknown placeholder {}"),
    ("Pick one of {labels}", "no {text} placeholder"),
    ("Classify {text", "stray brace"),
    ("  ", "is empty"),
])
def test_a_bad_prompt_template_is_a_config_error(template, problem):
    with pytest.raises(ConfigError) as err:
        check_prompt_template(template)
    assert problem in str(err.value) and "{{ and }}" in str(err.value)
    assert err.value.field == "data.prompt_template"


def test_literal_braces_in_a_template_are_fine():
    frame = pd.DataFrame({"text": ["hi"], "label": ["greeting"]})
    chat = conversations_from_labels(frame, template='Reply as {{"label": ...}}. {text}')
    assert chat[0][0]["content"] == 'Reply as {"label": ...}. hi'


# ---- tokenising -------------------------------------------------------------------------------

def test_only_the_answer_is_trained_and_every_prompt_token_is_masked(tokenizer):
    encoded = encode_conversation(tokenizer, QA, 256)
    assert trained_runs(tokenizer, encoded) == ["Paris." + END]
    text = tokenizer.decode(encoded["input_ids"])
    assert text == tokenizer.apply_chat_template(QA, tokenize=False)  # SmolLM2's default system turn included
    answer_tokens = len(tokenizer("Paris." + END, add_special_tokens=False)["input_ids"])
    assert sum(label != IGNORE_INDEX for label in encoded["labels"]) == answer_tokens
    assert encoded["attention_mask"] == [1] * len(encoded["input_ids"])
    assert encoded["truncated_prompt"] is False and encoded["truncated_answer"] is False


def test_every_turn_of_a_multi_turn_chat_with_a_system_turn_is_trained(tokenizer):
    encoded = encode_conversation(tokenizer, MULTI, 256)
    assert trained_runs(tokenizer, encoded) == [MULTI[2]["content"] + END, MULTI[4]["content"] + END]
    assert tokenizer.decode(encoded["input_ids"]).startswith("<|im_start|>system\nAnswer in one short sentence.")


def test_train_on_prompt_trains_every_token(tokenizer):
    encoded = encode_conversation(tokenizer, MULTI, 256, train_on_prompt=True)
    assert encoded["labels"] == encoded["input_ids"]


def test_a_long_prompt_is_cut_from_the_left_keeping_the_system_turn_and_the_answer(tokenizer):
    words = [f"w{i}" for i in range(120)]
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": " ".join(words)},
            {"role": "assistant", "content": "Paris is the capital of France."}]
    full = encode_conversation(tokenizer, chat, 10_000)
    encoded = encode_conversation(tokenizer, chat, 64)
    assert len(full["input_ids"]) > 64 and len(encoded["input_ids"]) == 64
    assert encoded["truncated_prompt"] is True and encoded["truncated_answer"] is False
    assert trained_runs(tokenizer, encoded) == ["Paris is the capital of France." + END]
    text = tokenizer.decode(encoded["input_ids"])
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")
    assert "w0 " not in text and "w119" in text  # the oldest words went, the latest stayed
    # Too little room for the system turn: the newest tokens only, still with the whole answer.
    squeezed = encode_conversation(tokenizer, chat, 24)
    assert len(squeezed["input_ids"]) == 24 and squeezed["truncated_prompt"] is True
    assert trained_runs(tokenizer, squeezed) == ["Paris is the capital of France." + END]
    assert squeezed["input_ids"] == full["input_ids"][-24:]


def test_an_answer_longer_than_max_length_is_cut_at_the_right(tokenizer):
    chat = [QA[0], {"role": "assistant", "content": " ".join(["Paris is the capital of France."] * 20)}]
    encoded = encode_conversation(tokenizer, chat, 16)
    assert len(encoded["input_ids"]) == 16 and encoded["labels"] == encoded["input_ids"]
    assert encoded["truncated_prompt"] is True and encoded["truncated_answer"] is True
    assert tokenizer.decode(encoded["input_ids"]).startswith("Paris is the capital")


def test_a_tokenizer_without_a_chat_template_gets_the_plain_one():
    plain = _tiny_tokenizer(None)
    encoded = encode_conversation(plain, MULTI, 256)
    assert tokenizer_text(plain, encoded) == (
        "### System:\nAnswer in one short sentence.\n\n### User:\nWhat is the capital of France?\n\n"
        "### Assistant:\nParis is the capital of France.<|im_end|>\n\n### User:\nAnd of Italy?\n\n"
        "### Assistant:\nRome is the capital of Italy.<|im_end|>\n\n")
    assert trained_runs(plain, encoded) == [MULTI[2]["content"] + "<|im_end|>\n\n",
                                            MULTI[4]["content"] + "<|im_end|>\n\n"]


def tokenizer_text(tokenizer, encoded: dict) -> str:
    return tokenizer.decode(encoded["input_ids"])


def test_generation_markers_give_the_mask(tokenizer):
    encoded = encode_conversation(tokenizer, MULTI, 256, chat_template=MARKED_TEMPLATE)
    assert trained_runs(tokenizer, encoded) == [MULTI[2]["content"] + END, MULTI[4]["content"] + END]


def test_a_template_that_rerenders_earlier_turns_falls_back_to_offsets(tokenizer, monkeypatch):
    calls = []
    real = instructions._token_spans
    monkeypatch.setattr(instructions, "_token_spans", lambda *a: calls.append(a) or real(*a))
    encoded = encode_conversation(tokenizer, MULTI, 256, chat_template=REASONING_TEMPLATE)
    assert calls, "the earlier answer's prefix is not a prefix of the whole chat: offsets must find it"
    assert trained_runs(tokenizer, encoded) == [MULTI[2]["content"] + END,
                                                "<think>\n\n</think>\n\n" + MULTI[4]["content"] + END]


def test_encoding_refuses_chats_it_cannot_train_on(tokenizer):
    with pytest.raises(DataError, match="at least one assistant turn"):
        encode_conversation(tokenizer, QA[:1], 64)
    with pytest.raises(ConfigError):
        encode_conversation(tokenizer, QA, 0)


# ---- answers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, normal", [
    ("  Sports.  ", "sports"), ("Money &  Business!", "money & business"), ('"World news"', "world news"),
    ("POLITICS\n", "politics"), (None, ""), ("**Style & beauty**", "style & beauty"),
])
def test_normalise_answer(text, normal):
    assert normalise_answer(text) == normal


@pytest.mark.parametrize("answer, label", [
    ("Sports", "sports"), ("sports.", "sports"), ("science and technology", "science & technology"),
    ("The answer is: Politics.", "politics"), ("Category: Money & Business", "money & business"),
    ("business", None), ("It is about sports and politics", None), ("I don't know", None), ("", None),
])
def test_map_to_label(answer, label):
    assert map_to_label(answer, NEWS_CATEGORIES) == label


def test_map_to_label_prefers_the_longer_label_that_contains_another():
    assert map_to_label("Money & business news", ["business", "money & business"]) == "money & business"
    assert map_to_label("Positive!", ["negative", "positive"]) == "positive"


# ---- slow: TRL and the real SmolLM2 tokenizer ---------------------------------------------------

@pytest.mark.slow
def test_trl_training_template_for_a_model_it_knows(tokenizer):
    import trl

    qwen = _tiny_tokenizer((Path(trl.__file__).parent / "chat_templates" / "qwen2_5.jinja").read_text())
    template = training_chat_template(qwen)
    assert template and "generation" in template and template != qwen.chat_template
    encoded = encode_conversation(qwen, MULTI, 256, chat_template=template)
    # TRL's Qwen2.5 variant marks the newline after the role header as part of the answer.
    assert trained_runs(qwen, encoded) == ["\n" + MULTI[2]["content"] + END, "\n" + MULTI[4]["content"] + END]
    assert training_chat_template(tokenizer) is None  # SmolLM2's template: TRL has no variant of it
    assert training_chat_template(_tiny_tokenizer(MARKED_TEMPLATE)) == MARKED_TEMPLATE


@pytest.mark.slow
def test_the_real_smollm2_tokenizer(tmp_path):
    from transformers import AutoTokenizer

    from core.models.gguf import SMOLLM2, converted_folder, gguf_file, is_converted

    source = gguf_file(SMOLLM2)
    folder = converted_folder(SMOLLM2)
    if is_converted(folder, source):
        smol = AutoTokenizer.from_pretrained(folder)
    else:  # reading the tokenizer from the GGUF takes ~20 s, still less than converting the model
        smol = AutoTokenizer.from_pretrained(source.parent, gguf_file=str(source))
    assert smol.chat_template == SMOLLM2_CHAT_TEMPLATE  # the fixture above uses the real template
    assert training_chat_template(smol) is None
    encoded = encode_conversation(smol, MULTI, 2048)
    assert trained_runs(smol, encoded) == [MULTI[2]["content"] + END, MULTI[4]["content"] + END]
    news = conversations_from_labels(generate_headlines(8, seed=0))
    for chat in news:
        cut = encode_conversation(smol, chat, 40)
        assert len(cut["input_ids"]) <= 40 and cut["truncated_prompt"] is True
        assert trained_runs(smol, cut) == [chat[1]["content"] + END]


def test_a_stored_chat_reads_as_its_last_prompt_and_answer():
    import json

    from core.data.instructions import conversation_preview

    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Capital of  France?"},
            {"role": "assistant", "content": "Paris"}]
    assert conversation_preview(json.dumps(chat)) == "Capital of France? → Paris"
    assert conversation_preview("not json") == "not json"
    assert conversation_preview(json.dumps([{"role": "user", "content": "x" * 400}]), limit=50).endswith("…")
