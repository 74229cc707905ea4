"""Instruction data for fine-tuning (task `sft`): chats, pairs and labelled texts, made ready to train.

Shapes, recognised by their column names (any case); every row becomes a chat, a list of
{"role", "content"} dicts with the roles system, user and assistant:
- `messages`: a column of chats, the shape hosted fine-tuning APIs take, multi-turn, with or without
  a system turn (ShareGPT's `conversations` of from/value with human/gpt too). In a CSV a chat
  arrives as a JSON string; from Parquet as an array of structs.
- `prompt_completion`: `prompt` and `completion` (or `response`) columns, strings or message lists.
- `instruction`: `instruction`, optional `input` (or `context`) and `output` (or `response`) columns;
  the input follows the instruction after a blank line.
- `mapped`: any prompt and response columns the user names.
A `system` column adds a system turn to the last three. A labelled classification frame (text and
label columns) becomes chats through a prompt template with {text} and {labels}, the answer being
the label's name (conversations_from_labels).

Bad rows are refused before anything trains, all rows checked, the first named with its file, its
1-based line (JSONL) or row (other formats) and the field, e.g. "chats.jsonl, line 3, field
'messages[1].role': ...". (Blank lines in a JSONL file are skipped on reading, so they are not counted.)

Tokenising (encode_conversation) renders the chat with the tokenizer's own chat template. A tokenizer
without one gets PLAIN_CHAT_TEMPLATE: each message is a "### Role:" line, its content and a blank
line; an assistant answer ends with the tokenizer's end-of-sequence token, so that the model learns
to stop; generation starts after "### Assistant:\\n":

    ### System:
    Answer in one word.

    ### User:
    What is the capital of France?

    ### Assistant:
    Paris</s>

The loss is on the assistant turns only (labels -100 on the system and user turns and on the
template's role headers up to the generation prompt), each turn of a multi-turn chat trained, its
end-of-turn token included; train_on_prompt=True trains every token. A prompt longer than max_length
is cut from the left (oldest tokens first, keeping the system turn and the first user header when
they fit), so that the answer stays whole; an answer longer than max_length on its own is cut at
the right.

What comes from TRL, and what does not: a template with `{% generation %}` markers (TRL's training
variants of the templates it knows, from training_chat_template) gives its assistant mask through
transformers' `return_assistant_tokens_mask`. SmolLM2's ChatML template has no markers and TRL has
no variant of it, so the other spans are found here (see _prefix_spans). TRL's apply_chat_template
is not used: it returns the prompt and one completion as strings, where the masks need token spans
of every turn, so transformers' apply_chat_template is called directly. Nor are its row helpers
(is_conversational, maybe_convert_to_chatml): importing trl.data_utils loads torch and transformers'
model code (over 10 s on a 2-core machine), the Setup page validates uploads with this module and
never imports torch, and the checks here also name the line and field of a bad row.

Longer than 500 lines: reading rows and tokenising them share the chat shape, its roles and its
errors. If it grows, the tokenising half (from encode_conversation on) is the piece to move out.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.config import DEFAULT_PROMPT_TEMPLATE, check_prompt_template
from core.errors import ConfigError, DataError, ModelError

ROLES = ("system", "user", "assistant")
#: The shapes detect_format names, with the words the error messages use for them.
FORMATS: dict[str, str] = {
    "messages": "a 'messages' column of chats like [{\"role\": \"user\", \"content\": \"...\"}, "
                "{\"role\": \"assistant\", \"content\": \"...\"}]",
    "prompt_completion": "'prompt' and 'completion' columns",
    "instruction": "'instruction' and 'output' columns, with an optional 'input'",
    "mapped": "any two columns mapped as the prompt and the response",
}
# Column names per shape, first match wins: (prompt, answer, extra input).
_CHAT_COLUMNS = ("messages", "conversations")
_PAIR_COLUMNS = {
    "prompt_completion": (("prompt",), ("completion", "response"), ()),
    "instruction": (("instruction",), ("output", "response"), ("input", "context")),
}
_ROLE_ALIASES = {"human": "user", "gpt": "assistant"}  # ShareGPT's names
_ROLE_HINT = "use system, user or assistant (ShareGPT's human and gpt work too)"


#: The chat template of a tokenizer that has none (see the module docstring).
PLAIN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '### ' + message['role'] | capitalize + ':\n' + message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token or '' }}{% endif %}"
    "{{ '\n\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Assistant:\n' }}{% endif %}"
)
IGNORE_INDEX = -100  # the label PyTorch's cross-entropy (and so every HF causal LM) skips
# The same test as TRL's has_generation_markers, written here so that encoding needs no trl import.
_GENERATION_MARKER = re.compile(r"\{%-?\s*generation\s*-?%\}")
_INT_LIKE = re.compile(r"^[+-]?\d+$")

Chat = list[dict[str, str]]


# ---- shapes and rows --------------------------------------------------------------------------

def detect_format(columns: Iterable[Any], *, prompt_column: str | None = None,
                  response_column: str | None = None, source: str | None = None) -> str:
    """The shape of instruction data with these columns: one of FORMATS; a DataError (naming `source`, the file) when none fits."""
    columns = [str(c) for c in columns]
    if prompt_column or response_column:
        for value, field in ((prompt_column, "data.prompt_column"), (response_column, "data.response_column")):
            if not value:
                raise DataError("Map both the prompt column and the response column, or neither.", field=field)
            if value not in columns:
                raise DataError(f"The column '{value}' is not in the data; its columns are {_listed(columns)}.",
                                field=field)
        return "mapped"
    lower = {c.lower() for c in columns}
    if any(name in lower for name in _CHAT_COLUMNS):
        return "messages"
    for shape, (prompts, answers, _) in _PAIR_COLUMNS.items():
        if lower & set(prompts) and lower & set(answers):
            return shape
    shapes = "; ".join(FORMATS.values())
    raise DataError(
        f"No prompt and answer fields were recognised{f' in {source}' if source else ''} among the columns "
        f"{_listed(columns)}. Tuneboard takes "
        f"{shapes}. Rename the columns, or map the prompt and response columns.",
        field="data.prompt_column",
    )


def instruction_columns(columns: Iterable[Any], *, prompt_column: str | None = None,
                        response_column: str | None = None) -> list[str]:
    """The columns whose cells make the chats of instruction data with these columns (as conversations_from_frame reads them)."""
    columns = [str(c) for c in columns]
    shape = detect_format(columns, prompt_column=prompt_column, response_column=response_column)
    by_lower = {c.lower(): c for c in columns}

    def first(names: Sequence[str]) -> str | None:
        return next((by_lower[n] for n in names if n in by_lower), None)

    if shape == "messages":
        return [c for c in (first(_CHAT_COLUMNS),) if c]
    if shape == "mapped":
        used = [str(prompt_column), str(response_column)]
    else:
        prompts, answers, extras = _PAIR_COLUMNS[shape]
        used = [first(prompts), first(answers), first(extras)]
    return [c for c in used + [first(("system",))] if c]


def conversations_from_frame(frame: pd.DataFrame, *, prompt_column: str | None = None,
                             response_column: str | None = None, source: str | None = None) -> list[Chat]:
    """Every row of instruction data (as read_table returns it) as a chat; a DataError names the first bad row."""
    shape = detect_format(frame.columns, prompt_column=prompt_column, response_column=response_column,
                          source=_source_name(frame, source))
    if shape == "messages":
        column = str(_column(frame, _CHAT_COLUMNS))
        chats = frame[column].tolist()

        def build(row: int) -> Chat:
            return _checked(_messages(chats[row], column), column, indexed=True)
    else:
        if shape == "mapped":
            prompt, answer, extra = str(prompt_column), str(response_column), None
        else:
            prompts, answers, extras = _PAIR_COLUMNS[shape]
            prompt, answer, extra = str(_column(frame, prompts)), str(_column(frame, answers)), _column(frame, extras)
        system = _column(frame, ("system",))
        cols = {key: frame[col].tolist() if col else None
                for key, col in (("p", prompt), ("a", answer), ("x", extra), ("s", system))}

        def build(row: int) -> Chat:
            chat = [] if cols["s"] is None else _system_turn(cols["s"][row], str(system))
            asked = _turns(cols["p"][row], prompt, "user")
            if cols["x"] is not None and not _missing(cols["x"][row]) and _text(cols["x"][row], str(extra)).strip():
                asked[-1]["content"] += "\n\n" + cols["x"][row]  # Alpaca's input follows its instruction
            return _checked(chat + asked + _turns(cols["a"][row], answer, "assistant"), answer, indexed=False)
    return _collect(frame, source, build)


def conversations_from_labels(frame: pd.DataFrame, *, text_column: str = "text", label_column: str = "label",
                              label_names: Sequence[str] | None = None, template: str = DEFAULT_PROMPT_TEMPLATE,
                              source: str | None = None) -> list[Chat]:
    """A labelled classification frame as chats: the templated text asks, the label's name answers."""
    check_prompt_template(template)
    for column, field in ((text_column, "data.text_column"), (label_column, "data.label_column")):
        if column not in frame.columns:
            raise DataError(f"The column '{column}' is not in the data; its columns are {_listed(frame.columns)}.",
                            field=field)
    names = classification_labels(frame, label_column, label_names)
    texts, labels = frame[text_column].tolist(), frame[label_column].tolist()
    listed = ", ".join(names)

    def build(row: int) -> Chat:
        text = _text(texts[row], text_column)
        if not text.strip():
            raise _BadRow(text_column, "is empty: remove rows without text (the Data page's integrity checks do)")
        if _missing(labels[row]):
            raise _BadRow(label_column, "is empty: label the row or remove it")
        answer = _label_name(labels[row], names, label_column)
        return [{"role": "user", "content": template.format(text=text, labels=listed)},
                {"role": "assistant", "content": answer}]
    return _collect(frame, source, build)


def run_conversations(frame: pd.DataFrame, data_cfg: Any, *, source: str | None = None,
                      labelled: bool | None = None) -> tuple[list[Chat], str, dict[str, int]]:
    """A run's rows as chats: (chats, shape, rows dropped by reason); a DataError names the first bad row.

    `data_cfg` is a DataConfig. The shape is one of FORMATS, or "labels" for a labelled classification
    frame (the synthetic reviews, or a file whose text and label columns are there and no instruction
    fields are): its rows without text or label are dropped (and counted) as a classification run
    drops them, then the prompt template asks and the label's name answers. `labelled` forces the choice.
    Then, as curation drops a repeated text, a chat that repeats an earlier one turn for turn is dropped
    (counted as "duplicate") unless data.curation keeps duplicates (drop_duplicates off, or flag mode).
    """
    chats, shape, dropped = _run_chats(frame, data_cfg, source=source, labelled=labelled)
    curation = getattr(data_cfg, "curation", None)
    if curation is not None and curation.drop_duplicates and curation.check_action != "flag" and chats:
        repeated = repeated_chats(chats, normalise=curation.normalise_duplicates)
        if repeated.any():
            chats = [chat for chat, again in zip(chats, repeated, strict=True) if not again]
            dropped = {**dropped, "duplicate": int(repeated.sum())}
    return chats, shape, dropped


def repeated_chats(chats: Sequence[Chat], *, normalise: bool = False) -> np.ndarray:
    """True for each chat that repeats an earlier one: the same roles and texts in the same order.

    normalise: texts that differ only in case or whitespace are the same (data.curation.normalise_duplicates).
    """
    from core.data.cells import arrow_text, repeats

    # Unit and record separators cannot occur in typed text, so two different chats never share a key.
    keys = arrow_text(["\x1e".join(f"{m['role']}\x1f{m['content']}" for m in chat) for chat in chats])
    return repeats(keys, np.ones(len(chats), dtype=bool), normalise=normalise)


def _run_chats(frame: pd.DataFrame, data_cfg: Any, *, source: str | None,
               labelled: bool | None) -> tuple[list[Chat], str, dict[str, int]]:
    """run_conversations before repeated chats are dropped."""
    prompt, response = data_cfg.prompt_column or None, data_cfg.response_column or None
    if labelled is None:
        labelled = data_cfg.source == "synthetic"
        if not labelled and not (prompt or response):
            try:
                detect_format(frame.columns, source=_source_name(frame, source))
            except DataError:
                if data_cfg.text_column not in frame.columns or data_cfg.label_column not in frame.columns:
                    raise
                labelled = True
    if not labelled:
        chats = conversations_from_frame(frame, prompt_column=prompt, response_column=response, source=source)
        return chats, detect_format(frame.columns, prompt_column=prompt, response_column=response), {}
    text, label = data_cfg.text_column, data_cfg.label_column
    dropped: dict[str, int] = {}
    if text in frame.columns and label in frame.columns:
        names = classification_labels(frame, label)  # from every row, so dropping rows keeps the label set
        no_text = frame[text].map(lambda v: _missing(v) or not str(v).strip())
        no_label = ~no_text & frame[label].map(lambda v: _missing(v) or not str(v).strip())
        dropped = {k: int(v.sum()) for k, v in (("null_text", no_text), ("missing_label", no_label)) if v.any()}
        kept = frame[~(no_text | no_label)]
        kept.attrs = dict(frame.attrs)
        frame = kept
    else:
        names = None
    chats = conversations_from_labels(frame, text_column=text, label_column=label, label_names=names,
                                      template=data_cfg.prompt_template, source=source)
    return chats, "labels", dropped


def conversation_preview(chat_json: str, limit: int = 300) -> str:
    """A chat stored as JSON (the "text" column of instruction data) as one readable line: its last prompt, then the answer."""
    try:
        chat = json.loads(chat_json)
    except (TypeError, ValueError):
        return str(chat_json)
    if not isinstance(chat, list) or not chat:
        return str(chat_json)
    answers = [i for i, turn in enumerate(chat) if isinstance(turn, dict) and turn.get("role") == "assistant"]
    last = answers[-1] if answers else len(chat)
    prompts = [turn for turn in chat[:last] if isinstance(turn, dict) and turn.get("role") == "user"]
    prompt = " ".join(str(prompts[-1].get("content", "")).split()) if prompts else ""
    answer = " ".join(str(chat[last].get("content", "")).split()) if answers else ""
    line = f"{prompt} → {answer}" if answer else prompt
    return line if len(line) <= limit else line[: limit - 1] + "…"


def classification_labels(frame: pd.DataFrame, label_column: str = "label",
                          label_names: Sequence[str] | None = None) -> list[str]:
    """The label names in id order: given, else the frame's attrs["label_names"], else its sorted values."""
    if label_names:
        return [str(n) for n in label_names]
    if frame.attrs.get("label_names"):
        return [str(n) for n in frame.attrs["label_names"]]
    values = {str(v).strip() for v in frame[label_column].tolist() if not _missing(v) and str(v).strip()}
    numeric = all(_INT_LIKE.match(v) for v in values)
    return sorted(values, key=lambda v: int(v) if numeric else v)


def classification_prompt(text: str, label_names: Sequence[str], template: str = DEFAULT_PROMPT_TEMPLATE) -> str:
    """The user turn that asks for one of `label_names` for `text`."""
    return check_prompt_template(template).format(text=text, labels=", ".join(label_names))


class _BadRow(Exception):
    """A problem with one row: the field it is in and what to do (turned into a DataError by _collect)."""

    def __init__(self, field: str, problem: str):
        super().__init__(problem)
        self.field, self.problem = field, problem


def _collect(frame: pd.DataFrame, source: str | None, build: Callable[[int], Chat]) -> list[Chat]:
    """build(row) for every row; the first bad row named in a DataError that counts the others."""
    report = frame.attrs.get("read_report") or {}
    name = _source_name(frame, source) or "the data"
    unit = "line" if report.get("format") == "jsonl" else "row"
    if len(frame) == 0:
        raise DataError(f"{name} has no rows: add examples to train on.", field="data.path")
    chats, first, bad = [], None, 0
    for row in range(len(frame)):
        try:
            chats.append(build(row))
        except _BadRow as err:
            bad += 1
            first = first or f"{name}, {unit} {row + 1}, field '{err.field}': {err.problem}."
    if first:
        more = f" {bad - 1} other {unit}{'s have' if bad > 2 else ' has'} problems too." if bad > 1 else ""
        raise DataError(first + more, field="data.path")
    return chats


def _source_name(frame: pd.DataFrame, source: str | None) -> str | None:
    """The name errors give the data: `source`, else the file read_table read the frame from."""
    report = frame.attrs.get("read_report") or {}
    return source or (Path(str(report["path"])).name if report.get("path") else None)


def _column(frame: pd.DataFrame, names: Sequence[str]) -> str | None:
    """The frame's column with the first of `names`, in any case."""
    by_lower = {str(c).lower(): str(c) for c in frame.columns}
    return next((by_lower[n] for n in names if n in by_lower), None)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _text(value: Any, field: str, what: str = "it") -> str:
    if _missing(value):
        raise _BadRow(field, f"is missing (null): write {what}, or remove the row")
    if not isinstance(value, str):
        parts = " (a list of content parts: images and tool calls are not supported)" if isinstance(
            value, (list, tuple, dict, np.ndarray)) else ""
        raise _BadRow(field, f"is {type(value).__name__}{parts}, not text: write {what} as one string")
    return value


def _system_turn(value: Any, field: str | None) -> Chat:
    return [] if _missing(value) or not _text(value, str(field)).strip() else [{"role": "system", "content": value}]


def _turns(value: Any, field: str, role: str) -> Chat:
    """A prompt or answer cell: text (one turn of `role`) or, as in TRL's conversational pairs, a message list."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return _messages(value, field)
    what = "the answer the model should learn" if role == "assistant" else "the prompt the model answers"
    text = _text(value, field, what)
    if not text.strip():
        raise _BadRow(field, f"is {'an empty answer' if role == 'assistant' else 'empty'}: write {what}, "
                      "or remove the row")
    return [{"role": role, "content": text}]


def _messages(value: Any, column: str) -> Chat:
    """A chat cell (list, numpy array from Parquet or a JSON string from CSV) as role/content dicts."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise _BadRow(column, f"is not valid JSON ({err.msg} at character {err.pos}): write the chat as a "
                          'JSON list like [{"role": "user", "content": "..."}, ...]') from None
    if isinstance(value, np.ndarray):  # a Parquet list column
        value = value.tolist()
    if _missing(value) or not isinstance(value, (list, tuple)) or not value:
        raise _BadRow(column, f"holds {'nothing' if _missing(value) or not value else type(value).__name__}, "
                      'not a list of messages like [{"role": "user", "content": "..."}, ...]')
    chat = []
    for i, message in enumerate(value):
        where = f"{column}[{i}]"
        if not isinstance(message, Mapping):
            raise _BadRow(where, f"is {type(message).__name__}, not a message with a role and a content")
        role = next((message[k] for k in ("role", "from") if message.get(k) is not None), None)
        key = next((k for k in ("content", "value") if message.get(k) is not None), "content")
        if not isinstance(role, str):
            raise _BadRow(f"{where}.role", f"is {'missing' if role is None else repr(role)}: {_ROLE_HINT}")
        name = _ROLE_ALIASES.get(role.strip().lower(), role.strip().lower())
        if name not in ROLES:
            raise _BadRow(f"{where}.role", f"is '{role}', a role Tuneboard does not train on: {_ROLE_HINT}")
        chat.append({"role": name, "content": _text(message.get(key), f"{where}.{key}", "the message's text")})
    return chat


def _checked(chat: Chat, field: str, *, indexed: bool) -> Chat:
    """The chat, when it can train: a user turn first, at least one answer, no empty answers.

    `indexed`: the chat is the list in `field`, so a message is named field[i]."""
    def where(i: int, key: str) -> str:
        return f"{field}[{i}].{key}" if indexed else field

    answers = [i for i, m in enumerate(chat) if m["role"] == "assistant"]
    if not answers:
        raise _BadRow(field, "has no assistant turn: add the answer the model should learn as a message with "
                      "the role 'assistant'")
    first = next(i for i, m in enumerate(chat) if m["role"] != "system")
    if chat[first]["role"] == "assistant":
        raise _BadRow(where(first, "role"), "starts the chat with an assistant turn: put the user's message first")
    for i in answers:
        if not chat[i]["content"].strip():
            raise _BadRow(where(i, "content"), "is an empty answer: write the response the model should learn, "
                          "or remove it")
    return chat


def _label_name(value: Any, names: Sequence[str], field: str) -> str:
    text = str(value).strip()
    if text in names:
        return text
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    if _INT_LIKE.match(text) and 0 <= int(text) < len(names):
        return names[int(text)]
    raise _BadRow(field, f"is {value!r}, not one of the labels ({', '.join(names)}): fix the label or the label names")


def _listed(columns: Iterable[Any]) -> str:
    names = [f"'{c}'" for c in columns]
    return ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "") if names else "(none)"


# ---- tokenising for training ------------------------------------------------------------------

def encode_conversation(tokenizer: Any, messages: Sequence[Mapping[str, str]], max_length: int, *,
                        train_on_prompt: bool = False, chat_template: str | None = None) -> dict[str, Any]:
    """input_ids, attention_mask and labels (-100 off the assistant turns) of a chat, fitted into max_length.

    Also truncated_prompt (the prompt lost tokens on the left: the caller counts and logs them) and
    truncated_answer (the answer alone was longer than max_length and lost its end). `chat_template`
    overrides the tokenizer's (pass training_chat_template(tokenizer), computed once per run).
    """
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ConfigError(f"The maximum length must be a positive number of tokens, not {max_length!r}.",
                          field="model.max_length")
    chat = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    if not any(m["role"] == "assistant" for m in chat) or next(
            (m["role"] for m in chat if m["role"] != "system"), None) != "user":
        raise DataError("A conversation to train on needs a user turn first and at least one assistant turn.",
                        field="data.path")
    template = chat_template or _own_template(tokenizer) or PLAIN_CHAT_TEMPLATE
    if _GENERATION_MARKER.search(template):
        ids, spans = _marked_spans(tokenizer, chat, template)
    else:
        ids, spans = _prefix_spans(tokenizer, chat, template)
    spans = [(start, end) for start, end in spans if end > start]
    if not spans:
        raise ModelError("The chat template renders no assistant answer, so there is nothing to train on: choose "
                         "a model whose chat template writes the assistant's turns.", field="model.source")
    keep, truncated_prompt, truncated_answer = _window(tokenizer, chat, template, ids, spans[-1][0], max_length)
    trained = [train_on_prompt] * len(ids)
    for start, end in spans:
        trained[start:end] = [True] * (end - start)
    return {
        "input_ids": [ids[i] for i in keep],
        "attention_mask": [1] * len(keep),
        "labels": [ids[i] if trained[i] else IGNORE_INDEX for i in keep],
        "truncated_prompt": truncated_prompt,
        "truncated_answer": truncated_answer,
    }


def rendered_length(tokenizer: Any, messages: Sequence[Mapping[str, str]], chat_template: str | None = None) -> int:
    """Tokens of the whole chat as encode_conversation renders it, before any truncation."""
    chat = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    template = chat_template or _own_template(tokenizer) or PLAIN_CHAT_TEMPLATE
    return len(_ids(tokenizer, _render(tokenizer, chat, template)))


def training_chat_template(tokenizer: Any) -> str | None:
    """A template with {% generation %} markers for this tokenizer (its own, or TRL's variant), else None."""
    own = _own_template(tokenizer)
    if own is None or _GENERATION_MARKER.search(own):
        return own
    # TRL keeps marked, prefix-preserving variants of the templates of the models it knows (Qwen,
    # Llama 3, Gemma, Phi-3, ...). Importing it loads torch and transformers' model code, which the
    # training process has loaded anyway.
    from jinja2 import TemplateError
    from trl.chat_template_utils import get_training_chat_template

    try:
        return get_training_chat_template(tokenizer)
    except (ValueError, TemplateError):
        return None  # a template TRL has no variant of, e.g. SmolLM2's: _prefix_spans finds the answers


def _own_template(tokenizer: Any) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # named variants: "default" is the one for plain chats
        template = template.get("default")
    return template or None


def _render(tokenizer: Any, chat: Chat, template: str, *, generation_prompt: bool = False) -> str:
    from jinja2 import TemplateError

    try:
        return tokenizer.apply_chat_template(chat, chat_template=template, tokenize=False,
                                             add_generation_prompt=generation_prompt)
    except TemplateError as err:
        raise DataError(f"The model's chat template rejects a conversation ({err}): change what it objects to "
                        "(some templates take no system turn), or choose another model.", field="data.path") from None


def _ids(tokenizer: Any, text: str) -> list[int]:
    # add_special_tokens=False as in apply_chat_template: templates write their own BOS.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _common_prefix(a: Sequence[Any], b: Sequence[Any]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _marked_spans(tokenizer: Any, chat: Chat, template: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Ids and assistant spans from transformers' mask of the template's {% generation %} blocks."""
    from jinja2 import TemplateError

    try:
        out = tokenizer.apply_chat_template(chat, chat_template=template, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
    except TemplateError as err:
        raise DataError(f"The model's chat template rejects a conversation ({err}): change what it objects to, "
                        "or choose another model.", field="data.path") from None
    ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
    spans, start = [], None
    for i, flag in enumerate(mask + [0]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            spans.append((start, i))
            start = None
    return ids, spans


def _prefix_spans(tokenizer: Any, chat: Chat, template: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Ids and assistant spans of a template without generation markers (SmolLM2's ChatML, the plain one).

    An assistant turn i spans from the end of the chat before it, rendered with the generation prompt,
    to the end of the chat up to and including it; those two renderings are tokenised and must be
    prefixes of the whole chat's tokens. Where they are not (a template that renders earlier turns
    differently once later ones follow, or tokens that merge across the boundary), the turn is found
    in the text and mapped to tokens through the offset mapping.
    """
    full_text = _render(tokenizer, chat, template)
    ids = _ids(tokenizer, full_text)
    spans, by_chars, cursor = [], [], 0
    for i, message in enumerate(chat):
        if message["role"] != "assistant":
            continue
        start_text = _render(tokenizer, chat[:i], template, generation_prompt=True)
        last = i == len(chat) - 1
        end_text = full_text if last else _render(tokenizer, chat[: i + 1], template)
        start_ids = _ids(tokenizer, start_text)
        end_ids = ids if last else _ids(tokenizer, end_text)
        if _common_prefix(end_ids, ids) == len(end_ids) and _common_prefix(start_ids, end_ids) == len(start_ids):
            spans.append((len(start_ids), len(end_ids)))
            continue
        begin, end = _char_span(full_text, start_text, end_text, message["content"], cursor)
        by_chars.append((begin, end))
        cursor = end
    if by_chars:
        spans += _token_spans(tokenizer, full_text, ids, by_chars)
    return ids, sorted(spans)


def _char_span(full_text: str, start_text: str, end_text: str, content: str, cursor: int) -> tuple[int, int]:
    """Where an assistant turn lies in the whole chat's text, from `cursor` on."""
    if end_text.startswith(start_text) and full_text.startswith(end_text):
        return len(start_text), len(end_text)
    turn = end_text[_common_prefix(start_text, end_text):]
    # The turn as rendered last may carry extras the template drops from earlier turns (Qwen3 drops
    # their reasoning): then look for the content and what follows it (the end-of-turn token).
    at = turn.rfind(content)
    for piece in (turn, turn[at:] if at >= 0 else content, content):
        found = full_text.find(piece, cursor)
        if piece and found >= 0:
            return found, found + len(piece)
    raise ModelError("The chat template does not write an assistant answer as given, so its tokens cannot be "
                     "found: choose another model or a plain template.", field="model.source")


def _token_spans(tokenizer: Any, text: str, ids: list[int], char_spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Token ranges that overlap character ranges of `text`, from the tokenizer's offset mapping."""
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError("This model's tokenizer has no offset mapping (it is not a fast tokenizer), which its chat "
                         "template needs to find the answers: choose a model with a fast tokenizer.",
                         field="model.source")
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    spans = []
    for begin, end in char_spans:
        inside = [t for t, (a, b) in enumerate(offsets) if a < end and b > begin]
        if inside:
            spans.append((inside[0], inside[-1] + 1))
    return spans


def _window(tokenizer: Any, chat: Chat, template: str, ids: list[int], answer: int,
            max_length: int) -> tuple[list[int], bool, bool]:
    """(token positions kept, prompt cut, answer cut) fitting the chat into max_length; `answer` is where the
    last answer starts. Everything from it on stays when it fits; the oldest prompt tokens go first."""
    n = len(ids)
    if n <= max_length:
        return list(range(n)), False, False
    tail = n - answer
    if tail >= max_length:
        return list(range(answer, answer + max_length)), True, tail > max_length
    head = _head_length(tokenizer, chat, template, ids)
    if head and head + tail <= max_length:
        return list(range(head)) + list(range(n - (max_length - head), n)), True, False
    return list(range(n - max_length, n)), True, False


def _head_length(tokenizer: Any, chat: Chat, template: str, ids: list[int]) -> int:
    """Tokens of the system turn (given, or the template's default) and the first user header.

    Found as what two one-turn chats that differ only in their user text share, so no knowledge of
    the template's markup is needed.
    """
    system = chat[:1] if chat[0]["role"] == "system" else []
    try:
        a, b = (_ids(tokenizer, _render(tokenizer, system + [{"role": "user", "content": word}], template))
                for word in ("A", "B"))
    except DataError:
        return 0
    return _common_prefix(a[: _common_prefix(a, b)], ids)


# ---- answers from a small set -----------------------------------------------------------------

def normalise_answer(text: Any) -> str:
    """The form exact match compares: lower case, single spaces, no punctuation or spaces at either end."""
    if _missing(text):
        return ""
    text = " ".join(unicodedata.normalize("NFKC", str(text)).lower().split())
    start, end = 0, len(text)
    while end > start and (text[end - 1].isspace() or unicodedata.category(text[end - 1]).startswith("P")):
        end -= 1
    while start < end and (text[start].isspace() or unicodedata.category(text[start]).startswith("P")):
        start += 1
    return text[start:end]


def map_to_label(answer: Any, label_names: Sequence[str]) -> str | None:
    """The label a generated answer names (ignoring case, spacing, punctuation, & for and), else None.

    An answer that equals no label counts as the one label it contains as whole words ("The answer is
    Sports." -> sports); one that contains none, or several, maps to None.
    """
    exact = normalise_answer(answer)
    if not exact:
        return None
    for name in label_names:
        if normalise_answer(name) == exact:
            return name
    loose = _loose(answer)
    forms = {name: _loose(name) for name in label_names if _loose(name)}
    for name, form in forms.items():
        if form == loose:
            return name
    found = [name for name, form in forms.items() if f" {form} " in f" {loose} "]
    # "money and business" contains "business": a label found only inside another found one does not count.
    found = [n for n in found if not any(forms[o] != forms[n] and f" {forms[n]} " in f" {forms[o]} " for o in found)]
    return found[0] if len(found) == 1 else None


def _loose(text: Any) -> str:
    """Lower-case words only, '&' read as 'and': 'Science & Technology!' -> 'science and technology'."""
    text = normalise_answer(text).replace("&", " and ")
    return " ".join(re.sub(r"[\W_]+", " ", text).split())
