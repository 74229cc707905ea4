"""Run every benchmark, then rebuild BENCHMARKS.md from their markdown tables."""

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


def write_summary() -> None:
    """BENCHMARKS.md = the intro plus each benchmark's latest table."""
    path = RESULTS.parents[1] / "BENCHMARKS.md"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    intro = text.split("<!-- results -->")[0].rstrip() + "\n\n<!-- results -->\n"
    tables = [(RESULTS / f"{name}.md").read_text(encoding="utf-8") for name in ORDER if (RESULTS / f"{name}.md").exists()]
    path.write_text(intro + "\n" + "\n".join(tables), encoding="utf-8")


if __name__ == "__main__":
    main()
