"""AppTest: instruction data (task sft) on the Setup page, and the CLI's refusal of the same bad files.

Each bad file gets one message under the data widget (and its copy next to Start) that names the file,
the line and the field, Start is refused and nothing raises; good files of every allowed shape are
ready to train. The data is a file on the server, its path typed into the path box (one case uploads,
to check the message names the file as the user knows it, not its stored copy). The CLI half runs
`python -m core train --task sft --dataset BAD.jsonl` in-process: exit 2, one "error:" line with the
same words. The chat without an assistant turn is covered there by test_sft and its core checks by
test_instructions / test_sft's preflight tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.present import text
from tests.support import app, texts

QA = [{"role": "user", "content": "What is the capital of France?"}, {"role": "assistant", "content": "Paris."}]
GOOD = {"messages": QA}
ROWS = 40  # enough for the default sft batch of 8 after the validation split


def key(path: str, *extra: str) -> str:
    return f"cfg:{path}{''.join('/' + e for e in extra)}@0"


def numbered(row: dict, i: int) -> dict:
    """The row with its (first) question numbered: the same chat twice would be dropped as a repeat."""
    row = json.loads(json.dumps(row))
    if "messages" in row:
        first = next(m for m in row["messages"] if m["role"] == "user")
        first["content"] += f" ({i})"
    elif "prompt" in row:
        row["prompt"] += f" ({i})"
    return row


def jsonl(rows: list, *, bad_at: int | None = None, bad: object = None) -> str:
    """ROWS-ish distinct lines of `rows` (cycled, numbered), with `bad` (a row, or raw text) as line `bad_at`."""
    lines = [json.dumps(numbered(rows[i % len(rows)], i)) for i in range(ROWS)]
    if bad_at is not None:
        lines.insert(bad_at - 1, bad if isinstance(bad, str) else json.dumps(bad))
    return "\n".join(lines) + "\n"


PAIRS = [{"prompt": "Name a colour.", "completion": "Blue."}]

# name: (file content, the words the message starts with, the widget the message sits under)
BAD = {
    "torn-json-line": (jsonl([GOOD], bad_at=3, bad='{"messages": [{"role": "user", "content": "Hi"}'),
                       "{file}: line 3 is not valid JSON", key("data.path")),
    "chat-without-assistant": (jsonl([GOOD], bad_at=4, bad={"messages": [QA[0]]}),
                               "{file}, line 4, field 'messages': has no assistant turn", key("data.path")),
    "empty-answer": (jsonl([GOOD], bad_at=5, bad={"messages": [QA[0], {"role": "assistant", "content": " "}]}),
                     "{file}, line 5, field 'messages[1].content': is an empty answer", key("data.path")),
    "unknown-role": (jsonl([GOOD], bad_at=2, bad={"messages": [QA[0], {"role": "bot", "content": "Paris."}]}),
                     "{file}, line 2, field 'messages[1].role': is 'bot', a role Tuneboard does not train on",
                     key("data.path")),
    "non-string-content": (jsonl([GOOD], bad_at=6, bad={"messages": [{"role": "user", "content": 42}, QA[1]]}),
                           "{file}, line 6, field 'messages[0].content': is int, not text", key("data.path")),
    "null-completion": (jsonl(PAIRS, bad_at=7, bad={"prompt": "Name a fruit.", "completion": None}),
                        "{file}, line 7, field 'completion': is missing (null)", key("data.path")),
    # Free-text columns: the text and label pickers' first guesses must not pass for a labelled set. The
    # prompt column is still to be mapped, so the page guides (an info under the picker) rather than scolds.
    "no-prompt-answer-fields": (jsonl([{"question": f"Question {i}?", "reply": f"Answer number {i}."}
                                       for i in range(ROWS)]),
                                "No prompt and answer fields were recognised in {file} among the columns "
                                "'question', 'reply'", key("data.prompt_column", "question|reply")),
}


def sft_setup():
    """Setup with task sft and a file on the server as the data source (path not yet typed)."""
    at = app().run()
    at.radio(key=key("task")).set_value("sft").run()
    at.radio(key=key("data.source")).set_value("file").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def element_under(at, widget_key: str):
    """The first element after the widget with this key in its block, captions skipped (its error slot)."""
    def walk(block):
        children = list(block.children.values())
        for i, node in enumerate(children):
            if getattr(node, "key", None) == widget_key:
                return next((n for n in children[i + 1:] if n.type != "caption"), None)
            if getattr(node, "children", None):
                found = walk(node)
                if found is not None:
                    return found
        return None

    return walk(at.main)


def page_text(at) -> str:
    return "\n".join(texts(at.error) + texts(at.warning) + texts(at.info) + texts(at.caption) + texts(at.markdown))


def assert_refused(at, message: str, widget_key: str) -> None:
    """One message under the widget and its copy by Start (red, or blue for a field still to fill in); no Start."""
    assert not at.exception, [e.value for e in at.exception]
    kind = "info" if "data.prompt_column" in widget_key else "error"
    shown = [m for m in texts(getattr(at, kind)) if m.startswith(message)]
    assert len(shown) == 2, (texts(at.error), texts(at.info))  # under the widget, and by Start
    if kind == "info":
        assert not at.error, texts(at.error)
    else:
        assert texts(at.error) == shown, texts(at.error)
    under = element_under(at, widget_key)
    assert under is not None and under.type == kind and str(under.value).startswith(message), under
    assert "\n" not in shown[0] and "Traceback" not in page_text(at)
    assert at.button(key="tb_setup_start").disabled
    assert text.CONFIG_OK not in texts(at.success)


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_instruction_data_is_named_under_the_data_widget_and_start_is_refused(case, jobs, tmp_path):
    content, message, widget_key = BAD[case]
    path = tmp_path / f"{case}.jsonl"
    path.write_text(content, encoding="utf-8")
    at = sft_setup()
    at.text_input(key=key("data.path")).set_value(str(path)).run()
    assert_refused(at, message.format(file=path.name), widget_key)


def test_a_bad_upload_is_named_as_uploaded_not_as_its_stored_copy(jobs, isolated_runs):
    at = sft_setup()
    content, message, widget_key = BAD["chat-without-assistant"]
    at.file_uploader(key=key("data.upload")).upload("chats.jsonl", content.encode(), "application/json").run()
    assert_refused(at, message.format(file="chats.jsonl"), key("data.upload"))
    stored = [p.name for p in (isolated_runs.parent / "uploads").iterdir()]
    assert len(stored) == 1 and stored[0] != "chats.jsonl" and stored[0] not in "\n".join(texts(at.error))


def test_mapping_the_columns_of_unrecognised_data_clears_the_error(jobs, tmp_path):
    content, message, widget_key = BAD["no-prompt-answer-fields"]
    path = tmp_path / "qa.jsonl"
    path.write_text(content, encoding="utf-8")
    at = sft_setup()
    at.text_input(key=key("data.path")).set_value(str(path)).run()
    assert_refused(at, message.format(file="qa.jsonl"), widget_key)
    at.selectbox(key=key("data.prompt_column", "question|reply")).set_value("question").run()
    at.selectbox(key=key("data.response_column", "question|reply")).set_value("reply").run()
    assert not at.exception and not at.error, texts(at.error)
    assert not at.button(key="tb_setup_start").disabled


MULTI = [
    {"role": "system", "content": "Answer in one short sentence."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris is the capital of France."},
    {"role": "user", "content": "And of Italy?"},
    {"role": "assistant", "content": "Rome is the capital of Italy."},
]
LONG = [{"role": "user", "content": "Please read this carefully. " * 400 + "What is the capital of Spain?"},
        {"role": "assistant", "content": "Madrid."}]

# name: (file bytes, max length to set or None)
GOOD_FILES = {
    "multi-turn": (jsonl([{"messages": MULTI[1:]}]).encode(), None),
    "system-turn": (jsonl([{"messages": MULTI[:3]}, GOOD]).encode(), None),
    "utf8-bom": (b"\xef\xbb\xbf" + jsonl([GOOD, {"messages": MULTI}]).encode("utf-8"), None),
    "prompt-longer-than-max-length": (jsonl([{"messages": LONG}, GOOD]).encode(), 64),
}


@pytest.mark.parametrize("case", list(GOOD_FILES), ids=list(GOOD_FILES))
def test_good_instruction_data_is_ready_to_train(case, jobs, tmp_path):
    content, max_length = GOOD_FILES[case]
    path = tmp_path / f"{case}.jsonl"
    path.write_bytes(content)
    at = sft_setup()
    if max_length is not None:
        at.number_input(key=key("model.max_length")).set_value(max_length).run()
    at.text_input(key=key("data.path")).set_value(str(path)).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, texts(at.error)
    assert text.SFT_FORMAT_FOUND.format(shape="").split(":")[0] in page_text(at)
    assert text.SFT_ROWS.format(rows=ROWS) in texts(at.caption)
    assert text.CONFIG_OK in texts(at.success)
    assert not at.button(key="tb_setup_start").disabled
    if max_length is not None:  # the long prompts are cut to fit (from the left, keeping the answer), not refused
        assert at.session_state["tb_config"].model.max_length == max_length
        assert any("longer than the model's max length" in i for i in texts(at.info)), texts(at.info)


# ---- the CLI ------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", [c for c in BAD if c != "chat-without-assistant"])
def test_the_cli_refuses_bad_instruction_data_in_one_line(case, tmp_path, capsys, isolated_runs):
    from core.__main__ import EXIT_USER_ERROR, main

    content, message, _ = BAD[case]
    path = tmp_path / f"{case}.jsonl"
    path.write_text(content, encoding="utf-8")
    code = main(["train", "--task", "sft", "--dataset", str(path)])
    _, err = capsys.readouterr()
    assert code == EXIT_USER_ERROR, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: " + message.format(file=path.name)), lines[0]
    assert not (isolated_runs.exists() and any(Path(isolated_runs).iterdir()))  # refused before a run folder
