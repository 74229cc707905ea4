"""A fine-tuned chat model, exported, answering in the clients users take it to: transformers and llama.cpp.

    python -m bench.bench_clients [--run RUNS/ID] [--prompts 40]

With no --run, a short news-preset run is trained first (`core train --preset news --max-steps 30`).
The run is then exported three times with `python -m core export`, as a user exports it: safetensors,
GGUF F16 and GGUF Q8_0. On `--prompts` fresh news headlines, asked through the run's own prompt
template, each client answers greedily:
  transformers   pipeline("text-generation") on the safetensors folder, with chat messages;
  llama.cpp      node-llama-cpp's prebuilt llama.cpp binary (bench/clients, `npm ci` there once) on each
                 GGUF, twice: with the chat template stored inside the GGUF (llama.cpp's Jinja), and on
                 the prompt text transformers rendered.
  Ollama         its binary cannot be installed offline here, so its two halves are checked apart: the
                 Modelfile's TEMPLATE is rendered by Go's text/template as Ollama's server renders it
                 (bench/clients/ollama_template.go, when `go` is installed: Debian's golang-go), on the same
                 prompts and on multi-turn chats, and compared with transformers' chat template; the model
                 half is Ollama's runner, llama.cpp, measured above.
Agreement is the share of answers identical to transformers' (after trimming); accuracy is against the
headlines' categories. Nothing is downloaded: the models are the bundled SmolLM2 and what the run made.

Writes bench/results/clients.json and bench/results/clients.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import core_command, write_results
from bench.news_prompts import news_eval_chats, train_short_news_run

RESULTS = Path(__file__).resolve().parent / "results"
CLIENTS = Path(__file__).resolve().parent / "clients"
NEW_TOKENS = 16


def _transformers_answers(folder: Path, chats: list[list[dict[str, str]]]) -> tuple[list[str], list[str], float]:
    """(answers, the prompts as rendered by the tokenizer's chat template, seconds) from pipeline()."""
    from transformers import pipeline

    started = time.perf_counter()
    generator = pipeline("text-generation", model=str(folder))
    rendered = [generator.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
                for chat in chats]
    answers = []
    for chat in chats:
        out = generator(chat, max_new_tokens=NEW_TOKENS, do_sample=False)
        answers.append(str(out[0]["generated_text"][-1]["content"]).strip())
    return answers, rendered, time.perf_counter() - started


def _llama_cpp_answers(gguf: Path, chats: list[list[dict[str, str]]], rendered: list[str],
                       scratch: Path) -> dict[str, Any]:
    request, reply = scratch / f"{gguf.stem}.in.json", scratch / f"{gguf.stem}.out.json"
    request.write_text(json.dumps([{"messages": c, "rendered": r} for c, r in zip(chats, rendered, strict=True)]),
                       encoding="utf-8")
    proc = subprocess.run(["node", str(CLIENTS / "llama_cpp_answers.mjs"), str(gguf), str(request), str(reply),
                           str(NEW_TOKENS)], cwd=CLIENTS, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"llama.cpp could not answer from {gguf.name} (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(reply.read_text(encoding="utf-8"))


def _ollama_renders(modelfile: Path, chats: list[list[dict[str, str]]], scratch: Path) -> list[str] | None:
    """The prompts Ollama's template engine makes of the chats from the Modelfile; None without a Go toolchain."""
    go = shutil.which("go")
    if go is None:
        return None
    request, reply = scratch / "ollama.in.json", scratch / "ollama.out.json"
    request.write_text(json.dumps([{"messages": chat} for chat in chats]), encoding="utf-8")
    proc = subprocess.run([go, "run", str(CLIENTS / "ollama_template.go"), str(modelfile), str(request), str(reply)],
                          cwd=scratch, capture_output=True, text=True, check=False,
                          env={**os.environ, "GOCACHE": str(scratch / "gocache"), "GOFLAGS": ""})
    if proc.returncode != 0:
        raise SystemExit(f"Go could not render the Modelfile's TEMPLATE (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(reply.read_text(encoding="utf-8"))


def _multi_turn(chats: list[list[dict[str, str]]], answers: list[str]) -> list[list[dict[str, str]]]:
    """Conversations of two questions: each prompt, its answer, then the next prompt's question."""
    return [chats[i] + [{"role": "assistant", "content": answers[i]}] + [m for m in chats[i + 1] if m["role"] == "user"]
            for i in range(min(10, len(chats) - 1))]


def _share(hits: list[bool]) -> float:
    return sum(hits) / len(hits) if hits else 0.0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a finished sft run folder (default: train a short news run)")
    parser.add_argument("--prompts", type=int, default=40)
    args = parser.parse_args(argv)
    if not (CLIENTS / "node_modules" / "node-llama-cpp").is_dir():
        raise SystemExit(f"node-llama-cpp is not installed: run `npm ci` in {CLIENTS} once (no browser or compiler "
                         "is needed: it brings llama.cpp's prebuilt CPU binary).")
    from core.data.instructions import map_to_label

    with tempfile.TemporaryDirectory(prefix="tuneboard-clients-") as tmp_name:
        tmp = Path(tmp_name)
        run, trained_s = args.run, None
        if run is None:
            run = tmp / "news-run"
            trained_s = train_short_news_run(run)
        exports = {"safetensors": tmp / "safetensors", "F16": tmp / "f16", "Q8_0": tmp / "q8_0"}
        export_s = {"safetensors": core_command("export", str(run), str(exports["safetensors"])),
                    "F16": core_command("export", str(run), str(exports["F16"]), "--format", "gguf"),
                    "Q8_0": core_command("export", str(run), str(exports["Q8_0"]), "--format", "gguf",
                                  "--quantization", "q8_0")}
        chats, references = news_eval_chats(run, args.prompts)
        labels = sorted(set(references))
        reference, rendered, transformers_s = _transformers_answers(exports["safetensors"], chats)
        rows = [{"client": "transformers pipeline()", "file": "safetensors", "prompt": "chat template",
                 "agreement": 1.0, "accuracy": _share([map_to_label(a, labels) == r
                                                        for a, r in zip(reference, references, strict=True)]),
                 "seconds": round(transformers_s, 1)}]
        samples = {"transformers": reference[:5]}
        for kind in ("F16", "Q8_0"):
            gguf = next(exports[kind].glob("*.gguf"))
            answered = _llama_cpp_answers(gguf, chats, rendered, tmp)
            if not answered["template_found"]:
                raise SystemExit(f"{gguf.name} carries no chat template")
            for way, shown in (("chat", "template inside the GGUF"), ("rendered", "transformers' rendered text")):
                answers = answered[way]
                rows.append({"client": "llama.cpp (node-llama-cpp 3.21.1)", "file": f"GGUF {kind} "
                             f"({gguf.stat().st_size / 1e6:.0f} MB)", "prompt": shown,
                             "agreement": _share([a == b for a, b in zip(answers, reference, strict=True)]),
                             "accuracy": _share([map_to_label(a, labels) == r
                                                 for a, r in zip(answers, references, strict=True)]),
                             "seconds": round(answered["seconds"], 1)})
                samples[f"llama.cpp {kind} {way}"] = answers[:5]
        modelfile = (exports["F16"] / "Modelfile").read_text(encoding="utf-8")
        conversations = chats + _multi_turn(chats, reference)
        ollama = _ollama_renders(exports["F16"] / "Modelfile", conversations, tmp)
        if ollama is not None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(exports["safetensors"])
            wanted = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                      for c in conversations]
            same = [a == b for a, b in zip(ollama, wanted, strict=True)]
            template_check = {"conversations": len(conversations), "multi_turn": len(conversations) - len(chats),
                              "same_prompt": sum(same), "first_difference": next(
                                  ({"ollama": a, "transformers": b} for a, b in zip(ollama, wanted, strict=True)
                                   if a != b), None)}
        else:
            template_check = None
    doc = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.processor() or platform.machine(),
           "run": str(args.run) if args.run else "news preset, 30 steps (trained here)",
           "trained_s": trained_s, "export_s": export_s, "prompts": len(chats), "new_tokens": NEW_TOKENS,
           "rows": rows, "samples": samples, "modelfile": modelfile, "ollama_template": template_check,
           "node": shutil.which("node") and subprocess.run(["node", "--version"], capture_output=True,
                                                           text=True).stdout.strip()}
    write_results(RESULTS, "clients", doc, _markdown(doc))
    print(_markdown(doc))
    return doc


def _markdown(doc: dict[str, Any]) -> str:
    lines = [f"`python -m bench.bench_clients` on {doc['when']}: {doc['run']}; {doc['prompts']} fresh news headlines "
             f"asked through the run's prompt template, greedy, at most {doc['new_tokens']} new tokens. Exports by "
             "`core export` (seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in doc["export_s"].items()) + ").", "",
             "| client | file | prompt built by | same answer as transformers | accuracy | seconds |",
             "|---|---|---|---:|---:|---:|"]
    lines += [f"| {r['client']} | {r['file']} | {r['prompt']} | {r['agreement']:.1%} | {r['accuracy']:.1%} | "
              f"{r['seconds']} |" for r in doc["rows"]]
    check = doc.get("ollama_template")
    lines.append("")
    if check is None:
        lines.append("Ollama's template: not checked (no Go toolchain here).")
    else:
        lines.append(f"Ollama's template (the Modelfile's TEMPLATE and SYSTEM rendered by Go's text/template as "
                     f"Ollama's server renders them): {check['same_prompt']} of {check['conversations']} "
                     f"conversations ({check['multi_turn']} of them two questions long) give exactly the prompt "
                     "transformers' chat template gives; Ollama's runner is llama.cpp, whose answers to that text "
                     "are the 'rendered' rows. Ollama itself is not installed here (no offline package).")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
