"""Hugging Face Hub datasets as tables: a split loaded whole, streamed when large, or read from the cache offline."""

from __future__ import annotations

from typing import Any

import pandas as pd

from core.errors import DataError
from core.models import hub


def _offline_message(name: str) -> str:
    return (
        f"Hub dataset '{name}' is not in the local cache and the Hugging Face Hub cannot be reached "
        "(offline). Connect to the internet and try again, download it once on a connected machine "
        "(its cache is reused), or use the synthetic reviews or a data file instead."
    )


# A Hub split larger than this is streamed: only the rows the run uses are downloaded and held.
HUB_STREAMING_BYTES = 500 * 1024 * 1024
# Rows a streamed split yields when data.max_rows sets no cap; pandas holds them whole for curation.
HUB_STREAMED_ROWS = 1_000_000


def load_hub_dataset(name: str, split: str = "train", *, max_rows: int | None = None) -> pd.DataFrame:
    """Load a Hub dataset split as a DataFrame; fail fast with a DataError when offline and not cached.

    Offline (switched off, or the Hub does not answer a quick probe) only the local cache is read.
    datasets has no per-call offline switch, and flipping its process-wide one would cut off a run
    training or probing in another thread, so the cached copy is opened directly with the builder
    datasets itself uses for its offline fallback. Online, a split over HUB_STREAMING_BYTES is
    streamed and only its first `max_rows` rows (HUB_STREAMED_ROWS without a cap) are read.
    """
    name = (name or "").strip()
    if not name:
        raise DataError("Name the Hub dataset, e.g. 'imdb'.", field="data.path")
    import datasets
    from datasets import config as ds_config

    # Without the probe datasets retries for ~25 s before giving up when the network is down.
    offline = bool(ds_config.HF_HUB_OFFLINE) or hub.hub_offline() or not hub.hub_reachable()
    size = None if offline else hub_split_bytes(name, split)
    streamed = size is not None and size > HUB_STREAMING_BYTES
    try:
        if offline:
            loaded = _cached_hub_dataset(name, split)
        elif streamed:
            cap = max_rows if max_rows is not None else HUB_STREAMED_ROWS
            return _streamed_frame(datasets.load_dataset(name, split=split, streaming=True), name, split, size, cap,
                                   capped_by_user=max_rows is not None)
        else:
            loaded = datasets.load_dataset(name, split=split)
    except (ConnectionError, FileNotFoundError) as err:
        if offline or "offline" in str(err).lower():
            raise DataError(_offline_message(name), field="data.path") from None
        raise DataError(
            f"Hub dataset '{name}' was not found: check the name (e.g. 'imdb' or 'mteb/tweet_sentiment_extraction').",
            field="data.path",
        ) from None
    except ValueError as err:
        if "split" in str(err).lower():
            raise DataError(
                f"Hub dataset '{name}' has no split '{split}': {err}. Choose one of its splits.", field="data.hub_split"
            ) from None
        raise DataError(f"Hub dataset '{name}' could not be loaded: {err}.", field="data.path") from None
    except DataError:
        raise
    except Exception as err:  # datasets raises many types; the user needs one message
        raise DataError(f"Hub dataset '{name}' could not be loaded: {type(err).__name__}: {err}.", field="data.path") from None
    frame = loaded.to_pandas()
    frame.attrs["read_report"] = {"path": name, "format": "hub", "split": split, "repairs": [], "warnings": []}
    return frame


def hub_split_bytes(name: str, split: str) -> int | None:
    """Size in bytes of a Hub dataset split as its card declares it; None when unknown (it is then downloaded)."""
    import datasets

    try:
        info = datasets.load_dataset_builder(name).info
    except Exception:  # noqa: BLE001 - a size we cannot learn only means no streaming; loading reports errors
        return None
    splits = info.splits or {}
    if split in splits and splits[split].num_bytes:
        return int(splits[split].num_bytes)
    return int(info.dataset_size) if info.dataset_size else None


def _streamed_frame(stream: Any, name: str, split: str, size: int, cap: int, *, capped_by_user: bool) -> pd.DataFrame:
    """The first `cap` rows of a streamed split as a DataFrame, read in batches; the read report says so."""
    chunks, rows = [], 0
    for batch in stream.iter(batch_size=min(cap, 10_000)):
        chunk = pd.DataFrame(batch)
        chunks.append(chunk.head(cap - rows))
        rows += len(chunks[-1])
        if rows >= cap:
            break
    frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
    why = "data.max_rows" if capped_by_user else "the streaming cap (set data.max_rows to choose)"
    warning = (f"Hub dataset '{name}' is {size / 1e9:.1f} GB: streamed its first {len(frame):,} rows ({why}), "
               "not a random sample of the whole split.")
    frame.attrs["read_report"] = {"path": name, "format": "hub", "split": split, "streamed": True, "repairs": [],
                                  "warnings": [warning]}
    return frame


def _cached_hub_dataset(name: str, split: str):
    """The newest cached copy of a Hub dataset split, read from datasets' cache without any network."""
    from datasets.packaged_modules.cache.cache import Cache

    try:
        builder = Cache(repo_id=name, dataset_name=name.split("/")[-1], version="auto", hash="auto")
    except ValueError:  # "Couldn't find cache for ...": never downloaded on this machine
        raise DataError(_offline_message(name), field="data.path") from None
    return builder.as_dataset(split=split)
