"""Integrity checks and curate(): null-like text, labels, duplicates and too-long texts, then the signal.

Failing rows are removed, or kept with a `flag_reason` column when `check_action` is "flag"; rows
that fail the signal are always removed (the signal is the selection, not a check), and so are
texts too long for the model when too_long is "drop" (the engine could not train on them whole).
The result carries a JSON lineage report of what each check did, with examples.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.config import DataConfig, RunConfig
from core.data.cells import (
    arrow_text,
    canonical_labels,
    null_text_mask,
    parse_labels,
    repeats,
    token_lengths,
)
from core.data.columns import check_columns
from core.data.signal_eval import evaluate_signal
from core.data.signals import Signal, iter_nodes, signal_from_dict

# Rows quoted per check in the lineage report: enough to recognise the problem, small to store.
_EXAMPLES = 3
# The too-long check tokenises at most this many rows that could be too long (~1 s on 2 cores).
# Past it, with too_long "truncate", a seeded sample of TOO_LONG_SAMPLE_ROWS estimates the count
# (within about a percentage point) and the engine truncates each row as it tokenises it: the rows it
# trains on are the same. Both bounds keep the work before a run's first step flat in the row count.
TOO_LONG_EXACT_ROWS = 10_000
TOO_LONG_SAMPLE_ROWS = 2_000
#: Why a row can be removed, in the order the report counts them.
REMOVAL_REASONS = (
    "null_text", "missing_label", "unparseable_label", "unexpected_label", "duplicate", "too_long", "signal",
)

# ---- integrity checks and curate() ----------------------------------------------------------

def _truncate(tokenizer: Any, texts: list[str], max_length: int) -> list[str]:
    """Cut texts where the tokenizer's truncation ends, keeping the original characters."""
    if not getattr(tokenizer, "is_fast", False):
        return texts  # slow tokenizers have no offsets: the engine truncates at tokenisation instead
    enc = tokenizer(texts, truncation=True, max_length=max_length, return_offsets_mapping=True, verbose=False)
    cut = []
    for text, offsets in zip(texts, enc["offset_mapping"], strict=True):
        end = max((e for _, e in offsets), default=len(text))
        cut.append(text[:end])
    return cut


def may_exceed(texts: pd.Series, tokenizer: Any, limit: int) -> np.ndarray:
    """Rows that could be longer than `limit` tokens: the only ones the too-long check must tokenise.

    A subword token covers at least one character, so a pure-ASCII text (which no normaliser
    expands) has at most characters + special tokens + 1 tokens (the 1: SentencePiece's leading
    word marker); WordPiece behind a whitespace-splitting pre-tokenizer drops the spaces as well.
    Texts with other characters are always tokenised. At a million short rows this skips a
    tokenizer pass of minutes and gives exactly the same verdicts.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    values = pa.array(texts, from_pandas=True)  # zero-copy for Arrow-backed strings
    chars = pc.utf8_length(values).to_numpy(zero_copy_only=False)
    ascii_only = pc.equal(pc.binary_length(values), pc.utf8_length(values)).to_numpy(zero_copy_only=False)
    try:
        specials = int(tokenizer.num_special_tokens_to_add(pair=False))
    except Exception:  # noqa: BLE001 - a tokenizer without the method: count what it adds to nothing
        specials = len(tokenizer("", add_special_tokens=True)["input_ids"])
    bound = chars + specials + 1
    if _drops_spaces(tokenizer):
        # Only plain spaces are subtracted: other whitespace is rare, and counting fewer keeps the bound safe.
        spaces = pc.count_substring(values, " ").to_numpy(zero_copy_only=False)
        bound = chars - spaces + specials
    return ~ascii_only | (bound > limit)


def _drops_spaces(tokenizer: Any) -> bool:
    """Whether the tokenizer is WordPiece behind a pre-tokenizer that discards whitespace (BERT's)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    from tokenizers import models, pre_tokenizers

    splitters = (pre_tokenizers.BertPreTokenizer, pre_tokenizers.Whitespace, pre_tokenizers.WhitespaceSplit)
    return isinstance(backend.model, models.WordPiece) and isinstance(backend.pre_tokenizer, splitters)


def _jsonable(value: Any) -> Any:
    """Plain JSON types for report examples (NaN -> None, numpy scalars -> Python)."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


@dataclass
class CurationResult:
    """Rows kept, rows removed (with a `reason` column) and a JSON-serialisable lineage report."""

    kept: pd.DataFrame
    removed: pd.DataFrame
    report: dict[str, Any]

    def summary(self) -> str:
        """One line: rows in, rows out and the main reasons for removal."""
        r = self.report
        reasons = ", ".join(f"{n} {k}" for k, n in r["removed"].items() if n)
        return f"{r['rows_in']} rows in, {r['rows_out']} kept" + (f" ({reasons} removed)" if reasons else "")


class _Checks:
    """Bookkeeping for curate(): which rows are alive, why others went, flags and examples."""

    def __init__(self, frame: pd.DataFrame, text_column: str, label_column: str | None, flag: bool):
        self.frame = frame
        self.text_column = text_column
        self.label_column = label_column if label_column in frame.columns else None
        self.flag = flag
        n = len(frame)
        self.alive = np.ones(n, dtype=bool)
        self.reason = np.full(n, None, dtype=object)
        self.flags = np.full(n, None, dtype=object)
        self.entries: list[dict[str, Any]] = []

    def examples(self, mask: np.ndarray, texts: pd.Series | None = None) -> list[dict[str, Any]]:
        rows = np.flatnonzero(mask)[:_EXAMPLES]
        out = []
        for row in rows:
            example = {"row": int(row), "text": _jsonable(self.frame[self.text_column].iloc[row])}
            if texts is not None:
                example["text"] = _jsonable(texts.iloc[row])
            if self.label_column:
                example["label"] = _jsonable(self.frame[self.label_column].iloc[row])
            out.append(example)
        return out

    def apply(self, name: str, failed: np.ndarray, detail: str, *, always_remove: bool = False) -> None:
        failed = failed & self.alive
        count = int(failed.sum())
        remove = always_remove or not self.flag
        if count:
            if remove:
                self.alive &= ~failed
                self.reason[failed] = name
            else:
                for row in np.flatnonzero(failed):
                    self.flags[row] = name if self.flags[row] is None else f"{self.flags[row]}; {name}"
        self.entries.append(
            {
                "check": name,
                "failed": count,
                "action": "removed" if remove else "flagged",
                "detail": detail,
                "examples": self.examples(failed),
            }
        )


def curate(
    frame: pd.DataFrame,
    data_cfg: DataConfig,
    task: str,
    tokenizer: Any = None,
    *,
    max_length: int | None = None,
    expected_labels: Iterable[Any] | None = None,
    apply_signal: bool = True,
) -> CurationResult:
    """Run the integrity checks and the configured signal; return kept rows, removed rows and lineage.

    Checks, in order: null-like text; for classification missing / unparseable / unexpected labels
    (unexpected = not among `expected_labels`, e.g. an eval file's labels the training data lacks); duplicates (exact, or case/whitespace-normalised);
    texts longer than `max_length` tokens (default: the tokenizer's limit; skipped without a
    tokenizer), truncated or dropped as configured. Then rows failing the signal are removed.
    """
    check_columns(frame, data_cfg, task)
    cur = data_cfg.curation
    signal = signal_from_dict(cur.signal) if (cur.signal and apply_signal) else None
    checks = _Checks(frame.copy(), data_cfg.text_column, data_cfg.label_column, cur.check_action == "flag")

    null = _check_null_text(checks)
    if task == "classification":
        missing, unparseable = _check_labels(checks, data_cfg.label_column)
        if expected_labels is not None:
            _check_unexpected_labels(checks, data_cfg.label_column, expected_labels, missing | unparseable)
    texts = arrow_text(checks.frame[data_cfg.text_column])
    if cur.drop_duplicates:
        _check_duplicates(checks, texts, null, normalise=cur.normalise_duplicates)
    limit = _token_limit(tokenizer, max_length)
    _check_too_long(checks, texts, null, tokenizer, limit, cur.too_long)

    signal_rows = int(checks.alive.sum())
    node_report = _check_signal(checks, signal, data_cfg.label_column, tokenizer) if signal is not None else []
    kept, removed = _kept_and_removed(checks)
    report = _report(frame, data_cfg, task, checks, limit, signal, signal_rows, node_report, rows_out=len(kept))
    return CurationResult(kept=kept, removed=removed, report=report)


def _check_null_text(checks: _Checks) -> np.ndarray:
    """Texts that are missing, empty, whitespace or a null word; returns the mask (later checks skip them)."""
    null = null_text_mask(checks.frame[checks.text_column])
    checks.apply("null_text", null, "text is missing, empty, whitespace or a null word (nan, None, null)")
    return null


def _check_labels(checks: _Checks, label_column: str) -> tuple[np.ndarray, np.ndarray]:
    """Empty labels, and labels not of the column's majority kind; returns both masks."""
    _, kind, missing, unparseable = parse_labels(checks.frame[label_column])
    checks.apply("missing_label", missing, "the label is empty")
    expected = "integers" if kind == "int" else "names (text)"
    checks.apply("unparseable_label", unparseable, f"most labels are {expected}; these are not")
    return missing, unparseable


def _check_unexpected_labels(checks: _Checks, label_column: str, expected_labels: Iterable[Any], invalid: np.ndarray) -> None:
    """Valid labels outside `expected_labels` (an eval file's classes the training data lacks)."""
    wanted = sorted(set(canonical_labels(pd.Series(list(expected_labels), dtype=object))))
    canon = canonical_labels(checks.frame[label_column])
    unexpected = ~canon.isin(wanted).to_numpy(dtype=bool) & ~invalid
    checks.apply("unexpected_label", unexpected, f"the label is not one of: {', '.join(wanted)}")


def _check_duplicates(checks: _Checks, texts: pd.Series, null: np.ndarray, *, normalise: bool) -> None:
    """Texts that repeat an earlier row, exactly or after lower-casing and collapsing whitespace."""
    # Flagged null texts are still alive: without `~null` every empty text would be a duplicate too.
    dup = repeats(texts, checks.alive & ~null, normalise=normalise)
    how = "case- and whitespace-normalised" if normalise else "exact"
    checks.apply("duplicate", dup, f"the text repeats an earlier row ({how}); the first one is kept")


def _token_limit(tokenizer: Any, max_length: int | None) -> int | None:
    """The too-long check's limit: max_length, else the tokenizer's own (its 'no limit' sentinel ignored)."""
    if max_length is None and tokenizer is not None:
        model_max = getattr(tokenizer, "model_max_length", None)
        return model_max if isinstance(model_max, int) and model_max < 100_000 else None
    return max_length


def _check_too_long(checks: _Checks, texts: pd.Series, null: np.ndarray, tokenizer: Any, limit: int | None,
                    action: str) -> None:
    """Texts over `limit` tokens: dropped, or cut to it (past TOO_LONG_EXACT_ROWS, counted from a sample)."""
    if tokenizer is None or not limit:
        checks.entries.append({"check": "too_long", "failed": 0, "action": "skipped", "detail": "no tokenizer given"})
        return
    candidates = checks.alive & ~null
    candidates[candidates] = may_exceed(texts[candidates], tokenizer, limit)
    measured = np.flatnonzero(candidates)
    if action == "truncate" and len(measured) > TOO_LONG_EXACT_ROWS:
        measured = np.sort(np.random.default_rng(0).choice(measured, TOO_LONG_SAMPLE_ROWS, replace=False))
    lengths = np.zeros(len(checks.frame), dtype=np.int64)
    lengths[measured] = token_lengths(tokenizer, texts.iloc[measured].tolist())
    too_long = lengths > limit
    if len(measured) < int(candidates.sum()):
        share = float(too_long.sum()) / len(measured)
        checks.entries.append({
            "check": "too_long",
            "failed": int(round(share * candidates.sum())),
            "action": "truncated",
            "estimated": True,
            "detail": f"longer than {limit} tokens: about {share:.1%} of {int(candidates.sum()):,} rows that "
                      f"could be (a sample of {len(measured):,} was measured); each is cut to {limit} tokens "
                      "as the engine tokenises it",
            "examples": checks.examples(too_long),
        })
    elif action == "drop":
        # Removed even in flag mode: the user chose not to train on them, and whole they do not fit.
        checks.apply("too_long", too_long, f"longer than {limit} tokens", always_remove=True)
    else:
        checks.entries.append(_cut_too_long(checks, texts, too_long, tokenizer, limit))


def _cut_too_long(checks: _Checks, texts: pd.Series, too_long: np.ndarray, tokenizer: Any, limit: int) -> dict[str, Any]:
    """Cut the too-long texts in place to `limit` tokens; returns the check's report entry."""
    rows = np.flatnonzero(too_long)
    examples = checks.examples(too_long)  # quoted before the cut, as the user wrote them
    if len(rows):
        work, column = checks.frame, checks.text_column
        position = work.columns.get_loc(column)
        cut = _truncate(tokenizer, texts.iloc[rows].tolist(), limit)
        if work[column].dtype != object:
            work[column] = work[column].astype(object)
        work.iloc[rows, position] = cut
    return {
        "check": "too_long",
        "failed": int(len(rows)),
        "action": "truncated",
        "detail": f"longer than {limit} tokens: cut to {limit}",
        "examples": examples,
    }


def _check_signal(checks: _Checks, signal: Signal, label_column: str | None, tokenizer: Any) -> list[dict[str, Any]]:
    """Remove the rows still alive that fail the signal tree; returns how many rows passed each node."""
    alive_idx = np.flatnonzero(checks.alive)
    masks = evaluate_signal(
        checks.frame.iloc[alive_idx], signal, text_column=checks.text_column, label_column=label_column,
        tokenizer=tokenizer,
    )
    node_report = [
        {"path": path, "node": node.describe(), "passed": int(masks[path].sum())} for path, node in iter_nodes(signal)
    ]
    failed = np.zeros(len(checks.frame), dtype=bool)
    failed[alive_idx] = ~masks["0"]
    checks.apply("signal", failed, "the row does not pass the signal tree", always_remove=True)
    return node_report


def _kept_and_removed(checks: _Checks) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The kept rows (with `flag_reason` in flag mode) and the removed ones with their `reason`."""
    work = checks.frame
    kept = work[checks.alive].copy()
    if checks.flag:
        kept["flag_reason"] = pd.Series(checks.flags[checks.alive], index=kept.index, dtype=object)
    removed = work[~checks.alive].copy()
    removed["reason"] = checks.reason[~checks.alive]
    for out in (kept, removed):
        out.attrs = {}  # lineage lives in the report, not in pandas attrs that copy on every operation
    return kept, removed


def _report(frame: pd.DataFrame, data_cfg: DataConfig, task: str, checks: _Checks, limit: int | None,
            signal: Signal | None, signal_rows: int, node_report: list[dict[str, Any]], *, rows_out: int) -> dict[str, Any]:
    """The JSON lineage report: where the rows came from, the settings, each check's entry and the counts."""
    cur = data_cfg.curation
    # Only removed rows carry a reason: counting those alone skips a Python comparison per kept row.
    found = Counter(checks.reason[~checks.alive].tolist())
    removed_counts = {r: int(found.get(r, 0)) for r in REMOVAL_REASONS}
    report = {
        "version": 1,
        "task": task,
        "source": _jsonable_dict(frame.attrs.get("source") or {"source": data_cfg.source, "path": data_cfg.path}),
        "read": _jsonable_dict(frame.attrs.get("read_report") or {}),
        "text_column": data_cfg.text_column,
        "label_column": data_cfg.label_column if data_cfg.label_column in frame.columns else None,
        "settings": {
            "drop_duplicates": cur.drop_duplicates,
            "normalise_duplicates": cur.normalise_duplicates,
            "too_long": cur.too_long,
            "max_length": limit,
            "check_action": cur.check_action,
        },
        "rows_in": int(len(frame)),
        "checks": checks.entries,
        "signal": signal.to_dict() if signal is not None else None,
        "signal_rows_in": signal_rows if signal is not None else None,
        "signal_counts": node_report,
        "removed": {k: v for k, v in removed_counts.items() if v},
        "flagged": int(sum(f is not None for f in checks.flags)) if checks.flag else 0,
        "rows_out": int(rows_out),
    }
    if frame.attrs.get("label_names"):
        report["label_names"] = list(frame.attrs["label_names"])
    return report


def _jsonable_dict(data: dict[str, Any]) -> dict[str, Any]:
    """A shallow copy whose values are JSON types (lists and nested dicts kept)."""
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out[str(key)] = _jsonable_dict(value)
        elif isinstance(value, (list, tuple)):
            out[str(key)] = [_jsonable(v) for v in value]
        else:
            out[str(key)] = _jsonable(value)
    return out


def curate_for_model(frame: pd.DataFrame, cfg: RunConfig, **options: Any) -> CurationResult:
    """curate() with the configured model's tokenizer and length limit, so the too-long check runs.

    Only the tokenizer is loaded (no weights). When the model cannot be resolved (offline, a typo in
    the source), the other checks and the signal still run and the too-long entry says why it was
    skipped. `options` go to curate (expected_labels, apply_signal).
    """
    from core.errors import ModelError
    from core.models import load_tokenizer

    try:
        tokenizer, max_length = load_tokenizer(cfg.model)
    except ModelError as err:
        result = curate(frame, cfg.data, cfg.task, **options)
        for entry in result.report["checks"]:
            if entry["check"] == "too_long" and entry["action"] == "skipped":
                entry["detail"] = f"the model's tokenizer could not be loaded: {err}"
        return result
    return curate(frame, cfg.data, cfg.task, tokenizer, max_length=max_length, **options)
