"""Curation throughput: 100k synthetic reviews through the integrity checks and the seed signal tree.

    python -m bench.bench_curation [--rows 100000] [--repeats 3] [--large-rows 1000000]

Measured: `core.data.integrity.curate` on the synthetic reviews (5% null texts), task
classification, with the checks on (null-like text, labels, exact duplicates) and the seed signal
tree: mentions the brand Nike AND one of Nike's products AND positive sentiment (lexicon).

Baseline, in the same run on the same rows: the same predicates (the very same regex patterns and
lexicon, compiled with Python's `re`) evaluated row by row with `DataFrame.apply(axis=1)` and a
`seen` set for duplicates, the way one would write it by hand. Both must keep exactly the same rows.
Times are medians over the repeats, after one warm-up call that pays the imports.

Large case (issue 18): the same curate() and baseline once over --large-rows rows (1M), and curate()
again with the bundled MiniLM's tokenizer, so the too-long check (64 tokens) runs as in a real run.

Writes bench/results/curation.json and bench/results/curation.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from bench import write_results
from core.config import DataConfig
from core.data.cells import INT_LIKE, NULL_STRINGS
from core.data.integrity import curate
from core.data.lexicon import (
    NEGATED_NEGATIVE_PATTERN,
    NEGATED_POSITIVE_PATTERN,
    NEGATIVE_PATTERN,
    POSITIVE_PATTERN,
    word_lists,
    word_regex,
)
from core.data.synthetic import generate_reviews

RESULTS = Path(__file__).resolve().parent / "results"
SEED_SIGNAL = {
    "op": "and",
    "children": [
        {"kind": "word_list", "list": "brand:Nike"},
        {"kind": "word_list", "list": "brand_products:Nike"},
        {"kind": "sentiment", "polarity": "positive"},
    ],
}


def bench_config() -> DataConfig:
    """Default checks plus the seed signal tree."""
    cfg = DataConfig()
    cfg.curation.signal = SEED_SIGNAL
    return cfg


def baseline(frame: pd.DataFrame) -> pd.Series:
    """The same checks and predicates, one row at a time with pandas.apply; returns the kept mask."""
    lists = word_lists()
    brand = re.compile(word_regex(lists["brand:Nike"]))
    products = re.compile(word_regex(lists["brand_products:Nike"]))
    pos, neg = re.compile(POSITIVE_PATTERN), re.compile(NEGATIVE_PATTERN)
    not_pos, not_neg = re.compile(NEGATED_POSITIVE_PATTERN), re.compile(NEGATED_NEGATIVE_PATTERN)
    int_like = re.compile(INT_LIKE)
    seen: set[str] = set()

    def keep(row: pd.Series) -> bool:
        text = row["text"]
        if text is None or (isinstance(text, float) and text != text):
            return False
        text = str(text)
        stripped = text.strip()
        if not stripped or stripped.lower() in NULL_STRINGS:
            return False
        if not int_like.match(str(row["label"]).strip()):
            return False
        if text in seen:
            return False
        seen.add(text)
        if not (brand.search(text) and products.search(text)):
            return False
        score = len(pos.findall(text)) - len(neg.findall(text))
        score += 2 * (len(not_neg.findall(text)) - len(not_pos.findall(text)))
        return score > 0

    return frame.apply(keep, axis=1)


def _median_time(fn: Any, repeats: int) -> tuple[float, list[float], Any]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and write curation.json / curation.md; returns the JSON document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large-rows", type=int, default=1_000_000, help="Rows of the large case (0: skip it).")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import datasets
    import pyarrow

    start = time.perf_counter()
    frame = generate_reviews(args.rows, seed=0)
    generate_s = time.perf_counter() - start
    cfg = bench_config()
    curate(frame.head(1000), cfg, "classification")  # warm-up: imports, regex caches

    curate_s, curate_runs, result = _median_time(lambda: curate(frame, cfg, "classification"), args.repeats)
    baseline_s, baseline_runs, kept_mask = _median_time(lambda: baseline(frame), args.repeats)
    agree = result.kept.index.equals(frame.index[kept_mask.to_numpy(dtype=bool)])

    document = {
        "benchmark": "curation",
        "question": f"How fast does curate() clean and select {args.rows:,} rows, against a per-row loop?",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "pandas": pd.__version__,
            "pyarrow": pyarrow.__version__,
            "datasets": datasets.__version__,
        },
        "config": {
            "rows": args.rows,
            "task": "classification",
            "checks": ["null_text", "missing_label", "unparseable_label", "duplicate (exact)"],
            "signal": SEED_SIGNAL,
            "repeats": args.repeats,
        },
        "generate_s": round(generate_s, 4),
        "curate_s": round(curate_s, 4),
        "curate_runs_s": [round(t, 4) for t in curate_runs],
        "curate_rows_per_s": round(args.rows / curate_s),
        "baseline": "DataFrame.apply(axis=1) per row, same regexes compiled with re, a set for duplicates",
        "baseline_s": round(baseline_s, 4),
        "baseline_runs_s": [round(t, 4) for t in baseline_runs],
        "baseline_rows_per_s": round(args.rows / baseline_s),
        "speedup_vs_baseline": round(baseline_s / curate_s, 2),
        "rows_kept": int(len(result.kept)),
        "removed": result.report["removed"],
        "signal_counts": result.report["signal_counts"],
        "same_rows_as_baseline": bool(agree),
        "large": large_case(args.large_rows, cfg) if args.large_rows else None,
    }
    write_results(args.out, "curation", document, _markdown(document))
    print(
        f"curate: {curate_s:.3f} s ({document['curate_rows_per_s']:,} rows/s); baseline {baseline_s:.3f} s; "
        f"speedup {document['speedup_vs_baseline']:.1f}x; same rows: {agree}"
    )
    print(f"wrote {args.out / 'curation.json'} and {args.out / 'curation.md'}")
    if not agree or (document["large"] and not document["large"]["same_rows_as_baseline"]):
        raise SystemExit("curate() and the baseline kept different rows: the comparison is invalid")
    return document


def large_case(rows: int, cfg: DataConfig) -> dict[str, Any]:
    """curate() over `rows` rows once: without a tokenizer, with the bundled model's (too-long check), and the baseline."""
    from core.config import ModelConfig
    from core.models import load_tokenizer

    start = time.perf_counter()
    frame = generate_reviews(rows, seed=0)
    generate_s = time.perf_counter() - start
    curate_s, _, result = _median_time(lambda: curate(frame, cfg, "classification"), 1)
    tokenizer, max_length = load_tokenizer(ModelConfig())
    tokenized_s, _, with_tokenizer = _median_time(
        lambda: curate(frame, cfg, "classification", tokenizer, max_length=max_length), 1)
    baseline_s, _, kept_mask = _median_time(lambda: baseline(frame), 1)
    too_long = next(c for c in with_tokenizer.report["checks"] if c["check"] == "too_long")
    return {
        "rows": rows,
        "generate_s": round(generate_s, 2),
        "curate_s": round(curate_s, 3),
        "curate_with_tokenizer_s": round(tokenized_s, 3),
        "too_long_check": {k: too_long.get(k) for k in ("failed", "action", "estimated", "detail")},
        "baseline_s": round(baseline_s, 3),
        "speedup_vs_baseline": round(baseline_s / curate_s, 2),
        "rows_kept": int(len(result.kept)),
        "same_rows_as_baseline": bool(result.kept.index.equals(frame.index[kept_mask.to_numpy(dtype=bool)])),
    }


def _markdown(doc: dict[str, Any]) -> str:
    c, m = doc["config"], doc["machine"]
    removed = ", ".join(f"{n:,} {k}" for k, n in doc["removed"].items())
    lines = [
        "# Curation throughput",
        "",
        f"{doc['question']} Synthetic reviews (5% null texts), checks: {', '.join(c['checks'])}; signal: "
        "mentions Nike AND one of Nike's products AND positive sentiment (lexicon). Baseline: "
        f"{doc['baseline']}. Medians of {c['repeats']} runs after a warm-up; both keep the same rows: "
        f"{'yes' if doc['same_rows_as_baseline'] else 'NO'}.",
        "",
        f"Machine: {m['cpus']} CPUs, Python {m['python']}, pandas {m['pandas']}, pyarrow {m['pyarrow']}, "
        f"datasets {m['datasets']}. Measured {doc['date']}.",
        "",
        "| method | seconds (median) | rows/s |",
        "|---|---:|---:|",
        f"| `curate()` (vectorised, datasets batched map, RE2) | {doc['curate_s']:.3f} | {doc['curate_rows_per_s']:,} |",
        f"| per-row `DataFrame.apply` baseline | {doc['baseline_s']:.3f} | {doc['baseline_rows_per_s']:,} |",
        f"| **speedup** | **{doc['speedup_vs_baseline']:.1f}×** | |",
        "",
        f"{c['rows']:,} rows in, {doc['rows_kept']:,} kept; removed: {removed}. "
        f"Generating the rows took {doc['generate_s']:.2f} s.",
        "",
    ]
    large = doc.get("large")
    if large:
        lines += [
            f"At {large['rows']:,} rows (one run each; same rows as the baseline: "
            f"{'yes' if large['same_rows_as_baseline'] else 'NO'}):",
            "",
            "| method | seconds |",
            "|---|---:|",
            f"| `curate()`: checks, exact duplicates, signal tree | {large['curate_s']:.2f} |",
            f"| `curate()` plus the too-long check with MiniLM's tokenizer | {large['curate_with_tokenizer_s']:.2f} |",
            f"| per-row `DataFrame.apply` baseline | {large['baseline_s']:.2f} |",
            f"| **speedup** | **{large['speedup_vs_baseline']:.1f}×** |",
            "",
            f"{large['rows_kept']:,} rows kept. Too-long check: {large['too_long_check']['detail']}.",
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
