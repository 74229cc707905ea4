"""GGUF exports for llama.cpp and Ollama (core.models.gguf_export), proven by reading them back through
transformers' own GGUF loader: a LoRA sft run of a tiny Llama (grouped key/value heads, as SmolLM2) predicts
the same next tokens from its F16 GGUF as from its safetensors export; Q8_0 loads too; the tokenizer and chat
template travel inside; the Modelfile speaks the chat format. What cannot be a GGUF is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.__main__ import EXIT_USER_ERROR, main
from core.config import RunConfig
from core.errors import ModelError
from core.models.export import export_run
from core.models.gguf_export import chat_format, modelfile, pre_tokenizer_name, write_gguf
from core.run.folder import RunFolder
from tests.test_export import leftovers, sft_run
from tests.tiny_models import chat_tokenizer, review_sentences, tiny_chat_llama_dir

SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' "
    "+ message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3_STYLE = (
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
TEXTS = ["Nike shoes are very comfortable and Adidas hoodies are known to be ugly",
         "Classify the text into one of: negative, positive. Text: Puma socks are famous for being durable",
         "Reebok jackets are very flimsy", "Asics trousers is known for being very light"]


@pytest.fixture(scope="module")
def sft_exports(tmp_path_factory) -> dict[str, Path]:
    """A trained LoRA sft run's merged safetensors export and its F16 and Q8_0 GGUF exports."""
    root = tmp_path_factory.mktemp("gguf")
    folder = sft_run(root / "runs", tiny_chat_llama_dir(root))
    return {"run": folder.path,
            "safetensors": export_run(folder.path, root / "safetensors"),
            "f16": export_run(folder.path, root / "f16", fmt="gguf"),
            "q8_0": export_run(folder.path, root / "q8_0", fmt="gguf", quantization="q8_0")}


def load_gguf(folder: Path):
    """(model, tokenizer) through transformers' own GGUF loader, from the one .gguf file in `folder`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.models.saving import quiet_transformers

    name = next(folder.glob("*.gguf")).name
    with quiet_transformers():
        return (AutoModelForCausalLM.from_pretrained(folder, gguf_file=name).eval(),
                AutoTokenizer.from_pretrained(folder, gguf_file=name))


def next_token_agreement(reference, candidate, tokenizer) -> float:
    """The share of positions in TEXTS (and a chat) where both models' greedy next token is the same."""
    import torch

    prompts = TEXTS + [tokenizer.apply_chat_template([{"role": "user", "content": TEXTS[1]}], tokenize=False,
                                                     add_generation_prompt=True)]
    same = total = 0
    with torch.no_grad():
        for prompt in prompts:
            ids = tokenizer(prompt, return_tensors="pt").input_ids
            same += int((reference(ids).logits.argmax(-1) == candidate(ids).logits.argmax(-1)).sum())
            total += ids.shape[1]
    return same / total


def test_an_f16_gguf_predicts_the_next_tokens_of_the_safetensors_export(sft_exports):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reference = AutoModelForCausalLM.from_pretrained(sft_exports["safetensors"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(sft_exports["safetensors"])
    model, gguf_tokenizer = load_gguf(sft_exports["f16"])
    assert model.config.num_key_value_heads == 2 and model.config.tie_word_embeddings
    assert next_token_agreement(reference, model, tokenizer) >= 0.9
    # The tokenizer and its chat template travel inside the file.
    for text in TEXTS:
        assert gguf_tokenizer(text).input_ids == tokenizer(text).input_ids
    chat = [{"role": "user", "content": "hi"}]
    assert (gguf_tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            == tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True))
    assert gguf_tokenizer.eos_token == "<|im_end|>" and gguf_tokenizer.pad_token == tokenizer.pad_token


def test_a_q8_0_gguf_loads_and_is_smaller(sft_exports):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reference = AutoModelForCausalLM.from_pretrained(sft_exports["safetensors"]).eval()
    model, _ = load_gguf(sft_exports["q8_0"])
    assert next_token_agreement(reference, model, AutoTokenizer.from_pretrained(sft_exports["safetensors"])) >= 0.8
    size = {kind: next(sft_exports[kind].glob("*.gguf")).stat().st_size for kind in ("f16", "q8_0")}
    assert size["q8_0"] < size["f16"]


# The pre-tokenizer names llama.cpp's llama-vocab.cpp accepts for a byte-level BPE vocabulary like SmolLM2's: any
# other name makes llama.cpp refuse the file ("unknown pre-tokenizer type"), as "gpt2" once did.
LLAMA_CPP_PRE_TOKENIZERS = {"default", "gpt-2", "smollm", "llama-bpe"}


def test_the_vocabulary_is_written_with_names_llama_cpp_loads(sft_exports):
    import gguf

    reader = gguf.GGUFReader(next(sft_exports["f16"].glob("*.gguf")))

    def text_field(key: str) -> str:
        found = reader.fields[key]
        return bytes(found.parts[found.data[0]]).decode("utf-8")

    assert text_field("tokenizer.ggml.model") == "gpt2"
    assert text_field("tokenizer.ggml.pre") in LLAMA_CPP_PRE_TOKENIZERS


def test_the_gguf_export_has_a_modelfile_and_a_card(sft_exports):
    folder = sft_exports["f16"]
    name = next(folder.glob("*.gguf")).name
    text = (folder / "Modelfile").read_text()
    assert f"FROM ./{name}" in text
    assert 'PARAMETER stop "<|im_end|>"' in text
    assert '{{ else if eq $m.Role "user" }}<|im_start|>user\n{{ $m.Content }}<|im_end|>\n' in text
    card = (folder / "README.md").read_text()
    assert f"llama-cli -m {name}" in card and "ollama create" in card and f'gguf_file="{name}"' in card


def test_an_untied_model_with_padded_embeddings_round_trips(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = tiny_chat_llama_dir(tmp_path, tied=False)
    model = AutoModelForCausalLM.from_pretrained(source).eval()
    tokenizer = AutoTokenizer.from_pretrained(source)
    model.resize_token_embeddings(len(tokenizer) + 5)  # rows no token uses: written as [PAD<id>] tokens
    (tmp_path / "out").mkdir()
    write_gguf(model, tokenizer, tmp_path / "out" / "m.F16.gguf", "f16")
    loaded, _ = load_gguf(tmp_path / "out")
    assert not loaded.config.tie_word_embeddings
    ids = tokenizer(TEXTS[0], return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, loaded(ids).logits, atol=2e-3)


# ---- the chat format in Ollama's words ---------------------------------------------------------------

def tokenizer_with(template: str | None):
    return chat_tokenizer(review_sentences()[:50], vocab_size=300, chat_template=template)


@pytest.mark.parametrize("template", [SMOLLM2_TEMPLATE, LLAMA3_STYLE])
def test_the_chat_format_renders_as_the_template_does(template):
    tokenizer = tokenizer_with(template)
    chat = chat_format(tokenizer)
    for messages in ([{"role": "user", "content": "hi"}],
                     [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
                      {"role": "assistant", "content": "yo"}, {"role": "user", "content": "and?"}]):
        assert chat.render(messages) == tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def test_smollm2s_default_system_turn_becomes_the_modelfiles_system():
    text = modelfile(tokenizer_with(SMOLLM2_TEMPLATE), "m.gguf")
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM, trained by Hugging Face"""' in text
    assert 'PARAMETER stop "<|im_end|>"' in text


def test_a_template_that_does_not_split_into_turns_is_left_to_ollama_and_none_means_the_raw_prompt():
    odd = "{% for message in messages|reverse %}{{ message['content'] }}|{% endfor %}"
    text = modelfile(tokenizer_with(odd), "m.gguf")
    assert "TEMPLATE" not in text and "Ollama matches it" in text
    assert 'TEMPLATE """{{ .Prompt }}"""' in modelfile(tokenizer_with(None), "m.gguf")


# ---- refused --------------------------------------------------------------------------------------

def test_gpt2_and_wordpiece_are_refused_in_one_line(tiny_gpt2, tiny_bert, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with pytest.raises(ModelError, match="Llama-architecture .* gpt2: export safetensors instead"):
        write_gguf(AutoModelForCausalLM.from_pretrained(tiny_gpt2), AutoTokenizer.from_pretrained(tiny_gpt2),
                   tmp_path / "x.gguf")
    with pytest.raises(ModelError, match="byte-level BPE"):
        pre_tokenizer_name(AutoTokenizer.from_pretrained(tiny_bert))
    assert not (tmp_path / "x.gguf").exists()


def test_the_command_refuses_a_gpt2_run_and_leaves_nothing(tiny_gpt2, tmp_path, capsys):
    import shutil

    folder = RunFolder.create(tmp_path / "runs", "gpt2", RunConfig(task="causal"))
    shutil.copytree(tiny_gpt2, folder.final_path)
    code = main(["export", str(folder.path), str(tmp_path / "out"), "--format", "gguf"])
    out, err = capsys.readouterr()
    assert code == EXIT_USER_ERROR and "Llama-architecture" in err
    assert err.splitlines()[-1].startswith("error: ") and "Traceback" not in err
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)
