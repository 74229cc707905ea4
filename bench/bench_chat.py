"""The Chat page's first token, as a user gets it (real Chromium).

    python -m bench.bench_chat [--run RUNS/ID] [--repeats 2] [--messages 3]

A finished instruction-tuning run (default: a short news run trained first) is copied into the runs
folder of a fresh app, started with the README's command (`make run`, bench/browser.start_app).
Chromium opens the Chat page on that run and waits until it is drawn; a user then takes a few
seconds to type (TYPING_S), sends a news question (typed into the chat input, Enter), and each
next message once both answers are in. The clock runs from Enter to
  - the user's message shown (the page answered),
  - the base model's first words in its column: the first token (target <= 1 s),
  - the fine-tuned model's first words,
  - both answers complete (the script run finished).
Two ways in, each on a fresh server per repeat:
  - "after Setup": Setup is opened first and left for WARMED_S (the server's warm-up imports torch and
    keeps a training process ready), then the Chat page: how a user who fine-tuned comes to chat;
  - "Chat first": the Chat page is the server's first page, so its warm-up is still importing while
    the user types.
The Chat page loads both models while the user types (ui.state.load_ahead); the later messages find
them loaded.

Writes bench/results/chat.json and chat.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import write_results
from bench.browser import REPO, VIEWPORT, chromium, start_app, stop_app, wait_idle

RESULTS = REPO / "bench" / "results"
TARGET_FIRST_TOKEN_S = 1.0
TYPING_S = 4.0  # between the page drawn and Enter: the time a user takes to write a short message
WARMED_S = 30.0  # on Setup before going to Chat: the warm-up's imports and standby process are done
SCENARIOS = ("after Setup", "Chat first")

# Assistant bubbles with some text, per chat column (the two columns that hold chat messages, left first).
ANSWERED_JS = """() => [...document.querySelectorAll('[data-testid="stColumn"]')]
    .filter(c => c.querySelector('[data-testid="stChatMessage"]') && !c.querySelector('[data-testid="stColumn"]'))
    .map(c => [...c.querySelectorAll('[data-testid="stChatMessage"]')]
        .filter(m => m.querySelector('[data-testid="stChatMessageAvatarAssistant"]'))
        .filter(m => (m.querySelector('[data-testid="stChatMessageContent"]')?.innerText || '').trim().length > 0)
        .length)"""
# User bubbles per chat column.
ASKED_JS = """() => [...document.querySelectorAll('[data-testid="stColumn"]')]
    .filter(c => c.querySelector('[data-testid="stChatMessage"]') && !c.querySelector('[data-testid="stColumn"]'))
    .map(c => c.querySelectorAll('[data-testid="stChatMessageAvatarUser"]').length)"""
IDLE_JS = """() => document.querySelector('[data-testid="stApp"]')?.dataset.testScriptState === 'notRunning'"""


def questions(run: Path, count: int) -> list[str]:
    """The user messages: fresh headlines asked the way the run was trained to answer them."""
    from bench.news_prompts import news_eval_chats

    chats, _ = news_eval_chats(run, count)
    return [chat[-1]["content"] for chat in chats]


def one_server(browser, run: Path, work: Path, index: int, messages: list[str], typing_s: float,
               scenario: str) -> list[dict[str, Any]]:
    """A fresh app with `run` in its runs folder; every message sent in one Chromium tab, timed."""
    state = work / f"server-{index}-{SCENARIOS.index(scenario)}"
    shutil.copytree(run, state / "runs" / run.name)
    proc, url = start_app(state, state / "app.log")
    context = browser.new_context(viewport=VIEWPORT)
    rows = []
    try:
        page = context.new_page()
        page.set_default_timeout(180_000)
        if scenario == "after Setup":
            page.goto(url)
            wait_idle(page, 180_000)
            page.wait_for_timeout(int(WARMED_S * 1000))
        opened = time.perf_counter()
        page.goto(f"{url}/playground?run={run.name}")
        box = page.get_by_test_id("stChatInputTextArea")
        box.wait_for(state="visible")
        input_s = time.perf_counter() - opened
        wait_idle(page, 180_000)
        page.wait_for_timeout(int(typing_s * 1000))
        for number, message in enumerate(messages):
            box.fill(message)
            load = os.getloadavg()[0]
            sent = time.perf_counter()
            box.press("Enter")
            page.wait_for_function(f"() => ({ASKED_JS})().every(n => n >= {number + 1})", polling=20)
            shown = time.perf_counter() - sent
            page.wait_for_function(f"() => ({ANSWERED_JS})()[0] >= {number + 1}", polling=20)
            base_first = time.perf_counter() - sent
            page.wait_for_function(f"() => ({ANSWERED_JS})()[1] >= {number + 1}", polling=20)
            tuned_first = time.perf_counter() - sent
            page.wait_for_timeout(50)
            page.wait_for_function(IDLE_JS, polling=20)
            done = time.perf_counter() - sent
            rows.append({"scenario": scenario, "server": index, "message": number + 1, "page_input_s": round(input_s, 2),
                         "shown_s": round(shown, 2), "base_first_token_s": round(base_first, 2),
                         "tuned_first_token_s": round(tuned_first, 2), "both_done_s": round(done, 2),
                         "load_average": round(load, 2)})
            print(rows[-1], flush=True)
    finally:
        context.close()
        stop_app(proc)
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a finished sft run folder (default: train a short news run)")
    parser.add_argument("--repeats", type=int, default=2, help="fresh servers")
    parser.add_argument("--messages", type=int, default=3, help="messages sent on each server")
    parser.add_argument("--typing", type=float, default=TYPING_S,
                        help=f"seconds between the page drawn and the first Enter (default {TYPING_S:g})")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    from bench.news_prompts import train_short_news_run

    work = Path(tempfile.mkdtemp(prefix="tuneboard-chat-"))
    try:
        run = args.run
        if run is None:
            run = work / "news-run"
            train_short_news_run(run)
        run = run.resolve()
        messages = questions(run, args.messages)
        rows: list[dict[str, Any]] = []
        with chromium() as browser:
            for index in range(args.repeats):
                for scenario in SCENARIOS:
                    rows += one_server(browser, run, work, index, messages, args.typing, scenario)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def median(which: list[dict[str, Any]], key: str) -> float | None:
        return round(statistics.median(r[key] for r in which), 2) if which else None

    groups = {f"{scenario}: first message": [r for r in rows if r["scenario"] == scenario and r["message"] == 1]
              for scenario in SCENARIOS}
    groups["later messages"] = [r for r in rows if r["message"] > 1]
    summary = {name: {key: median(which, key) for key in ("shown_s", "base_first_token_s", "tuned_first_token_s",
                                                          "both_done_s")}
               for name, which in groups.items()}
    document = {"benchmark": "chat", "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": platform.machine(), "cpus": os.cpu_count(), "run": str(args.run or "short news run"),
                "repeats": args.repeats, "messages": args.messages, "typing_s": args.typing, "warmed_s": WARMED_S,
                "target_first_token_s": TARGET_FIRST_TOKEN_S, "summary": summary, "rows": rows}
    write_results(args.out, "chat", document, _markdown(document))
    print(_markdown(document))
    return document


def _markdown(doc: dict[str, Any]) -> str:
    lines = [f"`python -m bench.bench_chat` on {doc['when']} ({doc['cpus']} CPUs): {doc['run']}, {doc['repeats']} fresh "
             f"servers (`make run`) per way in, real Chromium on the Chat page, {doc['messages']} messages each, the "
             f"first sent {doc['typing_s']:g} s after the page was drawn. 'after Setup': Setup open "
             f"{doc['warmed_s']:g} s first; 'Chat first': the server's first page. Seconds from Enter (medians):", "",
             "| message | shown | base: first token | fine-tuned: first token | both answers done |",
             "|---|---:|---:|---:|---:|"]
    for name, figures in doc["summary"].items():
        lines.append(f"| {name} | {figures['shown_s']} | **{figures['base_first_token_s']}** | "
                     f"{figures['tuned_first_token_s']} | {figures['both_done_s']} |")
    lines += ["", f"Target for the first token: <= {doc['target_first_token_s']:g} s.", "", "Every message:", "",
              "| way in | server | message | page's input shown after goto | shown | base first | tuned first | done "
              "| load |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in doc["rows"]:
        lines.append(f"| {r['scenario']} | {r['server']} | {r['message']} | {r['page_input_s']} | {r['shown_s']} | "
                     f"{r['base_first_token_s']} | {r['tuned_first_token_s']} | {r['both_done_s']} | "
                     f"{r['load_average']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
