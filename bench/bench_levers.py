"""Which levers make a training step faster on this machine, per task: profile first, then A/B each idea.

    python -m bench.bench_levers [--tasks mlm classification causal] [--batch 32] [--steps 6] [--repeats 3]

1. Profile: torch.profiler over a few training steps of the engine's configuration for the task
   (bundled MiniLM, dynamic padding in length-grouped batches, fused AdamW, bf16 autocast where the
   CPU runs bf16 fast and then matmul attention, masked-only logits for MLM), train mode (dropout
   on), ops ranked by self CPU time and grouped by what they are (matmuls, attention, optimizer, ...).
   Like the engine's own processes, this one keeps its memory mapped (core.devices.tune_training_process).
2. A/B: each idea the performance issues list, toggled alone against that configuration in the
   same process, A and B interleaved per repeat; the figure is the median step time (forward,
   backward, optimizer step) over identical batches, so only the lever differs. The allocator
   lever is the exception: it must be set before torch is imported, so each side is a fresh process.

Writes bench/results/levers.json and levers.md.
"""

from __future__ import annotations

import argparse
import copy
import functools
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import write_results

RESULTS = Path(__file__).resolve().parent / "results"
TASKS = ("mlm", "classification", "causal")

# Profiler op names -> what they are, first match wins.
OP_GROUPS = (
    ("attention", ("scaled_dot_product", "softmax", "_efficient_attention", "_flash_attention", "bmm", "baddbmm")),
    ("optimizer (AdamW)", ("adam", "_foreach", "lerp", "addcdiv", "sqrt")),
    ("matmul (linear layers)", ("addmm", "mm", "linear", "matmul")),
    ("layer norm", ("layer_norm",)),
    ("GELU", ("gelu",)),
    ("loss / log-softmax", ("cross_entropy", "log_softmax", "nll_loss")),
    ("embedding", ("embedding",)),
    ("gather masked rows", ("index", "nonzero", "masked")),
    ("dropout", ("dropout", "bernoulli")),
    ("element-wise ops and copies", ("add", "mul", "div", "fill_", "copy_", "zero_", "sum", "clone", "cat", "where")),
)


def op_group(name: str) -> str:
    lowered = name.lower()
    for group, needles in OP_GROUPS:
        if any(needle in lowered for needle in needles):
            return group
    return "other"


def make_batches(tokenizer: Any, batch: int, count: int, *, grouped: bool, task: str = "mlm",
                 seed: int = 0) -> list[dict[str, Any]]:
    """`count` batches of synthetic reviews for the task, dynamically padded (length-grouped when asked)."""
    import torch
    from transformers import DataCollatorForLanguageModeling, DataCollatorWithPadding

    from core.data.synthetic import generate_reviews

    frame = generate_reviews(batch * count * 4, seed=seed).dropna(subset=["text"]).head(batch * count)
    encoded = []
    for text, label in zip(frame["text"], frame["label"], strict=True):
        row = dict(tokenizer(text, truncation=True, max_length=128))
        if task == "classification":
            row["labels"] = int(label)
        encoded.append(row)
    if grouped:  # what the Trainer's group_by_length does: similar lengths share a batch
        encoded.sort(key=lambda e: len(e["input_ids"]))
    if task == "classification":
        collator = DataCollatorWithPadding(tokenizer)
    else:
        collator = DataCollatorForLanguageModeling(tokenizer, mlm=task == "mlm", mlm_probability=0.15)
    torch.manual_seed(seed)
    return [collator(encoded[i * batch:(i + 1) * batch]) for i in range(count)]


def padding_share(batches: list[dict[str, Any]]) -> float:
    total = sum(b["input_ids"].numel() for b in batches)
    real = sum(int(b["attention_mask"].sum()) for b in batches)
    return 1 - real / total


class Step:
    """One training step (forward, backward, optimizer step) under a set of levers."""

    def __init__(self, task: str = "mlm", *, bf16: bool = False, attention: str = "sdpa", masked_only: bool = True,
                 fused: bool = True, compiled: bool = False, attention_dropout: float | None = None):
        import torch
        import transformers

        from core.models import bundled_model_path
        from core.models.fast_mlm import masked_only_parts

        torch.manual_seed(0)
        path = str(bundled_model_path())
        # attention_dropout 0.0 stands in for Llama-style decoders (SmolLM2, Qwen), which train without it.
        overrides = {} if attention_dropout is None else {"attention_probs_dropout_prob": attention_dropout}
        config = transformers.AutoConfig.from_pretrained(path, is_decoder=task == "causal", **overrides)
        if task == "mlm":
            self.model = transformers.AutoModelForMaskedLM.from_pretrained(path, config=config,
                                                                           attn_implementation=attention)
        elif task == "classification":
            config.num_labels = 2
            self.model = transformers.AutoModelForSequenceClassification.from_pretrained(
                path, config=config, attn_implementation=attention)
        else:
            self.model = transformers.AutoModelForCausalLM.from_pretrained(path, config=config,
                                                                           attn_implementation=attention)
        self.model.train()
        self.bf16 = bf16
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=5e-4, fused=fused, foreach=not fused)
        self.parts = masked_only_parts(self.model) if masked_only and task == "mlm" else None
        self.forward = self.model
        if compiled:
            self.forward = torch.compile(self.model)
            if self.parts is not None:
                encoder, head = self.parts
                self.parts = (torch.compile(encoder), head)

    def __call__(self, batch: dict[str, Any]) -> None:
        import torch

        from core.models.fast_mlm import masked_only_loss

        inputs = copy.copy(batch)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            loss = masked_only_loss(self.parts, inputs) if self.parts is not None else self.forward(**inputs).loss
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def time_steps(step: Step, batches: list[dict[str, Any]]) -> float:
    """Median seconds per step over the batches, after one warm-up step."""
    step(batches[0])
    times = []
    for batch in batches:
        started = time.perf_counter()
        step(batch)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def with_threads(count: int, action: Callable[[], float]) -> float:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        return action()
    finally:
        torch.set_num_threads(before)


def step_in_child(task: str, args: argparse.Namespace, *, tuned: bool) -> float:
    """The engine's median step time in a fresh process, with or without core.devices.tune_training_process
    (it must run before torch is imported, so it cannot be toggled in this one)."""
    import json
    import subprocess
    import sys

    command = [sys.executable, "-m", "bench.bench_levers", "--step-child", task, "--batch", str(args.batch),
               "--steps", str(args.steps)] + ([] if tuned else ["--untuned"])
    done = subprocess.run(command, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
                          check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["step_s"])


def engine_setup() -> tuple[Any, bool, str]:
    """The engine's CPU choices: (bundled tokenizer, bf16 autocast, attention kernel), threads on physical cores."""
    import torch
    from transformers import AutoTokenizer

    from core import devices
    from core.models import bundled_model_path
    from core.training.trainer import cpu_attention_implementation

    torch.set_num_threads(max(1, devices.physical_cores()))
    fast_bf16 = devices.use_bf16("cpu")
    attention = cpu_attention_implementation(on_cpu=True, bf16=fast_bf16) or "sdpa"
    return AutoTokenizer.from_pretrained(str(bundled_model_path())), fast_bf16, attention


def _step_child(args: argparse.Namespace) -> dict[str, float]:
    import json

    tokenizer, fast_bf16, attention = engine_setup()
    # Twice the steps: a fresh process also pays its first touches of memory, on either side.
    batches = make_batches(tokenizer, args.batch, 2 * args.steps, grouped=True, task=args.step_child)
    result = {"step_s": time_steps(Step(args.step_child, bf16=fast_bf16, attention=attention), batches)}
    print(json.dumps(result))
    return result


def profile(step: Step, batches: list[dict[str, Any]], top: int = 12) -> dict[str, Any]:
    """Self CPU time per op and per op group over the batches."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    step(batches[0])
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for batch in batches:
            step(batch)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total_us = sum(e.self_cpu_time_total for e in events)
    groups: dict[str, float] = {}
    for event in events:
        groups[op_group(event.key)] = groups.get(op_group(event.key), 0.0) + event.self_cpu_time_total
    ranked = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return {
        "steps": len(batches),
        "self_cpu_ms_total": round(total_us / 1000, 1),
        "top_ops": [{"op": e.key, "self_cpu_ms": round(e.self_cpu_time_total / 1000, 1),
                     "share": round(e.self_cpu_time_total / total_us, 4), "calls": e.count} for e in ranked],
        "groups": {g: round(us / total_us, 4) for g, us in sorted(groups.items(), key=lambda kv: -kv[1])},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also try torch.compile (minutes of compiling)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--step-child", choices=TASKS, help=argparse.SUPPRESS)
    parser.add_argument("--untuned", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    from core import devices

    if not args.untuned:
        devices.tune_training_process()  # as the engine's processes do, before torch is imported
    if args.step_child:
        return _step_child(args)

    import torch

    tokenizer, fast_bf16, attention = engine_setup()
    tasks: dict[str, dict[str, Any]] = {}
    for task in args.tasks:
        grouped = make_batches(tokenizer, args.batch, args.steps, grouped=True, task=task)
        shuffled = make_batches(tokenizer, args.batch, args.steps, grouped=False, task=task)

        def engine_step(task=task, **changes: Any) -> Step:
            return Step(task, **{"bf16": fast_bf16, "attention": attention, **changes})

        engine = engine_step()
        print(f"{task}: profiling the engine's step ...", flush=True)
        profiled = profile(engine, grouped[:3])

        # name -> (what A is, what B is, A's measurement, B's measurement); B is the engine's choice
        # except where the idea is a candidate the engine does not use (compile, all logical threads).
        def timed(step: Step, batches=grouped) -> Callable[[], float]:
            return lambda: time_steps(step, batches)

        levers: dict[str, tuple[str, str, Callable[[], float], Callable[[], float]]] = {}
        if fast_bf16:
            levers["bf16 autocast"] = ("fp32, SDPA", f"bf16 autocast, {attention} attention",
                                       timed(engine_step(bf16=False, attention="sdpa")), timed(engine))
            levers["attention kernel under bf16"] = ("SDPA", attention, timed(engine_step(attention="sdpa")),
                                                     timed(engine))
            if task == "causal":
                levers["attention kernel under bf16, no attention dropout"] = (
                    "SDPA", attention, timed(engine_step(attention="sdpa", attention_dropout=0.0)),
                    timed(engine_step(attention_dropout=0.0)))
        else:
            levers["SDPA attention"] = ("eager attention", "SDPA", timed(engine_step(attention="eager")),
                                        timed(engine))
        if task == "mlm":
            levers["masked-only MLM logits"] = ("full logits", "masked positions only",
                                                timed(engine_step(masked_only=False)), timed(engine))
        levers["allocator"] = ("torch and glibc defaults", "huge pages, glibc keeps freed memory",
                               functools.partial(step_in_child, task, args, tuned=False),
                               functools.partial(step_in_child, task, args, tuned=True))
        levers["fused AdamW"] = ("foreach AdamW", "fused AdamW", timed(engine_step(fused=False)), timed(engine))
        levers["length-grouped batches"] = ("random batches", "length-grouped", timed(engine, shuffled),
                                            timed(engine))
        physical, logical = max(1, devices.physical_cores()), os.cpu_count() or 1
        if logical != physical:
            levers["threads"] = (f"{logical} threads (all logical CPUs)", f"{physical} threads (physical cores)",
                                 functools.partial(with_threads, logical, timed(engine)), timed(engine))
        compile_note = None
        if args.compile:
            try:
                started = time.perf_counter()
                compiled = engine_step(compiled=True)
                compiled(grouped[0])  # the first call compiles
                compile_note = f"compiling took {time.perf_counter() - started:.0f} s before the first step"
                levers["torch.compile"] = ("eager (engine)", "torch.compile", timed(engine), timed(compiled))
            except Exception as err:  # no C++ toolchain, unsupported op: report, do not fail the suite
                compile_note = f"torch.compile is not usable here: {type(err).__name__}: {str(err).splitlines()[0][:160]}"
        results: dict[str, dict[str, Any]] = {}
        for name, (a_name, b_name, a, b) in levers.items():
            a_s, b_s = [], []
            for repeat in range(args.repeats):
                for which in ("a", "b") if repeat % 2 == 0 else ("b", "a"):
                    (a_s if which == "a" else b_s).append((a if which == "a" else b)())
            a_med, b_med = statistics.median(a_s), statistics.median(b_s)
            results[name] = {"a": a_name, "b": b_name, "a_step_s": round(a_med, 4), "b_step_s": round(b_med, 4),
                             "speedup_b_over_a": round(a_med / b_med, 3), "a_runs": a_s, "b_runs": b_s}
            print(f"{task} {name:<28} {a_name}: {a_med:.3f} s  {b_name}: {b_med:.3f} s  -> {a_med / b_med:.2f}x",
                  flush=True)
        tasks[task] = {
            "padding_share": {"length_grouped": round(padding_share(grouped), 4),
                              "random": round(padding_share(shuffled), 4)},
            "profile": profiled,
            "levers": results,
            "compile_note": compile_note,
        }

    document = {
        "benchmark": "levers",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": devices.describe_device(),
        "engine": f"{'bf16 autocast' if fast_bf16 else 'fp32'}, {attention} attention",
        "threads": torch.get_num_threads(),
        "batch_size": args.batch,
        "steps": args.steps,
        "repeats": args.repeats,
        "tasks": tasks,
    }
    write_results(args.out, "levers", document, _markdown(document))
    print(_markdown(document))
    return document


def _markdown(doc: dict[str, Any]) -> str:
    lines = [
        f"### Where a training step's time goes, and which levers pay (bundled MiniLM, {doc['device']}, "
        f"batch {doc['batch_size']}; the engine's step: {doc['engine']}, length-grouped batches, fused AdamW)",
    ]
    for task, section in doc["tasks"].items():
        p = section["profile"]
        groups = ", ".join(f"{group} {share:.0%}" for group, share in p["groups"].items() if share >= 0.01)
        top_ops = ", ".join(f"`{o['op']}` {o['share']:.0%}" for o in p["top_ops"][:6])
        lines += [
            "",
            f"**{task}**: the engine's step profiled ({p['steps']} steps, {p['self_cpu_ms_total']:.0f} ms self CPU "
            f"time): {groups}. Top ops: {top_ops}.",
            "",
            f"Each lever alone, A vs B, median step time over {doc['steps']} identical batches, median of "
            f"{doc['repeats']} interleaved repeats (padding: {section['padding_share']['length_grouped']:.1%} of "
            f"the tokens length-grouped, {section['padding_share']['random']:.1%} random):",
            "",
            "| lever | A | B | A step | B step | B speed-up |",
            "|---|---|---|---:|---:|---:|",
            *[f"| {name} | {r['a']} | {r['b']} | {r['a_step_s'] * 1000:.0f} ms | {r['b_step_s'] * 1000:.0f} ms "
              f"| {r['speedup_b_over_a']:.2f}x |" for name, r in section["levers"].items()],
        ]
        if section.get("compile_note"):
            lines += ["", f"torch.compile: {section['compile_note']}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
