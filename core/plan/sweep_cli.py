"""`python -m core sweep`: a strategy shoot-out from the command line, trained one run after another.

The runs go through a JobManager in this process (training on its worker thread, as with
TUNEBOARD_TRAIN_IN_PROCESS=1), so a CLI group is the same group the dashboard shows: the same
folders, the same group file, the same resume. Ctrl-C stops the group (the running member saves a
checkpoint); `--resume groups/<id>.json` finishes it later.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from core.errors import ConfigError, RunError
from core.plan import comparison, sweep
from core.run.folder import FINISHED, default_runs_root

POLL_S = 0.5


def cmd_sweep(args: argparse.Namespace, config_from_args: Callable[[argparse.Namespace], object]) -> int:
    """Queue (or resume) a group, train it here, print the comparison; 0 when every run completed."""
    from core.present import text
    from core.service.jobs import JobManager, train_in_this_process

    if args.resume:
        group_file = Path(args.resume).expanduser().resolve()
        if group_file.parent.name != sweep.GROUPS_FOLDER:
            raise RunError(f"{args.resume} is not a group file: pass <runs folder>/groups/<group id>.json.")
        root = group_file.parent.parent
        group_id = sweep.load_group_file(group_file).group_id
    else:
        if not args.strategies:
            raise ConfigError("Give --strategies, e.g. --strategies full,lora (or --resume a group file).")
        root = Path(args.output_dir).expanduser().resolve() if args.output_dir else default_runs_root()
    jobs = JobManager(root, train_fn=train_in_this_process)
    stop = threading.Event()

    def request_stop(signum, _frame):
        if not stop.is_set():
            stop.set()
            print(f"\n{signal.Signals(signum).name}: stopping the group; the running run saves a checkpoint…",
                  file=sys.stderr, flush=True)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if args.resume:
            sweep.resume_group(jobs, group_id)
        else:
            cfg = config_from_args(args)
            group_id = sweep.submit_group(jobs, cfg, sweep.parse_strategies(args.strategies),
                                          sweep.parse_learning_rates(args.learning_rates))
        print(text.SWEEP_CLI_GROUP.format(path=sweep.group_path(root, group_id)), flush=True)
        _follow(jobs, group_id, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        jobs.shutdown()
    group = sweep.load_group(root, group_id)
    result = comparison.compare(comparison.group_rows(jobs, group), group.task)
    print(comparison.format_table(comparison.comparison_table(result)))
    print(comparison.recommendation_text(result.recommendation), flush=True)
    unfinished = [row for row in result.rows if row.status != "completed"]
    if unfinished:
        names = ", ".join(f"{row.label} ({row.status})" for row in unfinished)
        raise RunError(f"Not every run completed: {names}. See each run's run.log; finish the group with "
                       f"python -m core sweep --resume {sweep.group_path(root, group_id)}")
    return 0


def _follow(jobs, group_id: str, stop: threading.Event) -> None:
    """Print each member as it starts and ends; stop the group once when asked; return when none is busy."""
    from core.present import text

    group = sweep.load_group(jobs.runs_root, group_id)
    with_rate = len(group.learning_rates) > 1
    announced: dict[str, str] = {}
    stopping = False
    while True:
        if stop.is_set() and not stopping:
            stopping = True
            sweep.stop_group(jobs, group_id)
        busy = False
        for index, member in enumerate(group.members, start=1):
            run_id = member.run_id
            if run_id is None:
                continue
            status = jobs.snapshot(run_id).status
            busy = busy or jobs.is_busy(run_id)
            label = sweep.member_label(member, with_rate)
            if status == "running" and announced.get(run_id) is None:
                announced[run_id] = "running"
                print(text.SWEEP_CLI_MEMBER.format(index=index, runs=len(group.members), label=label, run_id=run_id),
                      flush=True)
            elif status in FINISHED and not jobs.is_busy(run_id) and announced.get(run_id) != "done" \
                    and (announced.get(run_id) == "running" or status != "completed"):
                announced[run_id] = "done"
                print(text.SWEEP_CLI_MEMBER_DONE.format(index=index, runs=len(group.members), label=label,
                                                        status=status), flush=True)
        if not busy:
            return
        time.sleep(POLL_S)
