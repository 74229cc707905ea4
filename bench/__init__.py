"""Benchmarks: each script measures, then writes its figures with `write_results`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_results(out: Path, name: str, document: dict[str, Any], markdown: str) -> None:
    """`<name>.json` (the figures) and `<name>.md` (the table BENCHMARKS.md collects) under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    (out / f"{name}.md").write_text(markdown, encoding="utf-8")
