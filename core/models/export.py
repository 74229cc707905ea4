"""Load what a run saved (full model or LoRA adapter) and export it: a transformers folder or a GGUF, with a model card."""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from core.config import describe_learning_rate
from core.errors import ConfigError, ModelError, RunError
from core.files import atomic_write_text
from core.models import load_saved
from core.models.saving import export_model, is_peft_model, quiet_transformers
from core.models.tasks import PEFT_CLASSES
from core.present import text
from core.run.folder import RunFolder, default_runs_root


def tuned_model_path(folder: RunFolder) -> Path | None:
    """The run's final model, else its newest complete checkpoint, else None."""
    if (folder.final_path / "config.json").exists() or (folder.final_path / "adapter_config.json").exists():
        return folder.final_path
    return folder.last_complete_checkpoint()


@functools.lru_cache(maxsize=4)
def load_saved_model_cached(path: str, task: str, mtime_ns: int, label_names: tuple[str, ...] | None = None) -> tuple[Any, Any]:
    """load_saved for answering and scoring, cached by folder and modification time (a newer checkpoint is picked up).

    A LoRA adapter comes merged into its base: the same function, with each adapted layer one matrix
    multiply instead of three, which generation repeats for every new token (bench_generation: "now").
    """
    model, tokenizer = load_saved(path, task, label_names)
    if is_peft_model(model):
        model = model.merge_and_unload()
        model.eval()
    return model, tokenizer


def run_label_names(folder: RunFolder) -> tuple[str, ...] | None:
    """The class names a classification run trained with (status.json), for loading its adapter."""
    names = folder.status().get("label_names")
    return tuple(str(name) for name in names) if isinstance(names, list) and names else None


EXPORT_FORMATS = ("safetensors", "gguf")
GGUF_TASKS = ("causal", "sft")  # a GGUF holds a next-token model: llama.cpp and Ollama generate text


def open_run_folder(run: str | Path) -> RunFolder:
    """The run folder `run` names: a folder, or a bare run id looked up in the runs folder; RunError otherwise."""
    path = Path(run).expanduser()
    if not path.exists() and len(path.parts) == 1:
        path = default_runs_root() / path
    if not (path / "config.yaml").is_file():
        raise RunError(f"{run} is not a run folder (it has no config.yaml): pass a folder under runs/, e.g. runs/<id>, "
                       "or a run id.")
    return RunFolder(path)


def export_run(run: str | Path, target: str | Path | None = None, *, merge: bool = True, fmt: str = "safetensors",
               quantization: str | None = None, on_progress: Callable[[str], None] | None = None) -> Path:
    """Write the run's model where other tools load it; returns the folder. The Runs page and `core export` share it.

    fmt "safetensors": a transformers folder (the LoRA merged in unless merge=False, which writes the adapter
    alone), tokenizer, generation_config.json for text generation, config.yaml and a README.md model card.
    fmt "gguf": one GGUF file (quantization "f16" or "q8_0"; the LoRA merged first), an Ollama Modelfile and the card.
    `target` None: a folder inside the run (reused while newer than the model), else a new or empty folder. Written
    into a temporary sibling and renamed into place, so a failure leaves nothing half-written. Bad requests
    raise before any model loads; `on_progress` hears when the loading starts.
    """
    folder = open_run_folder(run)
    cfg = folder.config()
    source = tuned_model_path(folder)
    if source is None:
        reason = ("it prompts the base model without training" if cfg.strategy.name == "prompt"
                  else "let it finish, or stop it to save a checkpoint, then export again")
        raise RunError(f"Run {folder.run_id} has no saved model to export yet: {reason}.")
    is_adapter = (source / "adapter_config.json").exists()
    quantization = check_export(cfg.task, is_adapter, merge=merge, fmt=fmt, quantization=quantization)
    owned = target is None
    if owned:
        target = folder.path / default_export_name(fmt, quantization, merged=merge and is_adapter)
        if (target / "README.md").exists() and target.stat().st_mtime >= source.stat().st_mtime:
            return target
    target = Path(target).expanduser().absolute()
    if not owned:
        check_target(target)
    with staging_folder(target) as staging:
        if on_progress is not None:
            on_progress(text.EXPORT_LOADING.format(run_id=folder.run_id, source=f"{source.name}/"))
        with quiet_transformers(), warnings.catch_warnings():
            # Loading an adapter prints transformers' progress bar and a deprecation warning from inside peft:
            # noise on the command line, where the export's own line says what was written.
            warnings.simplefilter("ignore", FutureWarning)
            model, tokenizer = load_saved(source, cfg.task, run_label_names(folder))
        gguf_name = None
        if fmt == "gguf":
            from core.models.gguf_export import gguf_file_name, modelfile, write_gguf

            if is_peft_model(model):
                model = model.merge_and_unload()
            gguf_name = gguf_file_name(folder.run_id, quantization)
            write_gguf(model, tokenizer, staging / gguf_name, quantization)
            atomic_write_text(staging / "Modelfile", modelfile(tokenizer, gguf_name))
        else:
            export_model(model, tokenizer, staging, merge=merge and is_adapter)
            if cfg.task in GGUF_TASKS:
                write_generation_config(model, tokenizer, staging)
        cfg.save(staging / "config.yaml")
        atomic_write_text(staging / "README.md", model_card(folder, adapter=is_adapter and not merge, gguf_name=gguf_name))
        move_into_place(staging, target, replace=owned)
    return target


def check_export(task: str, is_adapter: bool, *, merge: bool, fmt: str, quantization: str | None) -> str | None:
    """The quantization to use (GGUF: f16 unless told), once the request fits the run; ConfigError or ModelError otherwise."""
    from core.models.gguf_export import QUANTIZATIONS

    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"Unknown export format {fmt!r}: choose {' or '.join(EXPORT_FORMATS)}.", field="format")
    if not merge and not is_adapter:
        raise ConfigError("Only a LoRA run has an adapter to export on its own; this run saved a full model: "
                          "leave out --adapter.", field="adapter")
    if fmt == "safetensors":
        if quantization is not None:
            raise ConfigError("A quantization applies to GGUF exports: add --format gguf, or leave out --quantization.",
                              field="quantization")
        return None
    if task not in GGUF_TASKS:
        kind = "masked-LM" if task == "mlm" else task
        raise ModelError(f"GGUF is for text-generating models (causal and sft runs); this is a {kind} run: export "
                         "safetensors instead, which transformers' pipeline() loads.", field="format")
    if not merge:
        raise ConfigError("A GGUF holds the whole model, the LoRA merged in: leave out --adapter.", field="adapter")
    quantization = quantization or "f16"
    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"Unknown GGUF quantization {quantization!r}: choose one of {', '.join(QUANTIZATIONS)}.",
                          field="quantization")
    return quantization


def default_export_name(fmt: str, quantization: str | None, *, merged: bool) -> str:
    """The folder inside the run that the Runs page prepares its downloads in."""
    if fmt == "gguf":
        return f"export-gguf-{quantization}"
    return "export-merged" if merged else "export"


def check_target(target: Path) -> None:
    """ConfigError unless `target` is a new or empty folder (an export never overwrites files)."""
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{target} is a file: give a folder to export into (it is created when missing).",
                          field="output_dir")
    if target.is_dir() and any(target.iterdir()):
        raise ConfigError(f"{target} already holds files: export into a new or empty folder, so nothing is "
                          "overwritten.", field="output_dir")


@contextlib.contextmanager
def staging_folder(target: Path) -> Iterator[Path]:
    """A temporary sibling of `target` to write into; removed afterwards (move_into_place renames it first on success)."""
    staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
    except OSError as err:
        raise ConfigError(f"Cannot write to {target.parent}: {err.strerror or err}. Choose a folder you can write to.",
                          field="output_dir") from None
    try:
        yield staging
    except OSError as err:
        raise RunError(f"Writing the export to {target} failed: {err.strerror or err}. Free disk space or choose "
                       "another folder.") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def move_into_place(staging: Path, target: Path, *, replace: bool) -> None:
    """Rename the complete `staging` folder to `target`; an earlier export there is swapped out only when `replace`."""
    old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    if target.is_dir() and (replace or not any(target.iterdir())):
        os.replace(target, old)  # an empty folder the user named, or the run's earlier download
    try:
        os.replace(staging, target)
    except OSError:
        if old.exists():  # put back what was there
            os.replace(old, target)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def write_generation_config(model: Any, tokenizer: Any, out: Path) -> None:
    """generation_config.json: generation stops at the chat's end-of-turn token and the end of sequence, pads with pad."""
    from transformers import GenerationConfig

    from core.models.gguf_export import chat_format, stop_tokens

    generation = copy.deepcopy(getattr(model, "generation_config", None)) or GenerationConfig()
    vocab = tokenizer.get_vocab()
    stops = [vocab[token] for token in stop_tokens(tokenizer, chat_format(tokenizer)) if token in vocab]
    if stops:
        generation.eos_token_id = stops[0] if len(stops) == 1 else stops
    if tokenizer.pad_token_id is not None:
        generation.pad_token_id = tokenizer.pad_token_id
    if tokenizer.bos_token_id is not None:
        generation.bos_token_id = tokenizer.bos_token_id
    # Marked as chosen, not derived: generate() would otherwise rebuild it from config.json and lose the end-of-turn stop.
    generation._from_model_config = False
    generation.save_pretrained(out)


PIPELINE_TASKS = {"classification": "text-classification", "mlm": "fill-mask", "causal": "text-generation",
                  "sft": "text-generation"}
UNKNOWN_LICENCE = "see the base model's card"


def model_card(folder: RunFolder, *, adapter: bool = False, gguf_name: str | None = None) -> str:
    """The export's README.md: what the model is, how it was trained and measured, what it is for, how to load it."""
    cfg, status = folder.config(), folder.status()
    t = cfg.training
    generated = "synthetic news headlines" if cfg.data.synthetic.kind == "news" else "synthetic product reviews"
    data = generated if cfg.data.source == "synthetic" else f"{cfg.data.source}: {cfg.data.path}"
    if cfg.data.source == "synthetic":
        data += f" ({cfg.data.synthetic.rows:,} rows generated, seed {cfg.data.synthetic.seed})"
    if cfg.data.curation.signal:
        data += ", curated by a signal tree"
    metrics = status.get("final_metrics") or {}
    best = status.get("best")  # the kept checkpoint (engine.train), when the run kept its best one
    base = base_model_facts(cfg.model.source)
    steps = status.get("step")
    lines = [
        f"# {cfg.name or folder.run_id}",
        "",
        f"Fine-tuned with Tuneboard (run `{folder.run_id}`).",
        "",
        "## Training",
        "",
        "| | |",
        "|---|---|",
        f"| Task | {cfg.task} |",
        f"| Base model | `{cfg.model.source}`{base['note']} |",
        f"| Base model licence | {base['licence']} |",
        f"| Data | {data} |",
        f"| Strategy | {cfg.strategy.name} |",
        f"| Steps trained | {steps if steps is not None else 'not recorded'} |",
        f"| Run length | {run_length(t)} |",
        f"| Batch size | {t.batch_size} × {t.gradient_accumulation_steps} accumulation |",
        f"| Learning rate | {describe_learning_rate(status.get('learning_rate') or t.learning_rate)} ({t.lr_scheduler}, warmup {t.warmup_ratio:g}) |",
        f"| Seed | {t.seed} |",
        f"| Hardware | {status.get('device') or 'not recorded'} |",
        f"| Training time | {float(status.get('elapsed_s') or 0):.0f} s |",
    ]
    if best:
        lines.append(f"| Kept checkpoint | best {best.get('name')} at step {best.get('step')} |")
    compared = before_and_after(folder, cfg.task, status)
    if compared:
        lines += ["", "## Before and after fine-tuning", "", "On the run's evaluation examples: the base model, then this one.",
                  "", "| metric | base model | fine-tuned |", "|---|---:|---:|"]
        lines += [f"| {name} | {_number(before)} | {_number(after)} |" for name, before, after in compared]
    if metrics:
        lines += ["", "## Evaluation", "", "| metric | value |", "|---|---:|"]
        lines += [f"| {key.removeprefix('eval_')} | {value:.4g} |" for key, value in metrics.items()
                  if isinstance(value, (int, float))]
    labels = status.get("label_names")
    if cfg.task == "classification" and labels:
        lines += ["", "Labels: " + ", ".join(f"`{name}`" for name in labels) + "."]
    lines += ["", "## Intended use", "", INTENDED_USE[cfg.task], "",
              "It was measured only on the run's own evaluation split: check it on your own data before relying on "
              "it, and keep to the base model's licence and limits."]
    lines += ["", "## Use it", ""] + usage(cfg, adapter=adapter, gguf_name=gguf_name, example=card_example(folder))
    lines += ["", "`config.yaml` in this folder is the run's full Tuneboard config: "
              "`python -m core train --config config.yaml` trains it again.", ""]
    return "\n".join(lines)


def run_length(training: Any) -> str:
    """What the config asked for: max steps (they override epochs), else epochs, else the default rule for the data."""
    if training.max_steps:
        return f"{int(training.max_steps)} max steps"
    if training.epochs is not None:
        return f"{float(training.epochs):g} epochs"
    return "the default for its data (core.training.run_length)"


INTENDED_USE = {
    "classification": "Sorting texts like the training data into the labels below. It knows only these labels "
                      "and answers with one of them for any text.",
    "mlm": "Filling in masked words in text like the training data, and as an encoder to fine-tune further "
           "(a classifier, for one).",
    "causal": "Continuing text in the style of the training data.",
    "sft": "Answering prompts like the training data's, in the chat format of its tokenizer's chat template.",
}


def card_example(folder: RunFolder) -> str:
    """A text to show the model with: the first probe the run scored (chosen from its data), else the task's default."""
    scored = next((record.get("text") for record in folder.probes() if record.get("text")), None)
    return str(scored) if scored else folder.config().probe_texts()[0]


def usage(cfg: Any, *, adapter: bool, gguf_name: str | None, example: str | None = None) -> list[str]:
    """The card's "Use it" lines: transformers' pipeline, peft for an adapter, llama.cpp and Ollama for a GGUF."""
    example = example or cfg.probe_texts()[0]
    if gguf_name is not None:
        return [
            "```bash",
            f"llama-cli -m {gguf_name} -cnv       # llama.cpp: chat in the terminal",
            "ollama create my-model -f Modelfile  # Ollama: the Modelfile holds the chat template and stop tokens",
            "ollama run my-model",
            "```",
            "",
            "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder", gguf_file="{gguf_name}")',
            f'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder", gguf_file="{gguf_name}")',
            "```",
        ]
    if adapter:
        return [
            "```python",
            f"from peft import {PEFT_CLASSES[cfg.task]}",
            "from transformers import AutoTokenizer",
            "",
            f'model = {PEFT_CLASSES[cfg.task]}.from_pretrained("path/to/this/folder")',
            'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
            "```",
            "",
            f"The adapter loads onto its base model, `{cfg.model.source}`, which must be where `adapter_config.json` "
            "says (`base_model_name_or_path`).",
        ]
    lines = ["```python", "from transformers import pipeline", "",
             f'model = pipeline("{PIPELINE_TASKS[cfg.task]}", model="path/to/this/folder")']
    if cfg.task == "sft":
        lines.append(f'print(model([{{"role": "user", "content": {example!r}}}], max_new_tokens=64))')
    else:
        lines.append(f"print(model({example!r}))")
    return lines + ["```"]


def base_model_facts(source: str) -> dict[str, str]:
    """The base model's licence from the catalogue where it is known, and where a run's chain began."""
    from core.models.catalogue import bundled_model
    from core.models.resolve import original_base_source

    original = original_base_source(source)
    bundled = bundled_model(original)
    note = f" (fine-tuned from `{original}` through earlier runs)" if original != str(source) else ""
    if bundled is not None:
        note += f", {bundled.name}"
    return {"licence": bundled.licence if bundled is not None else UNKNOWN_LICENCE, "note": note}


def before_and_after(folder: RunFolder, task: str, status: dict[str, Any]) -> list[tuple[str, float | None, float | None]]:
    """(metric, base model, fine-tuned) on the same evaluation examples, from what the run stored.

    sft: the answer scores in status.json (base_metrics, final_metrics). The other tasks: the per-example
    predictions the run wrote before and after training (predictions/base.parquet and final.parquet, described
    in core.insight.predictions, which sits above this floor): accuracy for a classifier, the mean example loss
    and its perplexity for a language model.
    """
    if task == "sft":
        base, final = status.get("base_metrics") or {}, status.get("final_metrics") or {}
        names = {"eval_exact_match": "answer exact match", "eval_accuracy": "answer accuracy", "eval_f1": "answer F1"}
        return [(shown, base.get(key), final.get(key)) for key, shown in names.items() if key in base or key in final]
    frames = {stage: _read_stage(folder, stage) for stage in ("base", "final")}
    if any(frame is None for frame in frames.values()):
        return []
    rows = f" ({len(frames['final'])} examples)"
    if task == "classification":
        if not all({"gold", "predicted"} <= set(frame.columns) for frame in frames.values()):
            return []
        accuracy = {stage: float((frame["gold"] == frame["predicted"]).mean()) for stage, frame in frames.items()}
        return [("accuracy" + rows, accuracy["base"], accuracy["final"])]
    if not all("loss" in frame.columns for frame in frames.values()):
        return []
    loss = {stage: float(frame["loss"].mean()) for stage, frame in frames.items()}
    return [("mean example loss" + rows, loss["base"], loss["final"]),
            ("perplexity of that loss", _perplexity(loss["base"]), _perplexity(loss["final"]))]


def _read_stage(folder: RunFolder, stage: str) -> Any:
    import pandas as pd

    try:
        return pd.read_parquet(folder.predictions_path / f"{stage}.parquet")
    except (OSError, ValueError):
        return None


def _perplexity(loss: float) -> float | None:
    return math.exp(loss) if loss < 50 else None


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "—"
