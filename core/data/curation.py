"""Saved curated datasets: the rows a curation kept, with their lineage, under a name the Data page lists.

Each set is a folder <root>/<name>/ holding data.parquet (the kept rows) and lineage.json (the
curation report: source, checks, signal, counts). The curation itself lives in core.data.integrity
(the checks and curate()) and core.data.signals (the signal tree).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core.data.tables import read_table
from core.errors import DataError

if TYPE_CHECKING:  # only an annotation: loading a saved set must not import the checks
    from core.data.integrity import CurationResult

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def curated_root(root: str | Path | None = None) -> Path:
    """Where curated datasets live: the given root, $TUNEBOARD_DATA or ./datasets."""
    return Path(root) if root is not None else Path(os.environ.get("TUNEBOARD_DATA", "datasets"))


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns mixing types (1 and "pos") become text so Arrow can store them."""
    out = frame.reset_index(drop=True)
    for column in out.columns:
        if out[column].dtype == object:
            kinds = {type(v) for v in out[column] if v is not None and not (isinstance(v, float) and np.isnan(v))}
            if len(kinds) > 1 or (kinds and not kinds <= {str}):
                out[column] = out[column].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    return out


def save_curated(result: CurationResult, name: str, root: str | Path | None = None) -> Path:
    """Save kept rows (data.parquet) and lineage (lineage.json) under <root>/<name>/; returns the folder."""
    from core.run.folder import atomic_write_json, now_iso

    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise DataError(
            f"{name!r} is not a valid dataset name: use letters, digits, '-', '_' and '.' (no slashes).",
            field="dataset_name",
        )
    folder = curated_root(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".data.parquet.{uuid.uuid4().hex}"
    try:
        _parquet_safe(result.kept).to_parquet(tmp, index=False)
        os.replace(tmp, folder / "data.parquet")
    except OSError as err:
        raise DataError(f"Could not save the curated dataset to {folder}: {err.strerror or err}.") from None
    finally:
        tmp.unlink(missing_ok=True)
    lineage = {"name": name, "saved_at": now_iso(), "rows": int(len(result.kept)), **result.report}
    atomic_write_json(folder / "lineage.json", lineage)
    return folder


def _curated_folder(name_or_path: str, root: str | Path | None = None) -> Path:
    given = Path(name_or_path).expanduser()
    for folder in (given, curated_root(root) / name_or_path):
        if (folder / "data.parquet").is_file():
            return folder
    available = ", ".join(d["name"] for d in list_curated(root)) or "none yet"
    raise DataError(
        f"No curated dataset {name_or_path!r}: save one from the Data page first (available: {available}).",
        field="data.path",
    )


def load_curated(name_or_path: str, root: str | Path | None = None) -> pd.DataFrame:
    """Rows of a saved curated dataset (by name under the data root, or by folder)."""
    folder = _curated_folder(name_or_path, root)
    frame = read_table(folder / "data.parquet")
    if "flag_reason" in frame.columns and frame["flag_reason"].isna().all():
        frame = frame.drop(columns="flag_reason")
    try:
        lineage = json.loads((folder / "lineage.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        lineage = {}
    if lineage.get("label_names"):
        frame.attrs["label_names"] = lineage["label_names"]
    frame.attrs["read_report"] = {"path": str(folder), "format": "curated", "repairs": [], "warnings": []}
    return frame


def list_curated(root: str | Path | None = None) -> list[dict[str, Any]]:
    """Saved curated datasets, newest first: name, path, rows, saved_at, source, task, signal."""
    base = curated_root(root)
    if not base.is_dir():
        return []
    items = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (folder / "data.parquet").is_file():
            continue
        entry: dict[str, Any] = {"name": folder.name, "path": str(folder)}
        try:
            lineage = json.loads((folder / "lineage.json").read_text(encoding="utf-8"))
            entry.update(
                rows=lineage.get("rows"),
                saved_at=lineage.get("saved_at"),
                source=lineage.get("source"),
                task=lineage.get("task"),
                signal=lineage.get("signal"),
            )
        except (OSError, ValueError):
            entry["error"] = "lineage.json is missing or unreadable"
        items.append(entry)
    return sorted(items, key=lambda e: e.get("saved_at") or "", reverse=True)
