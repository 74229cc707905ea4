"""Data: synthetic reviews, files and Hub datasets, curation (signals + integrity checks), preparation.

Import from the submodules: .rows (a run's rows from its configured source), .tables (data files),
.hub_datasets, .synthetic, .columns, .cells (text and label cells), .signals (the signal tree),
.signal_schema, .signal_eval, .lexicon, .model_signals, .integrity (the checks and curate()),
.curation (saved curated sets), .preflight and .prepare. This package re-exports the main entry
points lazily so that `import core.data` stays cheap.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "generate_reviews": "core.data.synthetic",
    "read_table": "core.data.tables",
    "load_hub_dataset": "core.data.hub_datasets",
    "load_rows": "core.data.rows",
    "load_frame": "core.data.rows",
    "SUPPORTED_SUFFIXES": "core.data.tables",
    "curate": "core.data.integrity",
    "curate_for_model": "core.data.integrity",
    "CurationResult": "core.data.integrity",
    "signal_from_dict": "core.data.signals",
    "signal_counts": "core.data.signal_eval",
    "save_curated": "core.data.curation",
    "list_curated": "core.data.curation",
    "load_curated": "core.data.curation",
    "prepare_data": "core.data.prepare",
    "PreparedData": "core.data.prepare",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Load the submodule that owns `name` on first use."""
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'core.data' has no attribute {name!r}")
