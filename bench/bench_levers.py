"""Which levers make an MLM training step faster on this machine: profile first, then A/B each idea.

    python -m bench.bench_levers [--batch 32] [--steps 6] [--repeats 3]

1. Profile: torch.profiler over a few training steps of the engine's configuration (bundled
   MiniLM, masked-only MLM logits, SDPA attention, fused AdamW, dynamic padding), ops ranked by
   self CPU time and grouped by what they are (matmuls, attention, optimizer, ...).
2. A/B: each idea the performance issue lists, toggled alone against that configuration in the
   same process, A and B interleaved per repeat; the figure is the median step time (forward,
   backward, optimizer step) over identical batches, so only the lever differs.

Writes bench/results/levers.json and levers.md.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench import write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

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


def make_batches(tokenizer: Any, batch: int, count: int, *, grouped: bool, seed: int = 0) -> list[dict[str, Any]]:
    """`count` MLM batches of synthetic reviews, dynamically padded (length-grouped when asked)."""
    import torch
    from transformers import DataCollatorForLanguageModeling

    from core.data.synthetic import generate_reviews

    rows = generate_reviews(batch * count * 4, seed=seed)["text"].dropna().tolist()[: batch * count]
    encoded = [tokenizer(text, truncation=True, max_length=128) for text in rows]
    if grouped:  # what the Trainer's group_by_length does: similar lengths share a batch
        encoded.sort(key=lambda e: len(e["input_ids"]))
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    torch.manual_seed(seed)
    return [collator(encoded[i * batch:(i + 1) * batch]) for i in range(count)]


def padding_share(batches: list[dict[str, Any]]) -> float:
    total = sum(b["input_ids"].numel() for b in batches)
    real = sum(int(b["attention_mask"].sum()) for b in batches)
    return 1 - real / total


class Step:
    """One training step (forward, backward, optimizer step) under a set of levers."""

    def __init__(self, *, attention: str = "sdpa", masked_only: bool = True, fused: bool = True,
                 compiled: bool = False):
        import torch
        from transformers import AutoModelForMaskedLM

        from core.fast_mlm import masked_only_parts
        from core.models import bundled_model_path

        torch.manual_seed(0)
        self.model = AutoModelForMaskedLM.from_pretrained(str(bundled_model_path()), attn_implementation=attention)
        self.model.train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=5e-4, fused=fused, foreach=not fused)
        self.parts = masked_only_parts(self.model) if masked_only else None
        self.forward = self.model
        if compiled:
            self.forward = torch.compile(self.model)
            if self.parts is not None:
                encoder, head = self.parts
                self.parts = (torch.compile(encoder), head)

    def __call__(self, batch: dict[str, Any]) -> None:
        from core.fast_mlm import masked_only_loss

        inputs = copy.copy(batch)
        if self.parts is not None:
            loss = masked_only_loss(self.parts, inputs)
        else:
            loss = self.forward(**inputs).loss
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
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile lever")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoTokenizer

    from core import devices
    from core.models import bundled_model_path

    torch.set_num_threads(max(1, devices.physical_cores()))
    tokenizer = AutoTokenizer.from_pretrained(str(bundled_model_path()))
    grouped = make_batches(tokenizer, args.batch, args.steps, grouped=True)
    shuffled = make_batches(tokenizer, args.batch, args.steps, grouped=False)
    engine = Step()

    print("profiling the engine's step ...", flush=True)
    profiled = profile(engine, grouped[:3])

    # name -> (what A is, what B is, A's measurement, B's measurement); B is the engine's choice
    # except where the idea is a candidate the engine does not use (compile, all logical threads).
    def timed(step: Step, batches=grouped) -> Callable[[], float]:
        return lambda: time_steps(step, batches)

    levers: dict[str, tuple[str, str, Callable[[], float], Callable[[], float]]] = {
        "masked-only MLM logits": ("full logits", "masked positions only", timed(Step(masked_only=False)), timed(engine)),
        "SDPA attention": ("eager attention", "SDPA", timed(Step(attention="eager")), timed(engine)),
        "fused AdamW": ("foreach AdamW", "fused AdamW", timed(Step(fused=False)), timed(engine)),
        "length-grouped batches": ("random batches", "length-grouped", timed(engine, shuffled), timed(engine)),
    }
    physical, logical = max(1, devices.physical_cores()), os.cpu_count() or 1
    if logical != physical:
        levers["threads"] = (f"{logical} threads (all logical CPUs)", f"{physical} threads (physical cores)",
                             lambda: with_threads(logical, timed(engine)), timed(engine))
    compile_note = None
    if not args.no_compile:
        try:
            started = time.perf_counter()
            compiled = Step(compiled=True)
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
        print(f"{name:<24} {a_name}: {a_med:.3f} s  {b_name}: {b_med:.3f} s  -> {a_med / b_med:.2f}x", flush=True)

    document = {
        "benchmark": "levers",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": devices.describe_device(),
        "threads": torch.get_num_threads(),
        "batch_size": args.batch,
        "steps": args.steps,
        "repeats": args.repeats,
        "padding_share": {"length_grouped": round(padding_share(grouped), 4),
                          "random": round(padding_share(shuffled), 4)},
        "profile": profiled,
        "levers": results,
        "compile_note": compile_note,
    }
    write_results(args.out, "levers", document, _markdown(document))
    print(_markdown(document))
    return document


def _markdown(doc: dict[str, Any]) -> str:
    p = doc["profile"]
    lines = [
        f"### Where an MLM step's time goes, and which levers pay (bundled MiniLM, {doc['device']}, "
        f"batch {doc['batch_size']})",
        "",
        f"Profile of the engine's step ({p['steps']} steps, {p['self_cpu_ms_total']:.0f} ms self CPU time), "
        "by kind of op:",
        "",
        "| kind | share |",
        "|---|---:|",
        *[f"| {group} | {share:.1%} |" for group, share in p["groups"].items()],
        "",
        "Top ops by self CPU time:",
        "",
        "| op | self CPU ms | share | calls |",
        "|---|---:|---:|---:|",
        *[f"| `{o['op']}` | {o['self_cpu_ms']:.1f} | {o['share']:.1%} | {o['calls']} |" for o in p["top_ops"]],
        "",
        f"Each lever alone, A vs B, median step time over {doc['steps']} identical batches, median of "
        f"{doc['repeats']} interleaved repeats:",
        "",
        "| lever | A | B | A step | B step | B speed-up |",
        "|---|---|---|---:|---:|---:|",
        *[f"| {name} | {r['a']} | {r['b']} | {r['a_step_s'] * 1000:.0f} ms | {r['b_step_s'] * 1000:.0f} ms "
          f"| {r['speedup_b_over_a']:.2f}x |" for name, r in doc["levers"].items()],
        "",
        f"Padding share of the batches: {doc['padding_share']['length_grouped']:.1%} length-grouped, "
        f"{doc['padding_share']['random']:.1%} random (a step over random batches also does more work per "
        "real token, which the step times above include).",
    ]
    if doc.get("compile_note"):
        lines += ["", f"torch.compile: {doc['compile_note']}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
