"""Generated answers, as `core evaluate` makes them: both models of an sft run answering 160 short prompts.

    python -m bench.bench_generation [--run RUNS/ID] [--prompts 160] [--repeats 2]

With no --run, a short news-preset run is trained first (`core train --preset news --max-steps 30`).
The prompts are fresh news headlines asked through the run's own template (bench/news_prompts.py).

In one process, with the models loaded once, each condition answers every prompt with both models
(conditions interleaved, `--repeats` rounds, medians reported):
  before         the path before shared prefixes: every row prefilled from its first token, answers up to
                 32 tokens (evaluate's old fixed length), 16 prompts a batch, the LoRA adapter applied
                 beside the base weights (peft's unmerged layers);
  shared prefix  the tokens every prompt starts with (system turn, instruction, label list) prefilled once,
                 each batch continuing from a copy of their KV cache; still 32 tokens;
  budget         shared prefix, and answers as long as the longest reference + 8 tokens (the run's own
                 answer passes' budget, evaluate's default);
  batch 32       the same, 32 prompts a batch;
  now            the same with the adapter merged into the base weights, as evaluate loads it.
Then `python -m core evaluate RUN --eval-file F` is timed as a user runs it, from process start to exit.
Target (issue #28): <= 30 s for base and fine-tuned answers on 160 short prompts.

Writes bench/results/generation.json and bench/results/generation.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import core_command, write_results
from bench.news_prompts import fresh_headlines, news_eval_chats, train_short_news_run

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_S = 30.0
OLD_NEW_TOKENS = 32
CONDITIONS = {  # name: (share the prefix, new tokens: None for the budget, batch size, adapter merged)
    "before": (False, OLD_NEW_TOKENS, 16, False),
    "shared prefix": (True, OLD_NEW_TOKENS, 16, False),
    "budget": (True, None, 16, False),
    "batch 32": (True, None, 32, False),
    "now": (True, None, 32, True),
}


def _answer_both(models: dict[str, tuple[Any, Any]], chats: list, references: list[str],
                 condition: tuple[bool, int | None, int, bool]) -> tuple[float, dict[str, list[str]]]:
    from core.insight.answer_pass import answer_token_budget
    from core.insight.answers import answer_batches

    share, new_tokens, batch_size, merged = condition
    answers, started = {}, time.perf_counter()
    for which in ("base", "tuned"):
        model, tokenizer = models["tuned merged" if which == "tuned" and merged else which]
        budget = new_tokens or answer_token_budget(tokenizer, references)
        replies: dict[int, str] = {}
        for batch in answer_batches(model, tokenizer, chats, max_new_tokens=budget, batch_size=batch_size,
                                    with_probabilities=False, share_prefix=share):
            replies.update(zip(batch.positions, batch.replies, strict=True))
        answers[which] = [replies[i] for i in range(len(chats))]
    return time.perf_counter() - started, answers


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a finished sft run folder (default: train a short news run)")
    parser.add_argument("--prompts", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--evaluate-only", action="store_true",
                        help="time `core evaluate` alone, --repeats times (writes generation_evaluate.json/md)")
    args = parser.parse_args(argv)
    if args.evaluate_only:
        return evaluate_only(args)
    import torch

    from core.data.instructions import map_to_label
    from core.insight.evaluation import load_run_models, open_run
    from core.models import load_saved

    with tempfile.TemporaryDirectory(prefix="tuneboard-generation-") as tmp_name:
        tmp = Path(tmp_name)
        run, trained_s = run_to_answer(args.run, tmp)
        chats, references = news_eval_chats(run, args.prompts)
        labels = sorted(set(references))
        folder, cfg, tuned_source = open_run(run)
        base, merged = load_run_models(folder, cfg, tuned_source)
        models = {"base": base, "tuned": load_saved(tuned_source, cfg.task), "tuned merged": merged}
        load = os.getloadavg()[0]
        seconds: dict[str, list[float]] = {name: [] for name in CONDITIONS}
        answers: dict[str, dict[str, list[str]]] = {}
        for _ in range(args.repeats):
            for name, condition in CONDITIONS.items():
                elapsed, answers[name] = _answer_both(models, chats, references, condition)
                seconds[name].append(elapsed)
                print(f"{name}: {elapsed:.1f} s", flush=True)
        eval_file = tmp / "headlines.csv"
        fresh_headlines(args.prompts).to_csv(eval_file, index=False)
        evaluate_s = core_command("evaluate", str(run), "--eval-file", str(eval_file), "--output",
                                  str(tmp / "answers.jsonl"))
    before = statistics.median(seconds["before"])
    rows = []
    for name in CONDITIONS:
        median = statistics.median(seconds[name])
        # Against the first condition with the same answer length: a shorter budget cuts rambling answers short.
        alike = next(other for other, c in CONDITIONS.items() if c[1] == CONDITIONS[name][1])
        same = {which: sum(a == b for a, b in zip(answers[name][which], answers[alike][which], strict=True))
                for which in ("base", "tuned")}
        accuracy = {which: sum(map_to_label(a, labels) == r for a, r in zip(answers[name][which], references,
                                                                              strict=True)) / len(references)
                    for which in ("base", "tuned")}
        rows.append({"condition": name, "seconds": [round(s, 1) for s in seconds[name]], "median_s": round(median, 1),
                     "speedup": round(before / median, 2), "same_answers_as": alike, "same_answers": same,
                     "accuracy": accuracy})
    doc = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.processor() or platform.machine(),
           "threads": torch.get_num_threads(), "load_average": round(load, 2),
           "run": str(args.run) if args.run else "news preset, 30 steps (trained here)", "trained_s": trained_s,
           "prompts": len(chats), "repeats": args.repeats, "rows": rows,
           "core_evaluate_s": round(evaluate_s, 1), "target_s": TARGET_S, "met": evaluate_s <= TARGET_S,
           "samples": {which: answers["now"][which][:5] for which in ("base", "tuned")}}
    write_results(RESULTS, "generation", doc, _markdown(doc))
    print(_markdown(doc))
    return doc


def run_to_answer(run: Path | None, tmp: Path) -> tuple[Path, float | None]:
    """(the sft run folder whose models answer, seconds spent training it here: None for a given run)."""
    if run is not None:
        return run, None
    return tmp / "news-run", train_short_news_run(tmp / "news-run")


def evaluate_only(args: argparse.Namespace) -> dict[str, Any]:
    """`python -m core evaluate` on fresh headlines, as a user runs it, `repeats` times in a row."""
    with tempfile.TemporaryDirectory(prefix="tuneboard-generation-") as tmp_name:
        tmp = Path(tmp_name)
        run, trained_s = run_to_answer(args.run, tmp)
        eval_file = tmp / "headlines.csv"
        fresh_headlines(args.prompts).to_csv(eval_file, index=False)
        load = os.getloadavg()[0]
        seconds = [core_command("evaluate", str(run), "--eval-file", str(eval_file), "--output",
                                str(tmp / f"answers-{i}.jsonl")) for i in range(args.repeats)]
    median = statistics.median(seconds)
    doc = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.processor() or platform.machine(),
           "load_average": round(load, 2), "run": str(args.run) if args.run else "news preset, 30 steps (trained here)",
           "trained_s": trained_s, "prompts": args.prompts, "seconds": [round(s, 1) for s in seconds],
           "core_evaluate_s": round(median, 1), "target_s": TARGET_S, "met": median <= TARGET_S}
    markdown = (f"`python -m bench.bench_generation --evaluate-only` on {doc['when']} (load average {doc['load_average']} "
                f"at the start): `python -m core evaluate {doc['run']}` on {doc['prompts']} fresh headlines, process start "
                f"to exit, {len(seconds)} times: {', '.join(f'{s} s' for s in doc['seconds'])}; median "
                f"**{doc['core_evaluate_s']} s** (target <= {TARGET_S:g} s: {'met' if doc['met'] else 'not met'}).\n")
    write_results(RESULTS, "generation_evaluate", doc, markdown)
    print(markdown)
    return doc


def _markdown(doc: dict[str, Any]) -> str:
    lines = [f"`python -m bench.bench_generation` on {doc['when']} ({doc['threads']} threads, load average "
             f"{doc['load_average']} at the start): {doc['run']}; {doc['prompts']} fresh news headlines, both models "
             f"answering greedily, {doc['repeats']} interleaved rounds.", "",
             "| condition | seconds (median) | each round | speed-up | same answers (base / tuned) as | "
             "accuracy base / tuned |", "|---|---:|---|---:|---:|---:|"]
    for r in doc["rows"]:
        same, acc = r["same_answers"], r["accuracy"]
        lines.append(f"| {r['condition']} | {r['median_s']} | {', '.join(map(str, r['seconds']))} | {r['speedup']}x | "
                     f"{same['base']} / {same['tuned']} of {doc['prompts']} as {r['same_answers_as']} | {acc['base']:.1%} / {acc['tuned']:.1%} |")
    lines += ["", f"`python -m core evaluate` on the same {doc['prompts']} headlines, process start to exit (imports, "
              f"both models loaded, both answering, scored, written): **{doc['core_evaluate_s']} s** (target "
              f"<= {doc['target_s']:.0f} s: {'met' if doc['met'] else 'not met'})."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
