"""Benchmarks: each script measures, then writes its figures with `write_results`.

Run each as `python -m bench.<script>`: this package file runs first, so the environment below is
set before any script imports transformers, datasets or huggingface_hub (they read it once, at
import). Child processes the benches start inherit it: they are given `os.environ` (or a copy of it
with more keys), never an environment built from nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# Offline: every model and data set a bench uses is bundled or built on the spot. setdefault, as in
# the Makefile (`?=`): an explicit setting in the caller's environment wins.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def write_results(out: Path, name: str, document: dict[str, Any], markdown: str) -> None:
    """`<name>.json` (the figures) and `<name>.md` (the table BENCHMARKS.md collects) under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    (out / f"{name}.md").write_text(markdown, encoding="utf-8")


def core_command(*args: str) -> float:
    """Run `python -m core ARGS` as a user does, from the repository root; its wall seconds. Exits on failure."""
    import subprocess
    import sys
    import time

    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "core", *args], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"core {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return time.perf_counter() - started
