"""Where a run's rows come from: synthetic reviews, a data file, a Hub dataset or a saved curated set.

The one place that reads `data.source`: it picks the reader (core.data.synthetic, .tables,
.hub_datasets, .curation) and stamps the frame with its origin for the curation lineage.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd

from core.config import DataConfig
from core.data.columns import check_columns
from core.data.curation import load_curated
from core.data.hub_datasets import load_hub_dataset
from core.data.synthetic import generate_reviews, label_names
from core.data.tables import read_table
from core.errors import DataError


def hub_row_cap(data_cfg: DataConfig) -> int | None:
    """Rows to stream for data.max_rows training rows: enough that the validation share still leaves max_rows."""
    if data_cfg.max_rows is None:
        return None
    fraction = 0.0 if data_cfg.eval_path else data_cfg.validation_fraction
    return data_cfg.max_rows + (int(-(-data_cfg.max_rows * fraction // (1 - fraction))) if fraction else 0)


def load_frame(data_cfg: DataConfig) -> pd.DataFrame:
    """Rows of the configured source (synthetic/file/hub/curated); the text column must exist."""
    frame = load_rows(data_cfg)
    what = "The synthetic data" if data_cfg.source == "synthetic" else f"'{data_cfg.path}'"
    check_columns(frame, data_cfg, "mlm", what=what)
    return frame


def load_rows(data_cfg: DataConfig) -> pd.DataFrame:
    """Rows of the configured source, whatever its columns (the pages pick the columns from them).

    A data file checked a moment ago in this process (`hand_on`) is not read again.
    """
    handed = _take_handed(data_cfg)
    if handed is not None:
        return handed
    source = data_cfg.source
    if source == "synthetic":
        syn = data_cfg.synthetic
        if syn.kind == "news":
            from core.data.news import NEWS_CATEGORIES, generate_headlines

            frame = generate_headlines(syn.rows, seed=syn.seed)
            frame.attrs["label_names"] = list(NEWS_CATEGORIES)
            origin = {"source": "synthetic", "kind": "news", "rows": syn.rows, "seed": syn.seed}
        else:
            frame = generate_reviews(syn.rows, seed=syn.seed, null_fraction=syn.null_fraction)
            frame.attrs["label_names"] = label_names()
            origin = {"source": "synthetic", "rows": syn.rows, "seed": syn.seed, "null_fraction": syn.null_fraction}
        frame.attrs["read_report"] = {"path": None, "format": "synthetic", "repairs": [], "warnings": []}
    elif source == "file":
        if not data_cfg.path:
            raise DataError("Choose a data file (data.path).", field="data.path")
        frame = read_table(data_cfg.path)
        origin = {"source": "file", "path": str(data_cfg.path)}
    elif source == "hub":
        frame = load_hub_dataset(data_cfg.path or "", data_cfg.hub_split, max_rows=hub_row_cap(data_cfg))
        origin = {"source": "hub", "name": data_cfg.path, "split": data_cfg.hub_split}
    elif source == "curated":
        frame = load_curated(data_cfg.path or "")
        origin = {"source": "curated", "name": data_cfg.path}
    else:
        raise DataError(f"Unknown data source {source!r}: choose synthetic, file, hub or curated.", field="data.source")
    frame.attrs["source"] = origin
    return frame


# ---- one read for the check and the run ------------------------------------------------------
# The CLI checks a run's data before it creates the run folder (core.data.preflight.check_data) and
# reads it again to train it a moment later, in the same process: at a million rows that second read
# took ~1.5 s before step 1. The checked table is handed on instead: to one taker, while the file is
# unchanged. A process that checks runs but trains none (the dashboard's server; its runs train in a
# child process) lets it go after HANDOFF_S, so it does not hold a large table for nothing.
HANDOFF_S = 60.0
_handoff_lock = threading.Lock()
_handed: tuple[tuple, pd.DataFrame, threading.Timer] | None = None


def hand_on(data_cfg: DataConfig, frame: pd.DataFrame) -> None:
    """Keep the rows just read from data_cfg's file for the next load_rows of that file (data files only)."""
    global _handed
    key = _handoff_key(data_cfg)
    if key is None:
        return
    expiry = threading.Timer(HANDOFF_S, _let_go, args=(key,))
    expiry.daemon = True
    with _handoff_lock:
        previous, _handed = _handed, (key, frame, expiry)
    if previous is not None:
        previous[2].cancel()
    expiry.start()


def _take_handed(data_cfg: DataConfig) -> pd.DataFrame | None:
    """The rows handed on for this file, once (None when there are none, or the file changed since)."""
    global _handed
    if _handed is None:
        return None
    key = _handoff_key(data_cfg)
    with _handoff_lock:
        if _handed is None or key is None or _handed[0] != key:
            return None
        (_, frame, expiry), _handed = _handed, None
    expiry.cancel()
    return frame


def _let_go(key: tuple) -> None:
    global _handed
    with _handoff_lock:
        if _handed is not None and _handed[0] == key:
            _handed = None


def _handoff_key(data_cfg: DataConfig) -> tuple | None:
    """(path, size, modification time) of a data file; None for other sources or a file that cannot be seen."""
    if data_cfg.source != "file" or not data_cfg.path:
        return None
    try:
        path = Path(data_cfg.path).expanduser().resolve()
        info = path.stat()
    except OSError:
        return None
    return str(path), info.st_size, info.st_mtime_ns
