"""Guards: the figures earlier work reached must not fall back (issue #28, part 6).

    python -m bench.guards [--run] [--repeats 3]

Reads the latest results the benchmarks wrote (bench/results/throughput.json, first_page.json), or with
--run measures them first (bench_throughput, then bench_first_page's first visits), and checks:
  - whole-process lead of Tuneboard's CLI over a tuned `Trainer` script, per task, at or above the median
    measured when the targets of issue #16 were retired (masked-LM 1.887x, classification 1.224x, causal
    1.563x on 2026-12-02, rounded down; the median over the run's repeats, as bench_throughput reports it);
  - cold start: a fresh server's first visit to Setup interactive within 3 s and its Summary showing a
    parameter count within 8 s (medians over bench_first_page's fresh servers).
Each guard names the result file and date it read. Exits 1 when a guard fails, 2 when a result is missing.

Writes bench/results/guards.json and guards.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import write_results

RESULTS = Path(__file__).resolve().parent / "results"
# Tuneboard's CLI over a tuned Trainer, whole process (bench_throughput's engine_vs_tuned_wall), at least:
LEAD_FLOORS = {"mlm": 1.88, "classification": 1.22, "causal": 1.56}  # the 2026-12-02 medians, rounded down
# A fresh server's first visit (bench_first_page's medians), at most:
COLD_START_CEILINGS = {"median_interactive_s": 3.0, "median_params_s": 8.0}
COLD_START_NAMES = {"median_interactive_s": "Setup interactive", "median_params_s": "Summary shows the parameters"}


def check(throughput: dict[str, Any] | None, first_page: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per guard: what it reads, its bound, the measured value and whether it holds (None: not measured)."""
    rows = []
    summary = (throughput or {}).get("summary") or {}
    for task, floor in LEAD_FLOORS.items():
        measured = (summary.get(task) or {}).get("engine_vs_tuned_wall")
        rows.append({"guard": f"{task}: CLI over a tuned Trainer, whole process", "bound": f">= {floor}x",
                     "measured": None if measured is None else round(float(measured), 3),
                     "holds": None if measured is None else float(measured) >= floor,
                     "source": "throughput", "date": (throughput or {}).get("date")})
    for key, ceiling in COLD_START_CEILINGS.items():
        measured = (first_page or {}).get(key)
        rows.append({"guard": f"cold start: {COLD_START_NAMES[key]}", "bound": f"<= {ceiling} s",
                     "measured": None if measured is None else round(float(measured), 2),
                     "holds": None if measured is None else float(measured) <= ceiling,
                     "source": "first_page", "date": (first_page or {}).get("date")})
    return rows


def _read(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="store_true", help="measure throughput and the first visit first")
    parser.add_argument("--repeats", type=int, default=3, help="with --run: repeats of bench_throughput")
    args = parser.parse_args(argv)
    if args.run:
        from bench import bench_first_page, bench_throughput

        bench_throughput.main(["--repeats", str(args.repeats)])
        bench_first_page.main(["--skip-during-run"])
    rows = check(_read("throughput"), _read("first_page"))
    document = {"benchmark": "guards", "date": datetime.now(UTC).isoformat(timespec="seconds"), "rows": rows}
    write_results(RESULTS, "guards", document, _markdown(document))
    print(_markdown(document))
    if any(row["holds"] is None for row in rows):
        return 2
    return 0 if all(row["holds"] for row in rows) else 1


def _markdown(document: dict[str, Any]) -> str:
    lines = [f"`python -m bench.guards` on {document['date']}: the figures that must not fall back.", "",
             "| guard | bound | measured | holds | from |", "|---|---|---:|---|---|"]
    for row in document["rows"]:
        holds = {True: "yes", False: "**NO**", None: "not measured"}[row["holds"]]
        measured = "-" if row["measured"] is None else row["measured"]
        lines.append(f"| {row['guard']} | {row['bound']} | {measured} | {holds} | "
                     f"{row['source']}.json, {row['date'] or '-'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
