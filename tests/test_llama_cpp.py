"""A GGUF export answering in llama.cpp itself (node-llama-cpp's prebuilt binary, installed by `make client-deps`),
and an Ollama Modelfile's TEMPLATE rendered by Go's text/template as Ollama renders it (when Go is installed).

transformers' GGUF loader (tests/test_export_gguf.py) is lenient where llama.cpp is not: llama.cpp once refused
our files over one metadata name. Skipped, with the reason, where the client is not installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from core.models.export import export_run
from tests.test_export import sft_run
from tests.tiny_models import tiny_chat_llama_dir

CLIENTS = Path(__file__).resolve().parents[1] / "bench" / "clients"
NODE_LLAMA_CPP = CLIENTS / "node_modules" / "node-llama-cpp"
NEW_TOKENS = 4
PROMPTS = ["great shoes, very light", "the laces broke after a week", "comfortable and cheap"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("llama-cpp")
    folder = sft_run(root / "runs", tiny_chat_llama_dir(root))
    return {"safetensors": export_run(folder.path, root / "safetensors"),
            "f16": export_run(folder.path, root / "f16", fmt="gguf")}


def _chats() -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": text}] for text in PROMPTS]


@pytest.mark.skipif(shutil.which("node") is None or not NODE_LLAMA_CPP.is_dir(),
                    reason="llama.cpp is not installed: `make client-deps` installs node-llama-cpp in bench/clients")
def test_llama_cpp_loads_the_gguf_and_continues_as_transformers_does(exports, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(exports["safetensors"])
    model = AutoModelForCausalLM.from_pretrained(exports["safetensors"]).eval()
    chats = _chats()
    templated = [tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) for chat in chats]
    # Plain text as well: two steps of training leave the tiny model ending its turn at once after a chat prompt,
    # and an empty reply would agree with anything.
    request, reply = tmp_path / "in.json", tmp_path / "out.json"
    request.write_text(json.dumps([{"messages": c, "rendered": t} for c, t in zip(chats, PROMPTS, strict=True)]))
    gguf = next(exports["f16"].glob("*.gguf"))
    proc = subprocess.run(["node", str(CLIENTS / "llama_cpp_answers.mjs"), str(gguf), str(request), str(reply),
                           str(NEW_TOKENS)], cwd=CLIENTS, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]  # llama.cpp refuses a file it cannot read: "Failed to load model"
    answered = json.loads(reply.read_text())
    assert answered["template_found"]
    continued = [_greedy(model, tokenizer, text) for text in PROMPTS]
    assert any(len(text) > 1 for text in continued)  # several characters: a reply cut short would show
    assert answered["rendered"] == continued  # llama.cpp's own tokenization and forward pass
    assert answered["chat"] == [_greedy(model, tokenizer, text) for text in templated]  # the GGUF's own template


def _greedy(model, tokenizer, text: str) -> str:
    import torch

    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS, do_sample=False,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()


@pytest.mark.skipif(shutil.which("go") is None, reason="Go is not installed: Ollama's template engine is Go's")
def test_ollamas_template_engine_renders_the_modelfile_as_the_chat_template(exports, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(exports["safetensors"])
    chats = _chats() + [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "hello"}, {"role": "user", "content": PROMPTS[0]}]]
    request, reply = tmp_path / "in.json", tmp_path / "out.json"
    request.write_text(json.dumps([{"messages": chat} for chat in chats]))
    proc = subprocess.run(["go", "run", str(CLIENTS / "ollama_template.go"), str(exports["f16"] / "Modelfile"),
                           str(request), str(reply)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          check=False, env={**os.environ, "GOCACHE": str(tmp_path / "gocache")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    wanted = [tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) for chat in chats]
    assert json.loads(reply.read_text()) == wanted
