"""`make bench` refreshes BENCHMARKS.md's marked tables and keeps every word written around them."""

from __future__ import annotations

from bench.run_all import ORDER, write_summary


def test_marked_tables_are_refreshed_and_the_text_around_them_stays(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "throughput.md").write_text("| new throughput |\n")
    (results / "sft.md").write_text("| hand-run, unmarked |\n")
    (results / "chat.md").write_text("| new chat |\n")
    fresh = [name for name in ORDER if name != "throughput"][0]
    (results / f"{fresh}.md").write_text("| a benchmark new to the file |\n")
    summary = tmp_path / "BENCHMARKS.md"
    summary.write_text("# Benchmarks\n\nIntro.\n\n<!-- bench:throughput -->\n| old throughput |\n"
                       "<!-- /bench:throughput -->\n\nWhat the throughput says, by hand.\n\n## Chat\n\n"
                       "<!-- bench:chat -->\n| old chat |\n<!-- /bench:chat -->\n\nThe chat's commentary.\n")

    written = write_summary(summary, results)

    text = summary.read_text()
    assert "| new throughput |" in text and "| old throughput |" not in text
    assert "| new chat |" in text and "| old chat |" not in text
    for kept in ("Intro.", "What the throughput says, by hand.", "## Chat", "The chat's commentary."):
        assert kept in text
    assert "hand-run, unmarked" not in text  # a bench run by hand without markers is not pasted in
    assert text.rstrip().endswith(f"<!-- bench:{fresh} -->\n| a benchmark new to the file |\n<!-- /bench:{fresh} -->")
    assert sorted(written) == sorted(["throughput", "chat", fresh])
    assert write_summary(summary, results) and summary.read_text() == text  # a second refresh changes nothing


def test_first_visits_measured_alone_keep_the_last_pages_during_a_run_with_their_date(tmp_path):
    import json

    from bench.bench_first_page import _markdown, earlier_during_run

    assert earlier_during_run(tmp_path) is None  # nothing measured yet
    during = {"epochs": 3, "rows": [{"round": 0, "page": "Data", "run_status": "running", "title_s": 0.2,
                                     "drawn_s": 0.5}]}
    (tmp_path / "first_page.json").write_text(json.dumps({"date": "2026-12-02T16:46:20+00:00", "during_run": during}))
    kept = earlier_during_run(tmp_path)
    assert kept == {**during, "date": "2026-12-02T16:46:20+00:00"}
    doc = {"date": "2026-12-07T23:32:11+00:00", "machine": {"cpus": 2}, "first_visits": [
        {"frame_s": 1.0, "interactive_s": 2.0, "params_s": 3.0, "load_average_before": 0.5}],
        "median_interactive_s": 2.0, "median_params_s": 3.0, "during_run": kept,
        "targets": {"interactive_s": 3.0, "params_s": 8.0, "page_s": 1.0}}
    shown = _markdown(doc)
    assert "2026-12-07T23:32:11" in shown and "Measured on 2026-12-02T16:46:20+00:00. While the default run" in shown
    assert "| Data (pass 1) | running | 0.20 s | 0.50 s |" in shown
