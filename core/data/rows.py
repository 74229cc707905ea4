"""Where a run's rows come from: synthetic reviews, a data file, a Hub dataset or a saved curated set.

The one place that reads `data.source`: it picks the reader (core.data.synthetic, .tables,
.hub_datasets, .curation) and stamps the frame with its origin for the curation lineage.
"""

from __future__ import annotations

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
    """Rows of the configured source, whatever its columns (the pages pick the columns from them)."""
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
