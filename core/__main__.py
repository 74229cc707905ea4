"""Headless CLI: `python -m core train --config run.yaml [flags]`, also under `accelerate launch`.

Errors a user can cause end with one line on stderr and exit code 2; a crash prints where the
traceback was logged and exits 1. SIGINT / SIGTERM stop gracefully with a checkpoint.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from pathlib import Path

EXIT_USER_ERROR = 2
EXIT_CRASH = 1


def _add_config_flags(command: argparse.ArgumentParser) -> None:
    """The flags that build a RunConfig (shared by train and sweep)."""
    command.add_argument("--config", help="A run config YAML (saved from Setup or a run folder).")
    command.add_argument("--preset", help="Start from a named scenario (nike, nike-mlm, news); other flags override it.")
    command.add_argument("--task", help="mlm | classification | causal | sft (instruction tuning: LoRA on SmolLM2, "
                                        "batches of 8, unless --strategy / --model / --batch-size say otherwise)")
    command.add_argument("--model", help="'bundled', a Hub id, a local model folder, or run:FOLDER (a finished run's model).")
    command.add_argument("--strategy", help="full | feature-extraction | freeze-layers | gradual-unfreeze | lora | "
                                            "prompt (sft only: no training, the base model answers the eval prompts)")
    command.add_argument("--few-shot", type=int, metavar="K",
                         help="sft: K examples from the training set before each eval prompt the base model answers "
                              "(the prompt strategy's prompt, every run's 'before' score; 0-32, default 0).")
    command.add_argument("--dataset", help="synthetic (product reviews) | news (built-in headlines, 8 categories, a "
                                           "'human' column) | a data FILE | hub:NAME | curated:NAME")
    command.add_argument("--eval-file", help="Separate evaluation file.")
    command.add_argument("--text-column")
    command.add_argument("--label-column")
    command.add_argument("--prompt-column", help="sft: the prompt column, when the data's fields are not recognised.")
    command.add_argument("--response-column", help="sft: the answer column (with --prompt-column).")
    command.add_argument("--prompt-template",
                         help="sft on labelled texts: the user message, with {text} and {labels}.")
    command.add_argument("--train-on-prompt", action="store_true", default=None,
                         help="sft: train on the prompt's tokens too (default: the answers only).")
    command.add_argument("--epochs", type=float,
                         help="Passes over the data. Neither this nor --max-steps (nor the config's): enough steps for the "
                              "data by the default rule, evaluated ~8 times, the best kept, stopping early on a plateau.")
    command.add_argument("--max-steps", type=int, help="Optimizer steps to train for; wins over --epochs.")
    command.add_argument("--batch-size", type=int)
    command.add_argument("--learning-rate", type=_learning_rate_flag,
                         help="A number, or 'auto': a learning-rate range test on this model, data and strategy picks it "
                              "when the run starts (a sweep: one test per run). Not given: the config's, else the "
                              "default for the task, strategy and model size.")
    command.add_argument("--save-steps", type=int)
    command.add_argument("--eval-steps", type=int, help="Evaluate every N steps (not given: about 8 evaluations).")
    command.add_argument("--rows", type=int, help="Synthetic data: how many rows to generate.")
    command.add_argument("--max-length", type=_max_length_flag, default=_MAX_LENGTH_UNSET,
                         help="Longest input in tokens, or 'auto' (what an empty config means): long enough for 99%% of the training "
                              "rows, capped by the model. The run log says how many rows are still cut.")
    command.add_argument("--log-to", type=_log_to_flag, metavar="TRACKERS",
                         help="Also log to experiment trackers, comma-separated: tensorboard (event files in the run "
                              "folder's tensorboard/), mlflow (to $MLFLOW_TRACKING_URI, else the run folder's mlruns/); "
                              "'none' logs to neither.")


def _max_length_flag(value: str) -> int | None:
    """--max-length: a positive number of tokens, or 'auto' (None: follow the data)."""
    if value.strip().lower() == "auto":
        return None
    try:
        tokens = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of tokens or 'auto'") from None
    if tokens < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: the max length must be at least 1 token")
    return tokens


_MAX_LENGTH_UNSET = object()


def _log_to_flag(value: str) -> list[str]:
    """--log-to: 'tensorboard,mlflow' -> ['tensorboard', 'mlflow']; 'none' -> []. The config checks the names."""
    names = [name.strip().lower() for name in value.split(",") if name.strip()]
    return [] if names == ["none"] else list(dict.fromkeys(names))


def _learning_rate_flag(value: str) -> float | str:
    """--learning-rate: a number or 'auto' (core.training.lr_finder)."""
    if value.strip().lower() == "auto":
        return "auto"
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number or 'auto'") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Tuneboard fine-tuning engine.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="Fine-tune a model from a run config and/or flags.")
    _add_config_flags(train)
    train.add_argument("--output-dir", help="Run folder to create (default: runs/<new id>).")
    train.add_argument("--resume", metavar="RUN_FOLDER", help="Continue a stopped or interrupted run, or one left running by a killed process.")
    sweep = commands.add_parser(
        "sweep", help="Compare strategies (and learning rates): train a group of runs one after another, print the table."
    )
    _add_config_flags(sweep)
    sweep.add_argument("--strategies", help="Comma-separated strategies to compare, e.g. full,lora,feature-extraction "
                       "(sft: prompt,lora,full puts prompting without training beside them).")
    sweep.add_argument("--learning-rates", help="Optional, up to 3, comma-separated: every strategy runs at each.")
    sweep.add_argument("--output-dir", help="Runs folder for the group's runs and its group file (default: runs/).")
    sweep.add_argument("--resume", metavar="GROUP_FILE", help="Finish an interrupted group: its groups/<id>.json file.")
    generate = commands.add_parser(
        "generate", help="Continue a prompt with a causal-LM run's base and fine-tuned models, side by side."
    )
    generate.add_argument("run_folder", metavar="RUN_FOLDER", help="The run folder (runs/<id>).")
    generate.add_argument("--prompt", required=True, help="The text both models continue.")
    generate.add_argument("--max-new-tokens", type=int, default=40, help="How many tokens to add (1-512; default 40).")
    generate.add_argument("--temperature", type=float, default=0.7, help="0 = greedy (default 0.7).")
    generate.add_argument("--top-p", type=float, default=0.95, help="Nucleus sampling cut-off (default 0.95).")
    generate.add_argument("--seed", type=int, default=0, help="Sampling seed: the same seed gives the same text.")
    generate.add_argument("--repetition-penalty", type=float, default=1.2,
                          help="Repetition guard: scores of tokens already in the text are divided by this (1 = off; default 1.2).")
    generate.add_argument("--no-repeat-ngram-size", type=int, default=3,
                          help="Repetition guard: no n tokens in a row appear twice (0 = off; default 3).")
    generate.add_argument("--before", choices=("parent", "original"), default="parent",
                          help="For a run fine-tuned from another run: compare with that run (parent) or the original base.")
    report = commands.add_parser("report", help="Write one self-contained HTML report of a run (opens offline).")
    report.add_argument("run_folder", metavar="RUN_FOLDER", help="The run's folder, e.g. runs/<id>.")
    report.add_argument("--output", required=True, metavar="FILE.html", help="Where to write the report.")
    evaluate = commands.add_parser(
        "evaluate", help="Score a run's base and fine-tuned models on an evaluation file, example by example."
    )
    evaluate.add_argument("run_folder", metavar="RUN_FOLDER", help="The run's folder, e.g. runs/<id> (or only its id).")
    evaluate.add_argument("--eval-file", required=True, metavar="FILE",
                          help="The examples, in any shape the run trains on: chats, prompt/completion, or labelled "
                               "texts (CSV, TSV, JSON, JSONL, Parquet).")
    evaluate.add_argument("--output", metavar="FILE.jsonl",
                          help="Where to write one JSON line per example (default: RUN_FOLDER/evaluations/<file name>.jsonl).")
    evaluate.add_argument("--human-column", metavar="COLUMN",
                          help="The file's column with a second annotator's labels: each model's agreement with it, "
                               "and its own with the gold labels (the ceiling).")
    evaluate.add_argument("--batch-size", type=int, default=32, help="sft: prompts answered at once (1-256; default 32).")
    evaluate.add_argument("--max-new-tokens", type=int, default=None,
                          help="sft: the longest answer, in tokens (1-512; default: the longest reference answer "
                               "+ 8, at most 64, as the run's own answer passes).")
    export = commands.add_parser(
        "export", help="Write a run's model where other tools load it: a transformers folder, or a GGUF for llama.cpp "
                       "and Ollama; each with a model card."
    )
    export.add_argument("run_folder", metavar="RUN", help="The run's folder, e.g. runs/<id> (or only its id).")
    export.add_argument("output_dir", metavar="DIR", help="The folder to write: created, or an empty one (never overwritten).")
    export.add_argument("--adapter", action="store_true",
                        help="LoRA runs: the adapter alone, unmerged (default: merged into the base model).")
    export.add_argument("--format", choices=("safetensors", "gguf"), default="safetensors",
                        help="safetensors (default): loads in transformers' pipeline(). gguf: one file for llama.cpp and "
                             "Ollama, with a Modelfile (causal and sft runs of Llama-architecture models).")
    export.add_argument("--quantization", choices=("f16", "q8_0"),
                        help="GGUF weights: f16 (default) or q8_0 (about half the size).")
    return parser


def cmd_generate(args: argparse.Namespace) -> int:
    """Print the base model's continuation, then the fine-tuned model's, each streamed as it is generated."""
    from core.insight.generate import BASE, GenerationSettings, stream_continuations

    settings = GenerationSettings(args.max_new_tokens, args.temperature, args.top_p, args.seed,
                                  args.repetition_penalty, args.no_repeat_ngram_size)
    labels = {BASE: "base", "tuned": "fine-tuned"}
    shown = 0
    for which, text in stream_continuations(Path(args.run_folder), args.prompt, settings, before=args.before):
        if not text:  # the next model starts: its label, then the prompt it continues
            if which != BASE:
                print()
            print(f"--- {labels[which]} ---")
            print(args.prompt, end="", flush=True)
            shown = 0
            continue
        print(text[shown:], end="", flush=True)
        shown = len(text)
    print(flush=True)
    return 0


def _config_from_args(args: argparse.Namespace):
    from core.config import RunConfig

    if args.preset:
        from core.errors import ConfigError
        from core.plan.presets import preset_config

        if args.config:
            raise ConfigError("Give --preset or --config, not both: a preset is a whole config.")
        cfg = preset_config(args.preset)
    else:
        cfg = RunConfig.load(args.config) if args.config else RunConfig()
    if args.task:
        if args.task == "sft" and cfg.task != "sft" and not args.config and not args.preset:
            # Instruction tuning named on its own starts from its defaults: SmolLM2-Instruct, LoRA.
            from core.models.catalogue import default_model
            from core.plan.task_switch import apply_task_defaults

            cfg.model.source = default_model(args.task)
            apply_task_defaults(cfg, args.task)
        cfg.task = args.task
    if args.model:
        cfg.model.source = args.model
    if args.strategy:
        cfg.strategy.name = args.strategy
    if args.few_shot is not None:
        cfg.strategy.few_shot = args.few_shot
    for flag in ("prompt_column", "response_column", "prompt_template"):
        if getattr(args, flag) is not None:
            setattr(cfg.data, flag, getattr(args, flag))
    if args.train_on_prompt:
        cfg.data.train_on_prompt = True
    if args.dataset:
        if args.dataset in ("synthetic", "reviews", "news"):
            cfg.data.source, cfg.data.path = "synthetic", None
            cfg.data.synthetic.kind = "news" if args.dataset == "news" else "reviews"
        elif args.dataset.startswith("hub:"):
            cfg.data.source, cfg.data.path = "hub", args.dataset[4:]
        elif args.dataset.startswith("curated:"):
            cfg.data.source, cfg.data.path = "curated", args.dataset[8:]
        else:
            cfg.data.source, cfg.data.path = "file", args.dataset
    if args.eval_file:
        cfg.data.eval_path = args.eval_file
    if args.text_column:
        cfg.data.text_column = args.text_column
    if args.label_column:
        cfg.data.label_column = args.label_column
    if args.rows is not None:
        cfg.data.synthetic.rows = args.rows
    for flag, attr in (
        ("epochs", "epochs"),
        ("max_steps", "max_steps"),
        ("batch_size", "batch_size"),
        ("save_steps", "save_steps"),
        ("eval_steps", "eval_steps"),
    ):
        value = getattr(args, flag)
        if value is not None:
            setattr(cfg.training, attr, value)
    if args.learning_rate is not None:
        cfg.training.learning_rate = args.learning_rate  # 'auto' too: the engine runs the range test
    if args.max_length is not _MAX_LENGTH_UNSET:
        cfg.model.max_length = args.max_length  # None ('auto') follows the data
    if args.log_to is not None:
        # An unknown tracker, or one whose package is missing, fails validation with one line to act on.
        cfg.training.log_to = args.log_to
    return cfg.validate()


def _distributed_run_id(cfg) -> str:
    """Every rank of one `accelerate launch` must agree on the folder without talking first."""
    import hashlib

    digest = hashlib.sha1(cfg.to_yaml().encode()).hexdigest()[:8]
    return f"dist-{cfg.task}-{digest}-{os.environ.get('MASTER_PORT', '0')}"


def _wait_for(path: Path, seconds: float = 120.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)


def cmd_train(args: argparse.Namespace) -> int:
    from core.devices import rank_and_world_size
    from core.run.folder import RunFolder, default_runs_root, new_run_id
    from core.training import engine

    rank, world_size = rank_and_world_size()
    is_main, distributed = rank == 0, world_size > 1
    if args.resume:
        run_path = Path(args.resume).expanduser().resolve()
        folder = RunFolder.open(run_path.parent, run_path.name)
        _check_resumable(folder, is_main=is_main)
        cfg = folder.config()
        # As in the dashboard: a run cut off before its first complete checkpoint starts again from step 0.
        resume = folder.last_complete_checkpoint() is not None
        start_over = not resume
    else:
        cfg = _config_from_args(args)
        engine.preflight(cfg)
        if distributed and cfg.training.learning_rate == "auto":  # refused before a run folder exists
            from core.errors import ConfigError
            from core.present import text

            raise ConfigError(text.LR_AUTO_DISTRIBUTED, field="training.learning_rate")
        if args.output_dir:
            run_path = Path(args.output_dir).expanduser().resolve()
            root, run_id = run_path.parent, run_path.name
        else:
            root = default_runs_root()
            run_id = _distributed_run_id(cfg) if distributed else new_run_id(cfg)
        if is_main:
            from core.plan.data_plan import before_start_lines

            # Rows after curation and why, steps and time: what Setup shows before Start.
            for line in before_start_lines(cfg, root):
                print(line, flush=True)
            folder = RunFolder.create(root, run_id, cfg)
        else:
            _wait_for(root / run_id / "status.json")
            folder = RunFolder(root / run_id)
        resume = start_over = False

    sink = _console_sink(folder, resume, echo=is_main)
    stop_event = threading.Event()

    def request_stop(signum, _frame):
        if stop_event.is_set():
            return
        stop_event.set()
        print(f"\n{signal.Signals(signum).name}: stopping after this step and saving a checkpoint…", file=sys.stderr)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    if is_main:
        print(f"Run folder: {folder.path}", flush=True)
    from contextlib import nullcontext

    from core.run.recovery import run_lock

    # The lock tells a dashboard started meanwhile that this run is alive, not interrupted.
    ownership = run_lock(folder) if is_main else nullcontext()
    try:
        with ownership:
            if start_over and is_main:
                kept = sink.start_over()
                sink.log("No complete checkpoint was saved, so training starts again from step 0"
                         + (f"; the earlier curves are kept in {kept.relative_to(folder.path)}." if kept else "."))
            status = engine.train(cfg, folder, sink, stop_event, resume=resume)
    except BaseException as err:
        if is_main:
            _record_failure(folder, sink, err)
        raise
    if is_main:
        final = folder.status().get("final_metrics") or {}
        shown = ", ".join(f"{k.removeprefix('eval_')}={v:.4g}" for k, v in final.items() if isinstance(v, (int, float)))
        print(f"Run {status}: {folder.path}" + (f" ({shown})" if shown else ""), flush=True)
    return 0


def _check_resumable(folder, *, is_main: bool) -> None:
    """RunError unless the run can be resumed; a run left `running` by a killed process is first
    marked interrupted (the same check the dashboard makes at start-up)."""
    from core.errors import RunError
    from core.run.recovery import ACTIVE, ORPHANED, OWNED, interrupt_if_orphaned, owned_message

    if is_main:
        found = interrupt_if_orphaned(folder, note="Marked interrupted before resuming")
        if found == OWNED:
            raise RunError(owned_message(folder))
        if found == ORPHANED:
            print(f"Run {folder.run_id} was cut off by a killed process; marked interrupted.", flush=True)
    status = folder.status().get("status")
    if not is_main and status in ACTIVE:
        return  # rank 0 checked it and may already have started training
    if not folder.is_resumable(status):
        raise RunError(
            f"Run {folder.run_id} is {status}; only stopped or interrupted runs, or failed runs with a "
            "complete checkpoint, can be resumed."
        )


def _console_sink(folder, resume: bool, *, echo: bool):
    """A RunSink that also prints one compact line per log, evaluation and event."""
    from core.run.sink import RunSink

    class ConsoleSink(RunSink):
        def metric(self, record):
            super().metric(record)
            if echo:
                shown = " · ".join(
                    f"{key.removeprefix('eval_')} {value:.4g}"
                    for key, value in record.items()
                    if key not in ("step", "epoch", "time") and isinstance(value, (int, float))
                )
                kind = "eval" if any(k.startswith("eval_") for k in record) else "train"
                print(f"step {record['step']:>6} {kind:<5} {shown}", flush=True)

        def log(self, message):
            super().log(message)
            if echo:
                print(message, flush=True)

    return ConsoleSink(folder, load_existing=resume)


def _record_failure(folder, sink, err: BaseException) -> None:
    from core.errors import TuneboardError
    from core.run.folder import now_iso

    if isinstance(err, KeyboardInterrupt):
        message = "Interrupted before training began."
        status = "interrupted"
    elif isinstance(err, TuneboardError):
        message, status = str(err), "failed"
    else:
        message = f"Training crashed: {type(err).__name__}: {err}. The traceback is in {folder.log_path}."
        status = "failed"
        folder.log("".join(traceback.format_exception(err)))  # the file only; the console gets one line
    sink.set_status(status=status, error=message, finished_at=now_iso())


def _is_resource_failure(err: BaseException) -> bool:
    """Out of memory or disk: the user can act on these, so they are not crashes."""
    import errno

    from core.errors import is_out_of_memory

    return is_out_of_memory(err) or getattr(err, "errno", None) == errno.ENOSPC


def cmd_report(args: argparse.Namespace) -> int:
    """Write the run's HTML report; a folder that is not a run is a user error (exit 2)."""
    from core.insight.report import write_report
    from core.present import text

    written = write_report(args.run_folder, args.output)
    print(text.REPORT_WRITTEN.format(path=written, size=f"{written.stat().st_size / 1e6:.1f} MB"))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export the run's model into DIR; print what was written."""
    from core.models.export import export_run
    from core.present import text

    written = export_run(args.run_folder, args.output_dir, merge=not args.adapter, fmt=args.format,
                         quantization=args.quantization,
                         on_progress=lambda message: print(message, file=sys.stderr, flush=True))
    files = sorted(path for path in written.rglob("*") if path.is_file())
    size = sum(path.stat().st_size for path in files)
    print(text.EXPORT_WRITTEN.format(path=written, size=f"{size / 1e6:.1f} MB",
                                     files=", ".join(path.name for path in files)))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Score the run's base and fine-tuned models on the file; print the summary, write one JSON line per example."""
    from core.insight.evaluation import EvaluationSettings, evaluate_run, summary_lines

    settings = EvaluationSettings(args.human_column, args.batch_size, args.max_new_tokens)
    result = evaluate_run(args.run_folder, args.eval_file, output=args.output, settings=settings,
                          on_progress=lambda message: print(message, file=sys.stderr, flush=True))
    print("\n".join(summary_lines(result)), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    from core.errors import TuneboardError

    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            return cmd_train(args)
        if args.command == "generate":
            return cmd_generate(args)
        if args.command == "sweep":
            from core.plan.sweep_cli import cmd_sweep

            return cmd_sweep(args, _config_from_args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "evaluate":
            return cmd_evaluate(args)
        if args.command == "export":
            return cmd_export(args)
    except TuneboardError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as err:  # the process boundary: one line for the user, the traceback in the log
        from core.errors import describe_failure

        message, known = describe_failure(err), _is_resource_failure(err)
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR if known else EXIT_CRASH
    return EXIT_USER_ERROR


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from core.devices import tune_training_process

    tune_training_process()  # before anything imports torch
    sys.exit(main())
