"""A causal LM as one GGUF file for llama.cpp and Ollama, and the Ollama Modelfile that runs it.

    write_gguf(model, tokenizer, path, quantization)   F16 or Q8_0, tokenizer and chat template inside
    modelfile(tokenizer, gguf_name)                   FROM, TEMPLATE (the chat format in Go), stop tokens

Written with the `gguf` package's GGUFWriter and its tensor-name maps, as llama.cpp's own
convert_hf_to_gguf.py writes a Llama: no llama.cpp checkout or compiler at run time. What that
converter does and we mirror (so transformers' GGUF loader, which undoes it, reads our file back):
- q and k projections are permuted per head from Hugging Face's rotary layout (two halves) to
  llama.cpp's (interleaved pairs): see `permute`;
- 1-D tensors (the norms) stay F32; every matrix is F16, or Q8_0 where its rows split into 32-value
  blocks (F16 where they do not);
- tied embeddings write no `output.weight`: llama.cpp reuses `token_embd` as the LM head;
- the vocabulary is llama.cpp's "gpt2" kind (byte-level BPE): tokens, merges, token types, the
  special-token ids and the chat template, padded with [PAD<i>] tokens to the embedding's rows.

Only Llama-architecture models with a byte-level BPE tokenizer are written (SmolLM2 and its kind);
anything else is refused with a ModelError that says to export safetensors instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ModelError

QUANTIZATIONS = ("f16", "q8_0")
# How the tokenizer splits text before BPE (its pre-tokenizer), as llama.cpp names the split. Only these
# two shapes are known here; llama.cpp recognises others by hashing its own tokenization, which needs
# its converter's table. The bundled SmolLM2's converted tokenizer has lost its digit split (transformers
# rebuilds it from the GGUF as plain byte-level), so it is written as "gpt-2" where the original file says
# "smollm": the ids are the same, since its vocabulary holds no token of two or more digits. The names are
# llama.cpp's own spelling (llama-vocab.cpp): it refuses to load a file whose name it does not know, and
# the vocabulary kind is "gpt2" but the GPT-2 split is "gpt-2".
GPT2_SPLIT = {"type": "ByteLevel", "use_regex": True}
PRE_TOKENIZERS = {
    "gpt-2": [GPT2_SPLIT],
    "smollm": [{"type": "Digits", "individual_digits": True}, GPT2_SPLIT],
}
SAFETENSORS_INSTEAD = "export safetensors instead (llama.cpp's convert_hf_to_gguf.py converts that folder)"


def write_gguf(model: Any, tokenizer: Any, path: Path, quantization: str = "f16") -> Path:
    """Write `model` (a plain LlamaForCausalLM, LoRA already merged) and its tokenizer as one GGUF file."""
    import gguf

    if quantization not in QUANTIZATIONS:
        raise ModelError(f"Unknown GGUF quantization {quantization!r}: choose one of {', '.join(QUANTIZATIONS)}.")
    config = model.config
    check_architecture(config)
    pre = pre_tokenizer_name(tokenizer)
    layers, heads = int(config.num_hidden_layers), int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    vocab_rows = int(model.get_input_embeddings().weight.shape[0])
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight

    qtype, file_type = {
        "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
        "q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
    }[quantization]
    arch = gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA]
    writer = gguf.GGUFWriter(path, arch)
    try:
        writer.add_name(Path(path).stem)
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_context_length(int(config.max_position_embeddings))
        writer.add_embedding_length(int(config.hidden_size))
        writer.add_block_count(layers)
        writer.add_feed_forward_length(int(config.intermediate_size))
        writer.add_head_count(heads)
        writer.add_head_count_kv(kv_heads)
        writer.add_rope_dimension_count(head_dim)
        writer.add_rope_freq_base(float(rope_theta(config)))
        writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
        writer.add_vocab_size(vocab_rows)
        writer.add_file_type(file_type)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        add_vocabulary(writer, tokenizer, config, vocab_rows, pre)

        names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, layers)
        for name, tensor in model.state_dict().items():
            if tied and name == "lm_head.weight":
                continue
            stem, _, suffix = name.rpartition(".")
            gguf_stem = names.get_name(stem)
            if gguf_stem is None:
                raise ModelError(f"The model's tensor {name} has no GGUF name for a Llama; {SAFETENSORS_INSTEAD}.")
            data = tensor.detach().float().cpu().numpy()
            if gguf_stem.endswith(".attn_q"):
                data = permute(data, heads, heads)
            elif gguf_stem.endswith(".attn_k"):
                data = permute(data, heads, kv_heads)
            data, raw = encode(data, qtype)
            writer.add_tensor(f"{gguf_stem}.{suffix}", data, raw_dtype=raw)

        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return Path(path)


def check_architecture(config: Any) -> None:
    """ModelError unless the config is a plain Llama (no biases, no rope scaling) that the GGUF keys describe fully."""
    model_type = getattr(config, "model_type", None)
    if model_type != "llama":
        raise ModelError(f"GGUF export covers Llama-architecture models (such as SmolLM2); this run's model is "
                         f"{model_type}: {SAFETENSORS_INSTEAD}.")
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        raise ModelError(f"This Llama has bias terms, which this GGUF writer does not carry: {SAFETENSORS_INSTEAD}.")
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if rope.get("rope_type", "default") != "default":
        raise ModelError(f"This Llama scales its rotary positions ({rope.get('rope_type')}), which this GGUF writer "
                         f"does not carry: {SAFETENSORS_INSTEAD}.")


def rope_theta(config: Any) -> float:
    """The rotary base: transformers 5 keeps it in rope_parameters, older configs as rope_theta."""
    rope = getattr(config, "rope_parameters", None) or {}
    return rope.get("rope_theta") or getattr(config, "rope_theta", None) or 10000.0


def permute(weights: Any, n_head: int, n_head_kv: int) -> Any:
    """llama.cpp's permutation of a q or k projection: each head's rotary halves become interleaved pairs.

    weights: (heads * head_dim, hidden) -> (heads, 2, head_dim / 2, hidden) -> swap the middle axes. The inverse
    is transformers' LlamaTensorProcessor._reverse_permute_weights.
    """
    if n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2)
            .reshape(weights.shape))


def encode(data: Any, qtype: Any) -> tuple[Any, Any]:
    """(the tensor's bytes as the file stores them, their GGML type): 1-D in F32, matrices in `qtype`, else F16."""
    import gguf
    import numpy as np

    if data.ndim <= 1:
        return data.astype(np.float32), gguf.GGMLQuantizationType.F32
    try:
        return gguf.quants.quantize(data, qtype), qtype
    except gguf.QuantError:  # rows that do not split into Q8_0's 32-value blocks: llama.cpp falls back to F16
        return gguf.quants.quantize(data, gguf.GGMLQuantizationType.F16), gguf.GGMLQuantizationType.F16


# ---- the tokenizer --------------------------------------------------------------------------------

def backend_json(tokenizer: Any) -> dict[str, Any]:
    """The fast tokenizer's tokenizer.json as a dict; ModelError for a tokenizer that has none."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ModelError(f"GGUF export needs a fast (tokenizer.json) tokenizer; this one is "
                         f"{type(tokenizer).__name__}: {SAFETENSORS_INSTEAD}.")
    return json.loads(backend.to_str())


def pre_tokenizer_name(tokenizer: Any) -> str:
    """llama.cpp's name for how the tokenizer splits text ('gpt-2', 'smollm'); ModelError for one it cannot name."""
    spec = backend_json(tokenizer)
    model, decoder = spec.get("model") or {}, spec.get("decoder") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback") or decoder.get("type") != "ByteLevel":
        raise ModelError(f"GGUF export writes byte-level BPE tokenizers (GPT-2 style, as SmolLM2's); this one is a "
                         f"{model.get('type')} tokenizer: {SAFETENSORS_INSTEAD}.")
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers") if pre.get("type") == "Sequence" else [pre]
    for name, shape in PRE_TOKENIZERS.items():
        if len(steps) == len(shape) and all(_matches(step, want) for step, want in zip(steps, shape, strict=True)):
            return name
    raise ModelError(f"This tokenizer splits text in a way llama.cpp knows only by its converter's table "
                     f"({', '.join(str(s.get('type')) for s in steps)}): {SAFETENSORS_INSTEAD}.")


def _matches(step: dict[str, Any], want: dict[str, Any]) -> bool:
    return all(step.get(key, True if key == "use_regex" else None) == value for key, value in want.items())


def add_vocabulary(writer: Any, tokenizer: Any, config: Any, vocab_rows: int, pre: str) -> None:
    """Tokens, token types, merges, special-token ids, add-BOS flag and chat template, as llama.cpp writes them."""
    import gguf

    tokens, types = token_table(tokenizer, vocab_rows)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    # SpecialVocab reads merges, special ids, add-token flags and the chat template from a saved folder,
    # as llama.cpp's converter does: save the tokenizer and config into a scratch folder for it.
    with tempfile.TemporaryDirectory(prefix="tuneboard-gguf-vocab-") as scratch, _quiet_gguf():
        tokenizer.save_pretrained(scratch)
        config.to_json_file(str(Path(scratch) / "config.json"))
        special = gguf.SpecialVocab(scratch, load_merges=True, n_vocab=vocab_rows)
        if not special.merges:
            raise ModelError(f"The tokenizer has no BPE merges to write: {SAFETENSORS_INSTEAD}.")
        special.add_to_gguf(writer, quiet=True)
        if special.chat_template is None and getattr(tokenizer, "chat_template", None):
            writer.add_chat_template(tokenizer.chat_template)


def token_table(tokenizer: Any, vocab_rows: int) -> tuple[list[str], list[int]]:
    """(token strings by id, their llama.cpp token types) for `vocab_rows` embedding rows.

    Ids the tokenizer does not use are [PAD<id>] (user-defined); added tokens are control tokens when
    special, user-defined otherwise; the rest are normal. As llama.cpp's get_vocab_base.
    """
    import gguf

    by_id = {index: token for token, index in tokenizer.get_vocab().items()}
    added = {int(index): token for index, token in tokenizer.added_tokens_decoder.items()}
    if max(by_id, default=-1) >= vocab_rows:
        raise ModelError(f"The tokenizer has ids up to {max(by_id)} but the model only {vocab_rows} embedding rows; "
                         "the run's tokenizer and model do not belong together.")
    tokens, types = [], []
    for index in range(vocab_rows):
        if index not in by_id:
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.USER_DEFINED)
        elif index in added:
            tokens.append(by_id[index])
            types.append(gguf.TokenType.CONTROL if added[index].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[index])
            types.append(gguf.TokenType.NORMAL)
    return tokens, [int(t) for t in types]


@contextlib.contextmanager
def _quiet_gguf() -> Iterator[None]:
    """The gguf package logs each merge count and special id; the export's own line says what was written."""
    logger = logging.getLogger("gguf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


# ---- the chat format and the Ollama Modelfile ----------------------------------------------------------

@dataclass(frozen=True)
class ChatFormat:
    """A chat template taken apart into per-message blocks; CONTENT marks where a message's text goes.

    A conversation renders as: preamble, then each message's block for its role, then `generation`
    after a last user or system message. `default_system`: the system text the template adds when a
    chat has none (SmolLM2's "You are a helpful AI assistant ..."), else None.
    """

    preamble: str
    system: str
    user: str
    assistant: str
    generation: str
    default_system: str | None
    end_of_turn: str  # what closes an assistant turn (ChatML's <|im_end|>), "" when nothing does

    def render(self, messages: list[dict[str, str]], *, add_generation_prompt: bool = True) -> str:
        """The conversation as the blocks write it (what the Modelfile's TEMPLATE does in Go)."""
        if self.default_system is not None and not any(m["role"] == "system" for m in messages):
            messages = [{"role": "system", "content": self.default_system}, *messages]
        parts = [self.preamble]
        parts += [getattr(self, m["role"]).replace(CONTENT, m["content"]) for m in messages]
        if add_generation_prompt and messages and messages[-1]["role"] != "assistant":
            parts.append(self.generation)
        return "".join(parts)


CONTENT = "\x00content\x00"
# Stand-ins for message texts while the template is taken apart: plain words a template passes through untouched.
_MARKS = {"system": "tbSystemText7", "user": "tbUserText7", "assistant": "tbAssistantText7", "user2": "tbUserNext7"}


def chat_format(tokenizer: Any) -> ChatFormat | None:
    """The tokenizer's chat template as per-message blocks, or None when it has no template or is not built so.

    Rendered on stand-in conversations of growing length: each longer one must extend the shorter, and what it
    adds is the new message's block (the same way a chat grows turn by turn in llama.cpp and Ollama).
    """
    if not getattr(tokenizer, "chat_template", None):
        return None
    m = _MARKS

    def render(*roles: str, generation: bool = False) -> str:
        messages = [{"role": "user" if role == "user2" else role, "content": m[role]} for role in roles]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)

    try:
        one, two = render("system", "user"), render("system", "user", "assistant")
        three, prompted = render("system", "user", "assistant", "user2"), render("system", "user", generation=True)
        without_system = render("user")
    except Exception:  # a template that refuses these conversations (e.g. one that demands alternation rules)
        return None
    if not (two.startswith(one) and three.startswith(two) and prompted.startswith(one)):
        return None
    user = _block(three[len(two):], m["user2"])
    assistant = _block(two[len(one):], m["assistant"])
    if user is None or assistant is None or not one.endswith(user.replace(CONTENT, m["user"])):
        return None
    head = one[: len(one) - len(user.replace(CONTENT, m["user"]))]
    system = _block(head, m["system"])
    if system is None or not without_system.endswith(user.replace(CONTENT, m["user"])):
        return None
    head_alone = without_system[: len(without_system) - len(user.replace(CONTENT, m["user"]))]
    before, after = system.split(CONTENT)
    preamble, default_system = "", None
    if head_alone.startswith(before) and head_alone.endswith(after) and len(head_alone) >= len(before) + len(after):
        default_system = head_alone[len(before): len(head_alone) - len(after)]  # the template's own system turn
    elif before.startswith(head_alone):
        preamble, system = head_alone, system[len(head_alone):]  # e.g. a BOS written once, before any turn
    else:
        return None
    end_of_turn = assistant.split(CONTENT)[1].strip()
    return ChatFormat(preamble, system, user, assistant, prompted[len(one):], default_system, end_of_turn)


def _block(text: str, mark: str) -> str | None:
    return text.replace(mark, CONTENT) if text.count(mark) == 1 else None


def stop_tokens(tokenizer: Any, chat: ChatFormat | None) -> list[str]:
    """The texts that end an answer: the chat's end-of-turn token, and the tokenizer's end-of-sequence token."""
    stops = [chat.end_of_turn] if chat is not None and chat.end_of_turn else []
    eos = getattr(tokenizer, "eos_token", None)
    if eos and eos not in stops:
        stops.append(eos)
    return stops


def modelfile(tokenizer: Any, gguf_name: str) -> str:
    """An Ollama Modelfile for the GGUF beside it: FROM, TEMPLATE (the chat format in Go), SYSTEM, PARAMETER stop."""
    chat = chat_format(tokenizer)
    lines = ["# Ollama: `ollama create NAME -f Modelfile`, then `ollama run NAME`.", f"FROM ./{gguf_name}", ""]
    template = go_template(chat) if chat is not None else None
    if template is not None:
        lines += [f'TEMPLATE """{template}"""']
        if chat.default_system is not None:
            lines += [f'SYSTEM """{chat.default_system}"""']
    elif getattr(tokenizer, "chat_template", None):
        lines += ["# The chat template is inside the GGUF; Ollama matches it to one of its own templates."]
    else:
        lines += ["# No chat template: the model continues the prompt as written.", 'TEMPLATE """{{ .Prompt }}"""']
    lines += [f"PARAMETER stop {json.dumps(stop)}" for stop in stop_tokens(tokenizer, chat)]
    return "\n".join(lines) + "\n"


def go_template(chat: ChatFormat) -> str | None:
    """The chat format as an Ollama (Go text/template) TEMPLATE, or None where its text would clash with Go or the Modelfile."""
    blocks = (chat.preamble, chat.system, chat.user, chat.assistant, chat.generation)
    if any("{{" in block or '"""' in block for block in blocks) or '"""' in (chat.default_system or ""):
        return None

    def block(text: str) -> str:
        return text.replace(CONTENT, "{{ $m.Content }}")

    return (
        f"{chat.preamble}"
        "{{ range $i, $m := .Messages }}"
        f'{{{{ if eq $m.Role "system" }}}}{block(chat.system)}'
        f'{{{{ else if eq $m.Role "user" }}}}{block(chat.user)}'
        f'{{{{ else if eq $m.Role "assistant" }}}}{block(chat.assistant)}'
        "{{ end }}"
        f'{{{{ if and (eq (len (slice $.Messages $i)) 1) (ne $m.Role "assistant") }}}}{chat.generation}{{{{ end }}}}'
        "{{ end }}"
    )


def gguf_file_name(stem: str, quantization: str) -> str:
    """'<stem>.F16.gguf' / '<stem>.Q8_0.gguf', as GGUF files on the Hub are named; the stem made file-safe."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip(".-") or "model"
    return f"{safe}.{quantization.upper()}.gguf"
