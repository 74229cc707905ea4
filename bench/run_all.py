"""Run every benchmark, then refresh BENCHMARKS.md's tables from their markdown (write_summary)."""

from __future__ import annotations

from pathlib import Path

from bench import (
    bench_curation,
    bench_estimates,
    bench_first_page,
    bench_latency,
    bench_levers,
    bench_lr_defaults,
    bench_memory,
    bench_precision,
    bench_presets,
    bench_scale,
    bench_snapshot_threads,
    bench_throughput,
    bench_train_enough,
    bench_watching,
)

RESULTS = Path(__file__).resolve().parent / "results"
ORDER = ("throughput", "levers", "precision", "latency", "presets", "watching", "estimates", "snapshot_threads",
         "memory", "curation", "scale", "first_page", "lr_defaults", "train_enough")


def main() -> None:
    modules = (bench_throughput, bench_levers, bench_precision, bench_latency, bench_presets, bench_watching,
               bench_estimates, bench_snapshot_threads, bench_memory, bench_curation, bench_scale,
               bench_first_page, bench_lr_defaults, bench_train_enough)
    for module in modules:
        module.main([])
    write_summary()


START, END = "<!-- bench:{name} -->", "<!-- /bench:{name} -->"


def write_summary(path: Path | None = None, results: Path = RESULTS) -> list[str]:
    """Refresh BENCHMARKS.md's tables from the latest results; returns the names refreshed or added.

    Each table stands between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` and is replaced by
    results/NAME.md; everything outside the markers (the intro, the commentary beside a table, the
    sections of benchmarks run by hand without markers) stays as written. A benchmark of ORDER with
    results but no markers yet is added at the end, between new markers.
    """
    path = path or RESULTS.parents[1] / "BENCHMARKS.md"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    written = []
    names = [name for name in ORDER if (results / f"{name}.md").exists()]
    names += sorted(table.stem for table in results.glob("*.md") if table.stem not in ORDER)
    for name in names:
        table = results / f"{name}.md"
        start, end = START.format(name=name), END.format(name=name)
        latest = f"{start}\n{table.read_text(encoding='utf-8').strip()}\n{end}"
        if start in text and end in text.split(start, 1)[1]:
            before, rest = text.split(start, 1)
            text = before + latest + rest.split(end, 1)[1]
        elif name in ORDER:
            text = text.rstrip() + "\n\n" + latest + "\n"
        else:
            continue
        written.append(name)
    path.write_text(text, encoding="utf-8")
    return written


if __name__ == "__main__":
    main()
