"""Instruction tuning against TRL: SmolLM2-135M-Instruct on chat data, Tuneboard's engine vs a tuned SFTTrainer script.

    python -m bench.bench_sft_trl [--strategies lora full] [--steps 12] [--warmup 2] [--repeats 2]

Both sides train the bundled SmolLM2-135M-Instruct (`bundled:smollm2-135m`) on the same chat JSONL
(bench/tickets.py: a system turn, a customer message, the team as the answer), at the same batch size,
learning rate (Tuneboard's default for the strategy and model size), schedule, seed and max length, for
the same number of optimizer steps. Each condition is a fresh process:
  tuneboard  the engine's own Trainer (core.training.trainer: prepare_run + build_trainer, as the engine,
             the LR finder and the other benches build it) and its choices: answer-only LM head,
             length-grouped batches, bf16 autocast only where the CPU runs it fast, the allocator settings.
  trl-fp32   the script a tuned user writes: TRL's SFTTrainer on the chats as conversational
             prompt-completion rows (answer-only loss through TRL's completion_only_loss: TRL 1.16's
             assistant_only_loss needs a template with {% generation %} markers, and TRL has no
             training variant of SmolLM2's), dynamic padding (TRL's collator), gradient checkpointing
             off, use_cpu=True, bf16 off. TRL's fused LM head scores only the answer positions on
             CUDA / XPU (Triton); on a CPU it projects every position, in chunks.
  trl-bf16   the same with bf16 on, which the Trainer keeps on a CPU with use_cpu=True. Run where the
             bf16 matmul peak measured in this run is at least BF16_USEFUL of the fp32 one; elsewhere
             (AVX2-only CPUs: bf16 matmuls tens of times slower) it cannot be the faster baseline, and the
             document says so with the measured peaks (`--trl-precisions fp32 bf16` forces it).
Strategies: LoRA with Tuneboard's sft default (rank 8, alpha 16, no dropout, every linear layer of the
blocks: core.training.strategies.default_lora_targets) on both sides, and a full fine-tune.

Measured per condition: training-loop samples/s between step boundaries after the warm-up steps (model
load and data preparation are not in it); the answer-token loss of the trained model on held-out chats,
computed by one function for every condition (the same rows, tokens and labels) at the same step; model
FLOP utilisation: the FLOPs the step needs (real tokens through the blocks and attention, the LM head at the
answer positions only, no weight gradients for frozen weights) per second, over the fp32 and bf16 matmul
peaks measured in this run by a short torch.matmul loop (before and after; the higher counts). Conditions
are interleaved within a repeat, the order reversed every other repeat. The baseline of a strategy is the
faster TRL precision; ratios are Tuneboard / baseline samples/s, per repeat and their median.
Targets (issue #28): >= 2x for LoRA, >= 1.5x for full; eval loss within 2% of the baseline's.

Writes bench/results/sft_trl.json and sft_trl.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import write_results
from bench.tickets import generate_tickets

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
MODEL = "bundled:smollm2-135m"
STRATEGIES = ("lora", "full")
TARGETS = {"lora": 2.0, "full": 1.5}  # Tuneboard / TRL training-loop samples/s
LOSS_TOLERANCE = 0.02
BF16_USEFUL = 0.5  # run TRL in bf16 when its matmul peak is at least this share of fp32's (else it cannot win)
SEED = 42
IGNORE = -100


# ---- data -------------------------------------------------------------------------------------

def write_chat_files(folder: Path, train_rows: int, eval_rows: int) -> tuple[Path, Path]:
    """Training chats and held-out chats (no message of the training file) as JSONL files in folder."""
    train = generate_tickets(train_rows, seed=0)
    seen = {chat["messages"][1]["content"] for chat in train}
    held_out = [c for c in generate_tickets(4 * eval_rows, seed=1) if c["messages"][1]["content"] not in seen]
    paths = folder / "chats-train.jsonl", folder / "chats-eval.jsonl"
    for path, chats in zip(paths, (train, held_out[:eval_rows]), strict=True):
        path.write_text("".join(json.dumps(chat) + "\n" for chat in chats), encoding="utf-8")
    return paths


def read_chats(path: Path) -> list[dict[str, Any]]:
    """The chats of a JSONL file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def prompt_completion(chat: dict[str, Any]) -> dict[str, Any]:
    """A chat as TRL's conversational prompt-completion row: every turn before the last answer, then the answer."""
    messages = chat["messages"]
    return {"prompt": messages[:-1], "completion": messages[-1:]}


# ---- what a step costs ------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelCosts:
    """Weights behind a token's matmuls: the blocks' linear layers, the LM head, LoRA's A and B."""

    body: int  # weights of the linear layers inside the blocks (base weights only)
    head: int  # the output projection: vocabulary x hidden
    adapters: int  # LoRA A and B weights (0 without LoRA)
    layers: int
    width: int  # attention width: heads x head dim


def model_costs(model: Any) -> ModelCosts:
    """The ModelCosts of a (peft-wrapped or plain) causal LM, from its linear layers and config."""
    from torch import nn

    from core.models.fast_mlm import unwrap_model

    inner = unwrap_model(model)
    head = inner.get_output_embeddings()
    body = adapters = 0
    for name, module in inner.named_modules():
        if not isinstance(module, nn.Linear) or module is head:
            continue
        if "lora_" in name:
            adapters += module.weight.numel()
        else:
            body += module.weight.numel()
    config = inner.config
    heads = int(config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    return ModelCosts(body=body, head=head.weight.numel(), adapters=adapters,
                      layers=int(config.num_hidden_layers), width=heads * head_dim)


def batch_stats(batch: dict[str, Any]) -> dict[str, int]:
    """What a collated causal-LM batch holds: rows, padded and real tokens, trained positions, sum of squared lengths."""
    ids, labels, mask = batch["input_ids"], batch["labels"], batch.get("attention_mask")
    lengths = mask.sum(dim=1) if mask is not None else ids.new_full((ids.shape[0],), ids.shape[1])
    return {"rows": int(ids.shape[0]), "padded": int(ids.numel()), "tokens": int(lengths.sum()),
            "trained": int((labels[:, 1:] != IGNORE).sum()), "attention": int((lengths.long() ** 2).sum())}


def train_flops(costs: ModelCosts, stats: dict[str, int], strategy: str) -> float:
    """FLOPs a training step on these rows needs (matmuls only; padding, and the head off the answers, not counted).

    Forward: 2 per weight per real token through the blocks (and LoRA's adapters), attention's two
    L x L matmuls (2 L^2 width each, per layer, not halved for causality), and the head at the trained
    positions only. Backward: twice the forward where weights train (input and weight gradients);
    once where they are frozen (input gradients only: LoRA's base weights and head), twice for attention.
    """
    tokens, trained = stats["tokens"], stats["trained"]
    body = 2.0 * costs.body * tokens
    adapters = 2.0 * costs.adapters * tokens
    attention = 4.0 * costs.width * costs.layers * stats["attention"]
    head = 2.0 * costs.head * trained
    if strategy == "full":
        return 3.0 * (body + adapters + attention + head)
    return 2.0 * body + 3.0 * adapters + 3.0 * attention + 2.0 * head


def matmul_peak(dtype_name: str, device: str = "cpu", seconds: float = 1.0,
                sizes: tuple[int, ...] = (512, 1024, 2048)) -> float:
    """FLOP/s of the fastest square torch.matmul loop among sizes (a size whose single product is slow ends the climb)."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        a @ b  # first call: kernels picked, memory touched
        sync()
        started, count = time.perf_counter(), 0
        while True:
            a @ b
            count += 1
            sync()
            elapsed = time.perf_counter() - started
            if elapsed >= seconds / len(sizes):
                break
        best = max(best, 2.0 * n**3 * count / elapsed)
        if elapsed / count > 0.25 * seconds:  # one product took long: bigger ones only cost time
            break
    return best


def machine_peaks(seconds: float = 1.0) -> dict[str, float]:
    """fp32 and bf16 matmul FLOP/s of this CPU, measured now."""
    return {precision: matmul_peak(precision, seconds=seconds) for precision in ("fp32", "bf16")}


# ---- one condition (a child process) -----------------------------------------------------------

class CountingCollator:
    """Wraps a data collator and keeps batch_stats of every batch it builds, in order (batch i is step i + 1)."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.batches: list[dict[str, int]] = []

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.inner(features)
        self.batches.append(batch_stats(batch))
        return batch


def step_clock() -> Any:
    """A TrainerCallback recording perf_counter at the start of training and at every step's end (CUDA synchronised)."""
    import torch
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self):
            self.started: float | None = None
            self.ends: dict[int, float] = {}

        @staticmethod
        def _now() -> float:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            return time.perf_counter()

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = self._now()

        def on_step_end(self, args, state, control, **kwargs):
            self.ends[state.global_step] = self._now()

    return StepClock()


def held_out_loss(model: Any, tokenizer: Any, chats: list[dict[str, Any]], max_length: int,
                  batch_size: int = 8) -> tuple[float, int]:
    """(mean next-token loss on the answer tokens, how many) of held-out chats: one encoding and loss for every condition.

    The chats are encoded as Tuneboard encodes them (core.data.instructions), which for SmolLM2 trains the
    same tokens as TRL's prompt-completion rows (the answer, <|im_end|> and its newline); no autocast.
    """
    import torch
    from transformers import DataCollatorForSeq2Seq

    from core.data.instructions import encode_conversation, training_chat_template
    from core.models.fast_mlm import answer_only_loss, masked_only_parts

    template = training_chat_template(tokenizer)
    rows = [{key: encoded[key] for key in ("input_ids", "attention_mask", "labels")}
            for encoded in (encode_conversation(tokenizer, chat["messages"], max_length, chat_template=template)
                            for chat in chats)]
    collate = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE)
    parts = masked_only_parts(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = {k: v.to(device) for k, v in collate(rows[start:start + batch_size]).items()}
            total += float(answer_only_loss(parts, batch, num_items_in_batch=1))  # the sum over the batch
            count += int((batch["labels"][:, 1:] != IGNORE).sum())
    model.train(was_training)
    return total / max(1, count), count


def measured(clock: Any, counter: CountingCollator, costs: ModelCosts, strategy: str, warmup: int,
             batch: int) -> dict[str, Any]:
    """Samples/s, FLOPs and tokens between the end of step `warmup` and the last step."""
    last = max(clock.ends)
    if last <= warmup:
        raise RuntimeError(f"training ended at step {last}, within the {warmup} warm-up steps")
    seconds = clock.ends[last] - clock.ends[warmup]
    batches = counter.batches[warmup:last]  # batch i trains step i + 1
    steps = last - warmup
    totals = {key: sum(b[key] for b in batches) for key in ("rows", "padded", "tokens", "trained")}
    return {
        "measured_steps": steps, "seconds": round(seconds, 3),
        "samples_per_s": steps * batch / seconds,
        "step_seconds": [round(clock.ends[s] - clock.ends[s - 1], 3) for s in range(warmup + 1, last + 1)],
        "flops": sum(train_flops(costs, b, strategy) for b in batches),
        **{f"{key}_per_row": value / max(1, totals["rows"]) for key, value in totals.items() if key != "rows"},
    }


def train_and_measure(trainer: Any, tokenizer: Any, args: argparse.Namespace, precision: str) -> dict[str, Any]:
    """Train with a step clock and a counting collator; speed, FLOPs, held-out loss and what trained."""
    import torch

    clock = step_clock()
    trainer.add_callback(clock)
    counter = CountingCollator(trainer.data_collator)
    trainer.data_collator = counter
    trainer.train()
    model = trainer.model
    loss, tokens = held_out_loss(model, tokenizer, read_chats(args.eval_file), args.max_length)
    return {**measured(clock, counter, model_costs(model), args.strategy, args.warmup, args.batch),
            "precision": precision, "eval_loss": loss, "eval_tokens": tokens,
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "attention": getattr(model.config, "_attn_implementation", None), "threads": torch.get_num_threads(),
            "load_s": round(clock.started - args.process_started, 2)}


def tuneboard_condition(args: argparse.Namespace, device: str = "cpu") -> dict[str, Any]:
    """The engine's Trainer for this strategy (core.training.trainer), timed step by step."""
    import torch

    from core import devices
    from core.plan.task_switch import task_defaults
    from core.run.folder import RunFolder
    from core.training.trainer import LogOnlySink, build_trainer, prepare_run, set_threads

    cfg = task_defaults("sft")
    cfg.model.source, cfg.model.max_length = MODEL, args.max_length
    cfg.data.source, cfg.data.path, cfg.data.eval_path = "file", str(args.train_file), str(args.eval_file)
    cfg.strategy.name = args.strategy
    t = cfg.training
    t.device, t.seed, t.batch_size, t.learning_rate = device, SEED, args.batch, args.lr
    t.max_steps = args.warmup + args.steps
    t.eval_steps = t.save_steps = 100 * t.max_steps  # no evaluation or checkpoint inside the timed loop
    t.keep_model, t.early_stopping_patience = "last", 0
    cfg.validate()
    set_threads(device)
    torch.manual_seed(SEED)
    with tempfile.TemporaryDirectory(prefix="tuneboard-bench-sft-trl-") as scratch:
        folder = RunFolder(Path(scratch))
        prepared = prepare_run(cfg, folder, LogOnlySink(None), is_main=False)
        trainer = build_trainer(cfg, folder, prepared, device, has_eval=False)
        precision = "bf16" if devices.use_bf16(device, t.precision) else "fp32"
        return train_and_measure(trainer, prepared.tokenizer, args, precision)


def trl_condition(args: argparse.Namespace, precision: str) -> dict[str, Any]:
    """TRL's SFTTrainer as a tuned user configures it for answer-only SFT on a CPU, timed step by step."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from core.config import ModelConfig
    from core.models import empty_model
    from core.models.resolve import local_folder, resolve_model
    from core.plan.task_switch import task_defaults
    from core.training.strategies import default_lora_targets

    path = str(local_folder(resolve_model(MODEL)))  # the model folder a user would point at
    tokenizer = AutoTokenizer.from_pretrained(path)
    train = Dataset.from_list([prompt_completion(chat) for chat in read_chats(args.train_file)])
    peft_config = None
    if args.strategy == "lora":  # Tuneboard's sft defaults: rank, alpha, dropout, every linear layer of the blocks
        defaults = task_defaults("sft").strategy
        targets = default_lora_targets(empty_model(ModelConfig(source=MODEL), "sft"), "sft")
        peft_config = LoraConfig(r=defaults.lora_r, lora_alpha=defaults.lora_alpha, lora_dropout=defaults.lora_dropout,
                                 target_modules=targets, task_type="CAUSAL_LM")
    with tempfile.TemporaryDirectory(prefix="tuneboard-bench-trl-") as scratch:
        config = SFTConfig(
            output_dir=scratch, seed=SEED, max_steps=args.warmup + args.steps,
            per_device_train_batch_size=args.batch, learning_rate=args.lr, lr_scheduler_type="linear",
            warmup_steps=0.06, weight_decay=0.0,  # Tuneboard's schedule: linear, 6% warm-up, no decay
            max_length=args.max_length, completion_only_loss=True, packing=False, padding_free=False,
            gradient_checkpointing=False, bf16=precision == "bf16", use_cpu=True,
            save_strategy="no", eval_strategy="no", report_to="none", disable_tqdm=True,
        )
        trainer = SFTTrainer(model=path, args=config, train_dataset=train, processing_class=tokenizer,
                             peft_config=peft_config)
        return train_and_measure(trainer, tokenizer, args, precision)


def run_child(args: argparse.Namespace) -> dict[str, Any]:
    """One condition in this (fresh) process; its result is written to args.result_file."""
    if args.child == "tuneboard":
        from core.devices import tune_training_process

        tune_training_process()  # as the engine's processes do, before torch is imported
        result = tuneboard_condition(args)
    else:
        result = trl_condition(args, args.child.removeprefix("trl-"))
    result.update(condition=args.child, strategy=args.strategy)
    args.result_file.write_text(json.dumps(result), encoding="utf-8")
    return result


def run_condition(condition: str, strategy: str, args: argparse.Namespace, files: tuple[Path, Path],
                  lr: float, work: Path) -> dict[str, Any]:
    """Spawn a fresh process for one condition and read its result (raises with its stderr when it fails)."""
    result_file = work / f"{strategy}-{condition}-{time.monotonic_ns()}.json"
    command = [sys.executable, "-m", "bench.bench_sft_trl", "--child", condition, "--strategy", strategy,
               "--train-file", str(files[0]), "--eval-file", str(files[1]), "--result-file", str(result_file),
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch", str(args.batch),
               "--max-length", str(args.max_length), "--lr", repr(lr)]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{strategy} {condition} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(result_file.read_text(encoding="utf-8"))
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result


# ---- the parent: conditions, summary, document -------------------------------------------------

def default_rate(strategy: str) -> float:
    """Tuneboard's default learning rate for sft with this strategy on SmolLM2 (by its size)."""
    from core.config import ModelConfig, default_learning_rate
    from core.models import empty_model

    model = empty_model(ModelConfig(source=MODEL), "sft")
    return default_learning_rate("sft", strategy, sum(p.numel() for p in model.parameters()))


def trl_precisions(requested: list[str], peaks: dict[str, float]) -> tuple[list[str], str | None]:
    """The TRL precisions to run, and why bf16 is left out (None when it runs)."""
    if requested != ["auto"]:
        return [p for p in ("fp32", "bf16") if p in requested], None
    share = peaks["bf16"] / peaks["fp32"]
    if share >= BF16_USEFUL:
        return ["fp32", "bf16"], None
    return ["fp32"], (f"bf16 matmuls ran at {peaks['bf16'] / 1e9:.1f} GFLOP/s against {peaks['fp32'] / 1e9:.1f} fp32 "
                      f"before the runs ({share:.1%}): TRL in bf16 cannot be the faster baseline on this CPU, so it was not run "
                      "(`--trl-precisions fp32 bf16` runs it)")


def interleaved(pairs: list[tuple[str, str]], repeat: int) -> list[tuple[str, str]]:
    """The (strategy, condition) order of a repeat: as listed, reversed every other repeat."""
    return pairs if repeat % 2 == 0 else pairs[::-1]


def summarise(strategy: str, runs: dict[str, list[dict[str, Any]]], peaks: dict[str, float]) -> dict[str, Any]:
    """Medians per condition, the baseline (faster TRL precision), per-repeat ratios, loss check, MFU, target."""
    best_peak = max(peaks.values())
    conditions = {}
    for condition, results in runs.items():
        samples = statistics.median(r["samples_per_s"] for r in results)
        flops_per_s = statistics.median(r["flops"] / r["seconds"] for r in results)
        precision = results[0]["precision"]
        conditions[condition] = {
            "precision": precision, "samples_per_s": round(samples, 3), "flops_per_s": flops_per_s,
            "mfu": round(flops_per_s / peaks[precision], 4), "mfu_vs_best_peak": round(flops_per_s / best_peak, 4),
            "eval_loss": round(statistics.median(r["eval_loss"] for r in results), 4),
            "tokens_per_row": round(statistics.fmean(r["tokens_per_row"] for r in results), 1),
            "padded_per_row": round(statistics.fmean(r["padded_per_row"] for r in results), 1),
            "trained_per_row": round(statistics.fmean(r["trained_per_row"] for r in results), 2),
            "trainable_params": results[0]["trainable_params"], "attention": results[0]["attention"],
            "threads": results[0]["threads"],
        }
    trl = [c for c in conditions if c.startswith("trl-")]
    baseline = max(trl, key=lambda c: conditions[c]["samples_per_s"])
    ratios = [ours["samples_per_s"] / max(r["samples_per_s"] for r in (runs[c][i] for c in trl))
              for i, ours in enumerate(runs["tuneboard"])]
    ratio = statistics.median(ratios)
    ours_loss, base_loss = conditions["tuneboard"]["eval_loss"], conditions[baseline]["eval_loss"]
    loss_gap = (ours_loss - base_loss) / base_loss
    return {
        "conditions": conditions, "baseline": baseline,
        "ratio": round(ratio, 3), "ratio_per_repeat": [round(r, 3) for r in ratios],
        "target": TARGETS[strategy], "target_met": ratio >= TARGETS[strategy],
        "eval_loss_gap": round(loss_gap, 4), "eval_loss_within": abs(loss_gap) <= LOSS_TOLERANCE,
    }


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument("--steps", type=int, default=12, help="measured optimizer steps per condition (default 12)")
    parser.add_argument("--warmup", type=int, default=2, help="steps before the clock starts (default 2, at least 1)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8, help="rows per step: Tuneboard's sft default (8)")
    parser.add_argument("--max-length", type=int, default=128, help="tokens, both sides (the chats have 71-95)")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="both sides (default: Tuneboard's default for sft, the strategy and the model's size)")
    parser.add_argument("--train-rows", type=int, default=400)
    parser.add_argument("--eval-rows", type=int, default=64)
    parser.add_argument("--trl-precisions", nargs="+", choices=["auto", "fp32", "bf16"], default=["auto"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    # A child process runs one condition (run_condition spawns it).
    parser.add_argument("--child", choices=["tuneboard", "trl-fp32", "trl-bf16"], help=argparse.SUPPRESS)
    parser.add_argument("--strategy", choices=STRATEGIES, help=argparse.SUPPRESS)
    parser.add_argument("--lr", type=float, help=argparse.SUPPRESS)
    for hidden in ("--train-file", "--eval-file", "--result-file"):
        parser.add_argument(hidden, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.process_started = time.perf_counter()
        return run_child(args)
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")

    import torch
    import transformers
    import trl

    from core import devices

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    before = machine_peaks()
    precisions, bf16_note = trl_precisions(args.trl_precisions, before)
    conditions = ["tuneboard"] + [f"trl-{p}" for p in precisions]
    rates = {s: args.learning_rate or default_rate(s) for s in args.strategies}
    pairs = [(s, c) for s in args.strategies for c in conditions]
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {s: {c: [] for c in conditions} for s in args.strategies}
    with tempfile.TemporaryDirectory(prefix="tuneboard-bench-sft-trl-") as name:
        work = Path(name)
        files = write_chat_files(work, args.train_rows, args.eval_rows)
        for repeat in range(args.repeats):
            for strategy, condition in interleaved(pairs, repeat):
                result = run_condition(condition, strategy, args, files, rates[strategy], work)
                raw[strategy][condition].append(result)
                print(f"[sft_trl] repeat {repeat + 1} {strategy:<4} {condition:<9} {result['samples_per_s']:6.2f} "
                      f"samples/s  eval loss {result['eval_loss']:.4f}  wall {result['wall_s']:.0f} s", flush=True)
    after = machine_peaks()
    peaks = {p: max(before[p], after[p]) for p in before}
    summary = {s: summarise(s, raw[s], peaks) for s in args.strategies}
    document = {
        "benchmark": "sft_trl",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.bench_sft_trl " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "physical_cores": devices.physical_cores(),
                    "fast_bf16": devices.use_bf16("cpu"), "platform": platform.platform(),
                    "python": sys.version.split()[0], "torch": torch.__version__,
                    "transformers": transformers.__version__, "trl": trl.__version__},
        "load_average_before": round(load_before, 2), "load_average_after": round(os.getloadavg()[0], 2),
        "wall_s": round(time.perf_counter() - started, 1),
        "model": MODEL, "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats, "batch": args.batch,
        "max_length": args.max_length, "train_rows": args.train_rows, "eval_rows": args.eval_rows,
        "learning_rates": rates, "peaks_flops": peaks, "peaks_before": before, "peaks_after": after,
        "bf16_note": bf16_note,
        "targets": TARGETS, "loss_tolerance": LOSS_TOLERANCE,
        "summary": summary, "raw": raw,
    }
    write_results(args.out, "sft_trl", document, _markdown(document))
    print(_markdown(document))
    return document


def _markdown(doc: dict[str, Any]) -> str:
    m, peaks = doc["machine"], doc["peaks_flops"]
    lines = [
        "## Instruction tuning against TRL",
        "",
        f"`{doc['command'].strip()}` on {m['cpus']} CPUs ({'fast bf16' if m['fast_bf16'] else 'no fast bf16'}), "
        f"{doc['date']}, {doc['wall_s'] / 60:.0f} min, load average {doc['load_average_before']} before and "
        f"{doc['load_average_after']} after: torch {m['torch']}, transformers {m['transformers']}, TRL {m['trl']}. "
        f"SmolLM2-135M-Instruct on {doc['train_rows']} chats of bench/tickets.py, batch {doc['batch']}, max length "
        f"{doc['max_length']}, {doc['warmup']} warm-up + {doc['steps']} measured steps per condition, each a fresh "
        f"process, {doc['repeats']} repeat(s) interleaved. Eval loss: answer tokens of {doc['eval_rows']} held-out "
        "chats, one function for all, after the last step. MFU: the FLOPs the step needs (head at the answer "
        f"positions only) over the matmul peak of the condition's precision measured in this run "
        f"(fp32 {peaks['fp32'] / 1e9:.0f}, bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s); in brackets against the "
        "higher of the two.",
        "",
    ]
    if doc.get("bf16_note"):
        lines += [f"TRL bf16: {doc['bf16_note']}.", ""]
    lines += ["| strategy | condition | precision | samples/s | MFU | eval loss | real / padded tokens per row "
              "| trainable params |", "|---|---|---|---:|---:|---:|---|---:|"]
    for strategy, s in doc["summary"].items():
        for condition, c in s["conditions"].items():
            mark = " (baseline)" if condition == s["baseline"] else ""
            lines.append(f"| {strategy} | {condition}{mark} | {c['precision']} | {c['samples_per_s']:.2f} "
                         f"| {c['mfu']:.1%} ({c['mfu_vs_best_peak']:.1%}) | {c['eval_loss']:.4f} "
                         f"| {c['tokens_per_row']} / {c['padded_per_row']} | {c['trainable_params']:,} |")
    lines += ["", "| strategy | learning rate | Tuneboard / TRL (median) | per repeat | target | met "
              f"| eval loss gap | within {doc['loss_tolerance']:.0%} |", "|---|---:|---:|---|---:|---|---:|---|"]
    for strategy, s in doc["summary"].items():
        per_repeat = ", ".join(f"{r:.2f}x" for r in s["ratio_per_repeat"])
        lines.append(f"| {strategy} | {doc['learning_rates'][strategy]:g} | **{s['ratio']:.2f}x** | {per_repeat} "
                     f"| >= {s['target']:.1f}x | {'yes' if s['target_met'] else 'NO'} | {s['eval_loss_gap']:+.2%} "
                     f"| {'yes' if s['eval_loss_within'] else 'NO'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
