"""Generation side by side: a causal-LM (or sft) run's base model and fine-tuned model continue one prompt.

    stream_continuation   one model's continuation, yielded as the text grows (a streamer thread); the chat
                          playground (core.insight.chat) passes its rendered chat and end-of-turn stops here too
    stream_continuations  the base model's, then the fine-tuned model's, as ("base" | "tuned", text so far)
    generate_continuations  both, complete, as a dict (tests, scripts)

The models come from the same caches as the Compare page's probes (core.insight.probes.base_model_for and
core.models.export.load_saved_model_cached), so a page that probes and generates loads each model once.
torch and transformers are imported inside the functions: the Compare page imports this module.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ConfigError, ModelError, RunError
from core.insight.probes import device_of

MAX_NEW_TOKENS_LIMIT = 512
# Runs whose model writes text: a causal LM, and instruction tuning (a causal LM trained on chats).
GENERATIVE_TASKS = ("causal", "sft")
MAX_REPETITION_PENALTY = 2.0
MAX_NO_REPEAT_NGRAM = 10
BASE, TUNED = "base", "tuned"
# One generation at a time per process: two tabs generating at once would only split the same
# cores, and a model object is not meant to run two generate() calls concurrently.
_GENERATE_LOCK = threading.Lock()
# One model load at a time: the caches keep what loaded, and a second caller finds it there.
_loading = threading.Lock()
# How long the consumer waits for the next piece of text before deciding generation is stuck.
_STREAM_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class GenerationSettings:
    """How to continue a prompt: length, sampling temperature (0 = greedy), nucleus top-p, seed, and the
    repetition guard.

    The guard is on by default: greedy decoding of a small model loops ("...very comfortable and stylish...
    very comfortable and stylish..."). `repetition_penalty` divides the scores of tokens already in the text
    (1 = off) and `no_repeat_ngram_size` forbids any n tokens from appearing twice (0 = off); both are
    transformers' GenerationConfig fields of the same names.
    """

    max_new_tokens: int = 40
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 0
    repetition_penalty: float = 1.2
    no_repeat_ngram_size: int = 3

    def validate(self) -> GenerationSettings:
        """Return self, or raise ConfigError naming the setting that is out of range."""
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) or not (
            1 <= self.max_new_tokens <= MAX_NEW_TOKENS_LIMIT
        ):
            raise ConfigError(
                f"Max new tokens must be a whole number from 1 to {MAX_NEW_TOKENS_LIMIT} "
                f"(got {self.max_new_tokens!r}).",
                field="max_new_tokens",
            )
        if not 0.0 <= float(self.temperature) <= 5.0:
            raise ConfigError(
                f"Temperature must be from 0 (greedy) to 5 (got {self.temperature}); 0.7 is a usual choice.",
                field="temperature",
            )
        if not 0.0 < float(self.top_p) <= 1.0:
            raise ConfigError(
                f"Top-p must be above 0 and at most 1 (got {self.top_p}); 1 keeps every token, 0.9 the likeliest.",
                field="top_p",
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"The seed must be a whole number, 0 or more (got {self.seed!r}).", field="seed")
        if not 1.0 <= float(self.repetition_penalty) <= MAX_REPETITION_PENALTY:
            raise ConfigError(
                f"The repetition penalty must be from 1 (off) to {MAX_REPETITION_PENALTY:g} (got "
                f"{self.repetition_penalty}); 1.2 stops most loops.",
                field="repetition_penalty",
            )
        size = self.no_repeat_ngram_size
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_NO_REPEAT_NGRAM:
            raise ConfigError(
                f"No-repeat n-gram size must be a whole number from 0 (off) to {MAX_NO_REPEAT_NGRAM} (got {size!r}); "
                "3 forbids any three tokens in a row from appearing twice.",
                field="no_repeat_ngram_size",
            )
        return self

    @property
    def greedy(self) -> bool:
        """Temperature 0: always the likeliest next token (deterministic, the seed does not matter)."""
        return float(self.temperature) == 0.0


def stream_continuation(model, tokenizer, prompt: str, settings: GenerationSettings, *,
                        add_special_tokens: bool = True, stop_token_ids: Sequence[int] = (),
                        stop_strings: Sequence[str] = ()) -> Iterator[str]:
    """Yield the continuation of `prompt` (without the prompt) as it grows, ending with the whole text.

    A prompt rendered by a chat template already holds its special tokens: pass add_special_tokens=False so
    that none is added twice. `stop_token_ids` replaces the model's own end-of-sequence ids (e.g. with an
    end-of-turn token as well); generation also ends after any of `stop_strings` (which stays in the text).
    """
    import torch
    from transformers import TextIteratorStreamer

    settings = settings.validate()
    prompt = _checked_prompt(prompt)
    encoded = tokenizer(prompt, return_tensors="pt", add_special_tokens=add_special_tokens)
    _check_length(model, tokenizer, int(encoded["input_ids"].shape[1]), settings)
    device = device_of(model)
    inputs = {key: value.to(device) for key, value in encoded.items() if key in ("input_ids", "attention_mask")}
    streamer = TextIteratorStreamer(
        tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=_STREAM_TIMEOUT_S
    )
    kwargs: dict[str, Any] = {
        **inputs,
        "streamer": streamer,
        "max_new_tokens": settings.max_new_tokens,
        "do_sample": not settings.greedy,
        "repetition_penalty": float(settings.repetition_penalty),
        "no_repeat_ngram_size": int(settings.no_repeat_ngram_size),
        "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    }
    if stop_token_ids:
        kwargs["eos_token_id"] = [int(token) for token in stop_token_ids]
    if stop_strings:
        kwargs.update(stop_strings=list(stop_strings), tokenizer=tokenizer)  # generate() matches them on tokens
    if settings.greedy:
        # The model's own generation_config may ask for sampling knobs; greedy ignores them, so unset them.
        kwargs.update(temperature=None, top_p=None, top_k=None)
    else:
        kwargs.update(temperature=float(settings.temperature), top_p=float(settings.top_p), top_k=0)
    failure: list[BaseException] = []

    def run() -> None:
        # generate() blocks until the last token: it runs here while the caller reads the streamer.
        with _GENERATE_LOCK, torch.random.fork_rng(devices=_cuda_devices(device)):
            torch.manual_seed(settings.seed)  # the same seed gives the same sample, and leaves the caller's RNG alone
            was_training = model.training
            model.eval()
            try:
                with torch.no_grad():
                    model.generate(**kwargs)
            except BaseException as err:  # handed to the consumer, which raises it
                failure.append(err)
                streamer.end()
            finally:
                model.train(was_training)

    worker = threading.Thread(target=run, name="tuneboard-generate", daemon=True)
    worker.start()
    text, yielded = "", False
    try:
        for piece in streamer:
            if piece:
                text += piece
                yielded = True
                yield text
    except queue.Empty:  # nothing for _STREAM_TIMEOUT_S: another generation holds the lock, or a hang
        raise ModelError(
            f"No generated text arrived for {_STREAM_TIMEOUT_S:.0f} s (the machine is busy, e.g. another "
            "generation or a training run): try again with fewer new tokens."
        ) from None
    worker.join()
    if failure:
        raise ModelError(f"Generation failed: {type(failure[0]).__name__}: {failure[0]}") from failure[0]
    if not yielded:  # the model ended at once (e.g. its first token was end-of-text)
        yield text


def stream_continuations(
    run_path: str | Path, prompt: str, settings: GenerationSettings, *, before: str = "parent"
) -> Iterator[tuple[str, str]]:
    """Yield ("base", "") then ("base", text so far) as it grows; then the same for "tuned".

    `before` chooses the base of a run fine-tuned from another run: 'parent' (the run it started
    from) or 'original' (the base model at the root of the chain).
    """
    prompt = _checked_prompt(prompt)
    settings = settings.validate()
    base, tuned = load_models(run_path, before=before)
    for which, (model, tokenizer) in ((BASE, base), (TUNED, tuned)):
        yield which, ""  # this model starts: a page clears its column, the CLI prints its label
        for text in stream_continuation(model, tokenizer, prompt, settings):
            if text:
                yield which, text


def generate_continuations(
    run_path: str | Path, prompt: str, settings: GenerationSettings, *, before: str = "parent"
) -> dict[str, str]:
    """Both continuations, complete: {"base": text, "tuned": text}."""
    result = {BASE: "", TUNED: ""}
    for which, text in stream_continuations(run_path, prompt, settings, before=before):
        result[which] = text
    return result


def load_models(run_path: str | Path, *, before: str = "parent") -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """((base model, tokenizer), (fine-tuned model, tokenizer)) of a causal-LM or sft run, from the shared caches."""
    from core.insight.probes import base_model_for, tuned_model_for
    from core.models.export import tuned_model_path
    from core.run.folder import RunFolder

    path = Path(run_path).expanduser()
    if not (path / "config.yaml").is_file():
        raise RunError(f"{path} is not a run folder (it has no config.yaml): pass a folder under runs/.")
    folder = RunFolder(path)
    cfg = folder.config()
    if cfg.task not in GENERATIVE_TASKS:
        raise ModelError(
            f"Run {folder.run_id} is a {cfg.task} run: generation needs a causal-LM run or an instruction-tuning "
            "(sft) run. Use the probes for masked-LM and classification runs, or fine-tune with task 'causal' or 'sft'."
        )
    source = tuned_model_path(folder)
    if source is None:
        raise RunError(
            f"Run {folder.run_id} has no saved model yet: let it finish, or stop it to save a checkpoint, "
            "then generate again."
        )
    with _loading:  # a page loading them ahead (ui.state.load_ahead) and its first message: one loads, one waits
        return base_model_for(cfg, before=before), tuned_model_for(cfg, source, before=before)


def _checked_prompt(prompt: str) -> str:
    text = str(prompt or "")
    if not text.strip():
        raise ConfigError("Write a prompt for the models to continue, e.g. 'Nike shoes are very'.", field="prompt")
    return text


def _check_length(model, tokenizer, prompt_tokens: int, settings: GenerationSettings) -> None:
    from core.models import position_limit

    limit = position_limit(getattr(model, "config", None), tokenizer)
    if limit and prompt_tokens + settings.max_new_tokens > limit:
        raise ConfigError(
            f"The prompt is {prompt_tokens} tokens and {settings.max_new_tokens} new tokens were asked for, but "
            f"this model sees at most {limit}: shorten the prompt or lower max new tokens.",
            field="max_new_tokens",
        )


def _cuda_devices(device) -> list:
    # fork_rng copies every CUDA device's RNG by default (and warns about it); only the one in use matters.
    return [device] if getattr(device, "type", "cpu") == "cuda" else []
