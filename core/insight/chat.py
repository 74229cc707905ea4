"""The chat playground's engine: a causal-LM or sft run's base and fine-tuned models each answer their own chat.

    chat_unavailable_reason  why a run cannot chat (another task, no saved model yet), as a sentence; else None
    chat_settings            the playground's knobs as GenerationSettings (CHAT_DEFAULTS for the rest), checked
    conversation             a side's history as the messages its model sees: the system prompt first
    load_chat_models         both models into the shared caches, so that the first answer starts at once
    stream_reply             one side's answer in pieces of new text, for st.write_stream
    reply                    the same answer, complete (tests, scripts)

Each side sees only its own history: the base model its own earlier answers, the fine-tuned model its own,
with the user's messages in both. A chat is rendered by core.insight.answers.render_prompts: the model's chat
template, or core.data.instructions.PLAIN_CHAT_TEMPLATE when it has none (the template instruction tuning
trains such a model on). An answer ends at the model's end-of-sequence or end-of-turn token, at a plain-template
role header the model starts writing by itself ("### User:"), or after max new tokens, at most
CHAT_MAX_NEW_TOKENS. A conversation that no longer fits the model's positions loses its oldest exchanges.
The models come from core.insight.generate.load_models (the Compare page's caches); torch and transformers are
imported inside the functions, as there: the Chat page imports this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.errors import ConfigError, ModelError, RunError
from core.insight.answers import render_prompts
from core.insight.generate import (
    BASE,
    GENERATIVE_TASKS,
    TUNED,
    GenerationSettings,
    load_models,
    stream_continuation,
)
from core.present import text

# A 135M model on 2 CPU cores writes roughly 20-40 tokens a second: an answer takes at most ~10 s per side.
CHAT_MAX_NEW_TOKENS = 256
# Not the Compare panel's repetition guard: its n-gram ban covers the whole rendered chat, template headers and
# earlier turns included, so it can forbid the very end-of-turn token and leave an answer running to the cap.
# A mild repetition penalty alone keeps a small model's greedy answer from looping.
CHAT_DEFAULTS = GenerationSettings(max_new_tokens=96, temperature=0.7, top_p=0.95, seed=0,
                                   repetition_penalty=1.1, no_repeat_ngram_size=0)
SIDES = (BASE, TUNED)
ROLES = ("user", "assistant")
# End-of-turn tokens of common chat templates (ChatML, Llama 3, Gemma, Phi-3). A model may name only its
# end-of-text token as end-of-sequence and would then write past the end of its turn.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")
# The role headers PLAIN_CHAT_TEMPLATE writes: a model without a template of its own may go on to write the
# user's next message itself.
PLAIN_TURN_HEADERS = ("\n### User:", "\n### System:", "\n### Assistant:")


def chat_unavailable_reason(run_path: str | Path) -> str | None:
    """Why this run cannot chat (not a causal-LM or sft run, no saved model yet), as a sentence; None when it can."""
    from core.models.export import tuned_model_path

    folder = _run_folder(run_path)
    cfg = folder.config()
    if cfg.task not in GENERATIVE_TASKS:
        return text.CHAT_NOT_GENERATIVE.format(
            run_id=folder.run_id, task=text.TASK_NAMES.get(cfg.task, cfg.task),
            causal=text.TASK_NAMES["causal"], sft=text.TASK_NAMES["sft"],
        )
    if tuned_model_path(folder) is None:
        return text.CHAT_NO_MODEL.format(run_id=folder.run_id)
    return None


def chat_settings(*, temperature: float, top_p: float, max_new_tokens: int) -> GenerationSettings:
    """CHAT_DEFAULTS with the playground's three knobs (temperature 0 = greedy), checked."""
    return checked_settings(replace(CHAT_DEFAULTS, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens))


def checked_settings(settings: GenerationSettings) -> GenerationSettings:
    """Return the settings, or raise ConfigError for one out of range (max new tokens: at most CHAT_MAX_NEW_TOKENS)."""
    settings = settings.validate()
    if settings.max_new_tokens > CHAT_MAX_NEW_TOKENS:
        raise ConfigError(
            f"A chat answer can be at most {CHAT_MAX_NEW_TOKENS} new tokens (got {settings.max_new_tokens}): longer "
            "ones would hold the page for minutes on a CPU.",
            field="max_new_tokens",
        )
    return settings


def conversation(history: Sequence[Mapping[str, str]], system: str = "") -> list[dict[str, str]]:
    """The messages a side's model sees: the system prompt (when not blank), then the history's user and
    assistant turns, the last being the user's message to answer."""
    messages = [{"role": "system", "content": system.strip()}] if system and system.strip() else []
    for number, turn in enumerate(history, start=1):
        role = str(turn.get("role", ""))
        if role not in ROLES:
            raise ConfigError(
                f"Turn {number} of the chat has the role {role!r}; a turn is 'user' or 'assistant' (the system "
                "prompt is passed on its own): clear the chat and start again.",
                field="history",
            )
        messages.append({"role": role, "content": str(turn.get("content") or "")})
    if not history or messages[-1]["role"] != "user" or not messages[-1]["content"].strip():
        raise ConfigError("Write a message for the models to answer.", field="message")
    return messages


def load_chat_models(run_path: str | Path) -> None:
    """Load the run's base and fine-tuned models into the shared caches (typed errors for a run that cannot chat)."""
    load_models(_run_folder(run_path).path)


def stream_reply(run_path: str | Path, side: str, history: Sequence[Mapping[str, str]],
                 settings: GenerationSettings, *, system: str = "") -> Iterator[str]:
    """Yield the answer of `side` ("base" or "tuned") to its chat, in pieces of new text (what st.write_stream takes)."""
    if side not in SIDES:
        raise ConfigError(f"A chat side is 'base' or 'tuned' (got {side!r}).", field="side")
    messages = conversation(history, system)
    settings = checked_settings(settings)
    base, tuned = load_models(_run_folder(run_path).path)
    model, tokenizer = base if side == BASE else tuned
    prompt = fitted_prompt(model, tokenizer, messages, settings.max_new_tokens)
    stops = () if getattr(tokenizer, "chat_template", None) else PLAIN_TURN_HEADERS
    texts = stream_continuation(model, tokenizer, prompt, settings, add_special_tokens=False,
                                stop_token_ids=stop_token_ids(model, tokenizer), stop_strings=stops)
    yield from new_pieces(texts, stops)


def reply(run_path: str | Path, side: str, history: Sequence[Mapping[str, str]], settings: GenerationSettings,
          *, system: str = "") -> str:
    """The answer of `side` to its chat, complete and stripped."""
    return "".join(stream_reply(run_path, side, history, settings, system=system)).strip()


def fitted_prompt(model: Any, tokenizer: Any, messages: Sequence[Mapping[str, str]], max_new_tokens: int) -> str:
    """The chat rendered up to the assistant's generation prompt; while it and max_new_tokens exceed the model's
    positions, the oldest exchange (a user message and its answer) is left out, never the system prompt."""
    from core.models import position_limit

    limit = position_limit(getattr(model, "config", None), tokenizer)
    system = [dict(m) for m in messages[:1] if m["role"] == "system"]
    turns = [dict(m) for m in messages[len(system):]]
    while True:
        prompt = render_chat(tokenizer, system + turns)
        if not limit:
            return prompt
        used = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        if used + max_new_tokens <= limit:
            return prompt
        later_user = next((i for i, turn in enumerate(turns) if i > 0 and turn["role"] == "user"), None)
        if later_user is None:
            what = "Your message and the system prompt" if system else "Your message"
            raise ConfigError(
                f"{what} take {used} tokens and {max_new_tokens} new tokens were asked for, but this model sees at "
                f"most {limit}: shorten the message, or lower max new tokens.",
                field="max_new_tokens",
            )
        turns = turns[later_user:]


def render_chat(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> str:
    """One chat as text ending in the assistant's generation prompt (ModelError when the template refuses it)."""
    from jinja2 import TemplateError

    try:
        return render_prompts(tokenizer, [messages])[0]
    except TemplateError as err:
        raise ModelError(
            f"The model's chat template refuses this conversation ({err}): leave the system prompt empty (some "
            "templates take none), or clear the chat and start again."
        ) from None


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The ids that end an answer: the model's end-of-sequence ids, the tokenizer's, and a known end-of-turn token."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = list(configured) if isinstance(configured, (list, tuple)) else [configured]
    ids.append(getattr(tokenizer, "eos_token_id", None))
    vocabulary = tokenizer.get_vocab()
    ids += [vocabulary[token] for token in END_OF_TURN_TOKENS if token in vocabulary]
    return list(dict.fromkeys(int(i) for i in ids if isinstance(i, int) and not isinstance(i, bool)))


def new_pieces(texts: Iterable[str], stops: Sequence[str] = ()) -> Iterator[str]:
    """From a text that grows (each item the whole text so far), the new part of each, its leading whitespace
    dropped and the text cut before the first stop string.

    A tail that could be the start of a stop string is held back until the text shows whether it is one.
    """
    sent, shown = 0, ""
    for grown in texts:
        shown = _before_stops(grown.lstrip(), stops)
        held = max((k for stop in stops for k in range(1, len(stop)) if shown.endswith(stop[:k])), default=0)
        ready = len(shown) - held
        if ready > sent:
            yield shown[sent:ready]
            sent = ready
    if len(shown) > sent:  # the held-back tail at the end was not a stop string after all
        yield shown[sent:]


def _before_stops(value: str, stops: Sequence[str]) -> str:
    cut = min((at for at in (value.find(stop) for stop in stops) if at >= 0), default=len(value))
    return value[:cut]


def _run_folder(run_path: str | Path):
    from core.run.folder import RunFolder

    path = Path(run_path).expanduser()
    if not (path / "config.yaml").is_file():
        raise RunError(f"{path} is not a run folder (it has no config.yaml): pick a run under runs/.")
    return RunFolder(path)
