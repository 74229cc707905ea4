"""The chat playground: core.insight.chat on tiny models, and the Chat page (pages/playground.py) under AppTest.

Two run folders stand in for finished runs: an instruction-tuning (sft) run of a tiny Llama with a ChatML
chat template (ending each turn with <|im_end|>, its end-of-sequence token), and a causal-LM run of the tiny
GPT-2, which has no template and so chats through the plain one. Each run's "fine-tuned" model is its base
with its weights nudged, so that the two sides answer differently.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import core.insight.chat as chat
from core.config import RunConfig
from core.errors import ConfigError, ModelError
from core.present import text
from core.run.folder import RunFolder, now_iso
from core.run.sink import RunSink
from tests.support import all_text, make_run, open_page, texts
from tests.tiny_models import chat_tokenizer

PAGE = "pages/playground.py"
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
GREEDY = chat.chat_settings(temperature=0.0, top_p=1.0, max_new_tokens=8)
FIRST, SECOND = "Which category is headline 1 about?", "And headline 2?"


# ---- tiny models and run folders ---------------------------------------------------------------

def _build_chat_llama(out: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    corpus = [f"Which category is headline {i} about? sports politics science money" for i in range(12)] + [
        "You are a helpful assistant.", "system user assistant", "Answer in one word."]
    tokenizer = chat_tokenizer(corpus, vocab_size=300, chat_template=CHATML, model_max_length=256)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         # Untied: a random model with tied embeddings repeats its last input token ("\n")
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _nudged_copy(source: Path, out: Path) -> Path:
    """`source` with every weight moved a little: a 'fine-tuned' model that answers unlike its base."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(source)
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(1)
        for weight in model.parameters():
            weight.add_(torch.randn_like(weight) * 0.5)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_gpt2) -> dict[str, tuple[Path, Path]]:
    """{task: (base model folder, fine-tuned model folder)} for 'sft' (tiny Llama, ChatML) and 'causal' (GPT-2)."""
    root = tmp_path_factory.mktemp("chat-models")
    llama = _build_chat_llama(root / "llama")
    return {"sft": (llama, _nudged_copy(llama, root / "llama-tuned")),
            "causal": (Path(tiny_gpt2), _nudged_copy(Path(tiny_gpt2), root / "gpt2-tuned"))}


def chat_run(root: Path, models: dict, task: str = "sft", *, saved: bool = True, status: str = "completed") -> str:
    """A run folder of `task` on the tiny model, `status`, with the nudged model as its final/ (when saved)."""
    base, tuned = models[task]
    cfg = RunConfig(task=task, name=f"chat-{task}")
    cfg.model.source = str(base)
    run_id = f"20260101-000000-chat-{task}-{'saved' if saved else 'unsaved'}-{status}"
    folder = RunFolder.create(root, run_id, cfg)
    RunSink(folder, load_existing=False).set_status(status=status, step=4, max_steps=4, started_at=now_iso(),
                                                   finished_at=now_iso())
    if saved:
        shutil.copytree(tuned, folder.final_path)
    return run_id


def user(content: str) -> dict[str, str]:
    return {"role": "user", "content": content}


# ---- core.insight.chat ---------------------------------------------------------------------------

def test_conversation_puts_the_system_prompt_first_and_refuses_bad_turns():
    history = [user("hi"), {"role": "assistant", "content": "hello"}, user("bye")]
    assert chat.conversation(history, "  Be brief. ") == [{"role": "system", "content": "Be brief."}, *history]
    assert chat.conversation(history, "   ") == history
    for bad in ([], [user("   ")], [user("hi"), {"role": "assistant", "content": "hello"}]):
        with pytest.raises(ConfigError, match="Write a message"):
            chat.conversation(bad)
    with pytest.raises(ConfigError, match="'robot'.*clear the chat"):
        chat.conversation([{"role": "robot", "content": "x"}, user("hi")])


def test_history_renders_with_the_chat_template_or_the_plain_one(models):
    from transformers import AutoTokenizer

    messages = [{"role": "system", "content": "Be brief."}, user("hi"), {"role": "assistant", "content": "hello"},
                user("bye")]
    chatml = AutoTokenizer.from_pretrained(models["sft"][0])
    assert chat.render_chat(chatml, messages) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello"
        "<|im_end|>\n<|im_start|>user\nbye<|im_end|>\n<|im_start|>assistant\n")
    plain = AutoTokenizer.from_pretrained(models["causal"][0])
    assert not plain.chat_template
    assert chat.render_chat(plain, messages) == (
        "### System:\nBe brief.\n\n### User:\nhi\n\n### Assistant:\nhello<|endoftext|>\n\n### User:\nbye\n\n"
        "### Assistant:\n")


def test_greedy_replies_are_deterministic_stream_in_pieces_and_differ_per_side(runs_root, models):
    run = runs_root / chat_run(runs_root, models, "sft")
    history = [user(FIRST)]
    first = {side: chat.reply(run, side, history, GREEDY) for side in chat.SIDES}
    assert first == {side: chat.reply(run, side, history, GREEDY) for side in chat.SIDES}
    assert first["base"] and first["tuned"] and first["base"] != first["tuned"]
    pieces = list(chat.stream_reply(run, "tuned", history, GREEDY))
    assert len(pieces) > 1 and all(pieces)
    assert "".join(pieces).strip() == first["tuned"]


def test_an_answer_stops_at_end_of_turn_and_at_plain_role_headers(runs_root, models, monkeypatch):
    from core.insight.generate import load_models

    seen, end_of_turn = {}, None
    for task in ("sft", "causal"):
        run = runs_root / chat_run(runs_root, models, task)
        model, tokenizer = load_models(run)[1]
        end_of_turn = end_of_turn or tokenizer.convert_tokens_to_ids("<|im_end|>")
        real = model.generate

        def recording(real=real, task=task, **kwargs):
            seen[task] = kwargs
            return real(**kwargs)

        monkeypatch.setattr(model, "generate", recording)
        chat.reply(run, "tuned", [user(FIRST)], GREEDY)
        monkeypatch.undo()
    assert end_of_turn in seen["sft"]["eos_token_id"]
    assert "stop_strings" not in seen["sft"]  # a chat template's turns end with a token
    assert seen["causal"]["stop_strings"] == list(chat.PLAIN_TURN_HEADERS)
    assert seen["causal"]["max_new_tokens"] == 8
    pieces = list(chat.new_pieces(["\n Hi", "\n Hi there", "\n Hi there\n#", "\n Hi there\n### Us",
                                   "\n Hi there\n### User: go on"], chat.PLAIN_TURN_HEADERS))
    assert "".join(pieces) == "Hi there" and not any("#" in p for p in pieces)
    assert "".join(chat.new_pieces(["a\n#", "a\n# title"], chat.PLAIN_TURN_HEADERS)) == "a\n# title"


def test_a_long_conversation_loses_its_oldest_exchanges_never_the_system_prompt(runs_root, models):
    from core.insight.generate import load_models

    model, tokenizer = load_models(runs_root / chat_run(runs_root, models, "causal"))[0]  # 128 positions
    messages = [{"role": "system", "content": "Be brief."}]
    for i in range(8):
        messages += [user(f"Nike shoes number {i} are very"), {"role": "assistant", "content": "comfortable " * 3}]
    messages.append(user("Adidas hoodies are"))
    prompt = chat.fitted_prompt(model, tokenizer, messages, 16)
    assert prompt.startswith("### System:\nBe brief.") and prompt.endswith("Adidas hoodies are\n\n### Assistant:\n")
    assert "number 0" not in prompt and "number 7" in prompt
    assert len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) + 16 <= 128
    with pytest.raises(ConfigError, match="Your message and the system prompt take .* shorten the message"):
        chat.fitted_prompt(model, tokenizer, [messages[0], user("Nike shoes are very " * 40)], 16)


def test_settings_and_runs_that_cannot_chat_are_refused_with_a_next_step(runs_root, models):
    assert chat.chat_settings(temperature=0.0, top_p=1.0, max_new_tokens=8).greedy
    with pytest.raises(ConfigError, match=f"at most {chat.CHAT_MAX_NEW_TOKENS} new tokens"):
        chat.chat_settings(temperature=0.7, top_p=0.9, max_new_tokens=chat.CHAT_MAX_NEW_TOKENS + 1)
    with pytest.raises(ConfigError, match="Temperature"):
        chat.chat_settings(temperature=-1.0, top_p=0.9, max_new_tokens=8)
    assert chat.chat_unavailable_reason(runs_root / chat_run(runs_root, models, "causal")) is None
    classification = make_run(runs_root, task="classification", final_model=True)
    assert "only a model that writes text can chat" in chat.chat_unavailable_reason(runs_root / classification)
    unsaved = chat_run(runs_root, models, "sft", saved=False)
    assert "no saved model yet" in chat.chat_unavailable_reason(runs_root / unsaved)
    with pytest.raises(ModelError, match="causal-LM run or an instruction-tuning"):
        chat.load_chat_models(runs_root / classification)


# ---- the Chat page -------------------------------------------------------------------------------

def send(at, message: str):
    """Type `message` into the chat box and submit it."""
    at.chat_input(key="tb_chat_input").set_value(message)
    return at.run()


def histories(at, run_id: str) -> dict[str, list[dict[str, str]]]:
    return at.session_state["tb_chat_histories"][run_id]


def greedy_page(run_id: str):
    """The Chat page on `run_id`, set to greedy answers of at most 8 tokens."""
    at = open_page(PAGE, {"run": run_id})
    assert not at.exception, [e.value for e in at.exception]
    at.slider(key="tb_chat_temperature").set_value(0.0)
    at.slider(key="tb_chat_top_p").set_value(1.0)
    at.number_input(key="tb_chat_max_new").set_value(8)
    return at.run()


def test_the_page_renders_a_finished_run_ready_to_chat(jobs, runs_root, models):
    at = open_page(PAGE, {"run": chat_run(runs_root, models, "sft")})
    assert not at.exception, [e.value for e in at.exception]
    page = all_text(at)
    assert text.CHAT_TITLE in texts(at.title) and text.CHAT_START in page
    assert text.COLUMN_BASE in page and text.COLUMN_TUNED_LATEST in page
    assert at.chat_input(key="tb_chat_input") is not None and not at.chat_message
    assert at.button(key="tb_chat_clear").disabled  # nothing to clear yet
    assert at.slider(key="tb_chat_temperature").value == chat.CHAT_DEFAULTS.temperature


def test_a_drawn_page_loads_its_models_ahead_of_the_first_message_unless_a_run_trains(jobs, runs_root, models,
                                                                                      monkeypatch):
    import ui.state

    asked = []
    monkeypatch.setattr(ui.state, "load_ahead", lambda key, load: asked.append((key, load)))
    run_id = chat_run(runs_root, models, "sft")
    at = open_page(PAGE, {"run": run_id})
    assert not at.exception, [e.value for e in at.exception]
    assert [key for key, _ in asked] == [f"chat:{run_id}"]
    asked[0][1]()  # what the background thread runs: both models into the caches the answers use
    asked.clear()
    monkeypatch.setattr(type(jobs), "active_run_id", lambda self: "another-run")
    at = open_page(PAGE, {"run": run_id})
    assert not at.exception and asked == []  # a training run keeps the cores; the first message loads them


def test_messages_get_two_streamed_answers_each_side_keeping_its_own_history(jobs, runs_root, models):
    run_id = chat_run(runs_root, models, "sft")
    at = send(greedy_page(run_id), FIRST)
    assert not at.exception, [e.value for e in at.exception]
    run = runs_root / run_id
    kept = histories(at, run_id)
    for side in chat.SIDES:
        assert kept[side] == [user(FIRST), {"role": "assistant", "content": chat.reply(run, side, [user(FIRST)], GREEDY)}]
    assert kept["base"][1] != kept["tuned"][1]
    assert len(at.chat_message) == 4  # the message and its answer, in each column
    shown = texts(at.markdown)  # as streamed, before the kept answer was stripped
    assert all(any(kept[side][1]["content"] in m for m in shown) for side in chat.SIDES)

    at = send(at, SECOND)  # the second turn: each side sees its own first answer
    assert not at.exception, [e.value for e in at.exception]
    kept = histories(at, run_id)
    for side in chat.SIDES:
        asked = [user(FIRST), kept[side][1], user(SECOND)]
        assert kept[side][:3] == asked and len(kept[side]) == 4
        assert kept[side][3]["content"] == chat.reply(run, side, asked, GREEDY)
    assert len(at.chat_message) == 8

    at.run()  # any rerun redraws the conversations from the session
    assert len(at.chat_message) == 8 and not at.button(key="tb_chat_clear").disabled
    at.button(key="tb_chat_clear").click().run()
    assert not at.exception
    assert histories(at, run_id) == {"base": [], "tuned": []} and not at.chat_message
    assert text.CHAT_START in all_text(at)


def test_a_failed_answer_is_a_message_and_keeps_no_half_exchange(jobs, runs_root, models, monkeypatch):
    def broken(run_path, side, history, settings, *, system=""):
        yield "half an answer"
        raise ModelError("Generation failed: the model ran out of memory. Lower max new tokens and send it again.")

    run_id = chat_run(runs_root, models, "causal")
    at = greedy_page(run_id)
    monkeypatch.setattr(chat, "stream_reply", broken)
    at = send(at, "Nike shoes are")
    assert not at.exception, [e.value for e in at.exception]
    assert any("Lower max new tokens" in e for e in texts(at.error))
    assert histories(at, run_id) == {"base": [], "tuned": []}


@pytest.mark.parametrize(("kind", "note"), [
    ("classification", "only a model that writes text can chat"),
    ("unsaved", "no saved model yet"),
    ("none", text.NO_RUNS),
])
def test_runs_that_cannot_chat_get_a_note_and_no_widgets(jobs, runs_root, models, kind, note):
    if kind == "classification":
        query = {"run": make_run(runs_root, task="classification", final_model=True)}
    elif kind == "unsaved":
        query = {"run": chat_run(runs_root, models, "causal", saved=False, status="running")}
    else:
        query = {}
    at = open_page(PAGE, query)
    assert not at.exception, [e.value for e in at.exception]
    assert any(note in info for info in texts(at.info))
    assert not at.chat_input and not at.slider and not at.get("text_area")
