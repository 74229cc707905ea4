"""Training in a child process, supervised by the JobManager's worker thread.

Why: the dashboard's script threads (figures, serialisation, websockets) and a training thread in
the same process share one GIL. Each time a torch op hands the GIL back, the training thread must
win it again, and a busy page made a step wait behind it hundreds of times: with two Train tabs
the default run trained at 2% of its headless rate. In a process of its own the run competes for
CPU only, never for the GIL. H2O LLM Studio and AutoTrain train in a subprocess for this reason.

    parent (server)                              child (python -m core.service.child_process)
    train_in_child_process(cfg, folder, sink, …)  engine.train(cfg, folder, RelaySink, stop_event)
      stdin  ── "stop\\n" (or EOF) ──────────────▶  watcher thread sets stop_event
      relay  ◀── one JSON line per publication ──  RelaySink: writes the run folder, then relays
      sink.mirror(kind, payload)                    (metric, event, probe, progress, status, log)
      ◀── {"kind": "result" | "error" | "crash"} ── at the end

The child writes the run folder itself, exactly as the CLI does; the parent's sink only mirrors
what the child published, so every tab reads the same in-memory snapshot as before. The child
keeps the run's ownership lock (the parent's flock handle is inherited), so a server killed with
`kill -9` neither leaves the folder unowned nor a second trainer on it: the child sees its stdin
close, stops at the next step with a checkpoint, and only then lets go of the lock.

A standby child (`keep_standby_ready`) is started before the user presses Start: it imports torch,
transformers and the engine (~7 s on 2 CPUs) and then waits on a Unix socket. Start hands it the run
folder, with the run's log file and lock descriptors (SCM_RIGHTS), so the first loss point comes
that much sooner. A standby that is gone, or was started with another environment, is replaced by a
fresh child; one that is never used exits when the server does (its socket closes).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import devices, errors
from core.run.folder import RunFolder
from core.run.recovery import held_lock_fd
from core.run.sink import RunSink

PROJECT_ROOT = Path(__file__).resolve().parents[1]
POLL_S = 0.05             # how often the parent checks its stop event while the child is quiet
STOP_GRACE_S = 600.0      # after Stop, how long a child may take to save its checkpoint
KILL_GRACE_S = 10.0
READY = b"ready\n"        # a standby's word that its imports are done


# ---- the parent side ------------------------------------------------------------------------

def train_in_child_process(
    cfg: Any, folder: RunFolder, sink: RunSink, stop_event: threading.Event, *, resume: bool = False
) -> str:
    """Same contract as `engine.train`, with the training in a child Python process.

    `cfg` must be the config saved in the run folder (the child reads it from there). Returns the
    final status; raises the child's typed error (or a TrainingError for a crash) otherwise.
    """
    child, relay_read = _hand_to_standby(folder, resume) or _start_child(folder, resume)
    sink.log(f"Training in process {child.pid}.")
    try:
        outcome = _supervise(child, relay_read, sink, stop_event)
    finally:
        os.close(relay_read)
        _reap(child)
    return _result(outcome, child.returncode)


def _child_environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # A dashboard run shares the CPUs with the browser that watches it. libgomp's default spins ~3 ms
    # at a barrier, so each time the browser took a core the other training thread burned its own
    # waiting; sleeping at once (PASSIVE) helped a watched run but cost an unwatched one a futex wake-up
    # at every barrier. A short spin before sleeping served both on the 2-core EPYC: unwatched 0.95 of
    # the CLI's rate (PASSIVE alone 0.70), two Train tabs 0.79 (0.69) (bench_watching, 2026-12-07).
    # libgomp's GOMP_SPINCOUNT overrides the spin the policy implies. Explicit settings are kept.
    env.setdefault("OMP_WAIT_POLICY", devices.OPENMP_WAIT_POLICY)
    env.setdefault("GOMP_SPINCOUNT", devices.OPENMP_SPINS_BEFORE_SLEEP)
    return env


# Variables a training process reads, much of it while importing; libraries the server imports add
# others of their own (TORCHINDUCTOR_CACHE_DIR), which must not make a standby look stale.
TRAINING_ENVIRONMENT_PREFIXES = (
    "TUNEBOARD_", "HF_", "TRANSFORMERS_", "TOKENIZERS_", "PYTHON", "CUDA_", "PYTORCH_", "OMP_", "GOMP_", "MKL_", "KMP_",
    "ATEN_", "THP_", "ACCELERATE_", "WANDB_", "MLFLOW_", "LD_",
)


def _training_environment() -> dict[str, str]:
    return {k: v for k, v in _child_environment().items() if k.startswith(TRAINING_ENVIRONMENT_PREFIXES)}


def _spawn(arguments: list[str], inherited: list[int], stdout: Any) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "core.service.child_process", *arguments], stdin=subprocess.PIPE, stdout=stdout,
        stderr=subprocess.STDOUT, pass_fds=inherited, env=_child_environment(),
        start_new_session=True,  # Ctrl-C in the server's terminal reaches the server only
    )


def _start_child(folder: RunFolder, resume: bool) -> tuple[subprocess.Popen, int]:
    """A fresh child for this run: (process, read end of its relay)."""
    relay_read, relay_write = os.pipe()
    inherited = [relay_write]
    lock_fd = held_lock_fd(folder)
    if lock_fd is not None:
        inherited.append(lock_fd)
    arguments = [str(folder.path), "--relay-fd", str(relay_write)] + (["--resume"] if resume else [])
    try:
        with open(folder.log_path, "ab") as log:
            child = _spawn(arguments, inherited, log)
    except BaseException:
        os.close(relay_read)
        raise
    finally:
        os.close(relay_write)
    return child, relay_read


# ---- the standby child ----------------------------------------------------------------------

@dataclass
class _Standby:
    process: subprocess.Popen
    control: socket.socket  # our end; the child waits on the other for its run
    relay_read: int
    environment: dict[str, str]
    ready: bool = False  # it said so: imports done

    def discard(self) -> None:
        """End it: it holds no run yet, so nothing is lost (it may still be importing)."""
        self.control.close()
        os.close(self.relay_read)
        if self.process.poll() is None:
            self.process.terminate()
        _reap(self.process)


_STANDBY_LOCK = threading.Lock()
_standby: _Standby | None = None


def keep_standby_ready() -> None:
    """Start a training process ahead of the next run, unless one already waits (cheap to call often)."""
    global _standby
    with _STANDBY_LOCK:
        if _standby is not None and _standby.process.poll() is None:
            return
        if _standby is not None:
            _standby.discard()
            _standby = None
        relay_read, relay_write = os.pipe()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            process = _spawn(["--standby", "--control-fd", str(theirs.fileno()), "--relay-fd", str(relay_write)],
                             [relay_write, theirs.fileno()], subprocess.DEVNULL)
        except BaseException:
            ours.close()
            os.close(relay_read)
            raise
        finally:
            theirs.close()
            os.close(relay_write)
        _standby = _Standby(process, ours, relay_read, _training_environment())


def discard_standby() -> None:
    """End the waiting standby child, if any (server shutdown, tests)."""
    global _standby
    with _STANDBY_LOCK:
        standby, _standby = _standby, None
    if standby is not None:
        standby.discard()


def wait_for_standby(timeout_s: float) -> bool:
    """Whether a standby child has finished its imports, waiting up to timeout_s for it."""
    with _STANDBY_LOCK:
        standby = _standby
    if standby is None:
        return False
    if standby.ready:
        return True
    try:
        ready, _, _ = select.select([standby.control], [], [], timeout_s)
        standby.ready = bool(ready) and standby.control.recv(len(READY)) == READY
    except OSError:  # discarded or taken meanwhile
        return False
    return standby.ready


def standby_pid() -> int | None:
    """The waiting standby child's process id, if one is alive."""
    with _STANDBY_LOCK:
        alive = _standby is not None and _standby.process.poll() is None
        return _standby.process.pid if alive else None


def _hand_to_standby(folder: RunFolder, resume: bool) -> tuple[subprocess.Popen, int] | None:
    """Give the run to the waiting standby: (process, relay read end), or None to start a fresh child."""
    global _standby
    with _STANDBY_LOCK:
        standby, _standby = _standby, None
    if standby is None:
        return None
    if standby.process.poll() is not None or standby.environment != _training_environment():
        standby.discard()  # dead, or started before a setting it has already read changed
        return None
    lock_fd = held_lock_fd(folder)
    message = json.dumps({"folder": str(folder.path), "resume": resume})
    log_fd = os.open(folder.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        socket.send_fds(standby.control, [message.encode()], [log_fd] + ([lock_fd] if lock_fd is not None else []))
    except OSError:
        standby.discard()
        return None
    finally:
        os.close(log_fd)
    standby.control.close()
    return standby.process, standby.relay_read


def _supervise(child: subprocess.Popen, relay_read: int, sink: RunSink, stop_event: threading.Event) -> dict | None:
    """Mirror the child's publications until its relay closes; pass Stop on. Returns its outcome."""
    buffer = b""
    outcome: dict | None = None
    stop_sent = False
    while True:
        if stop_event.is_set() and not stop_sent:
            stop_sent = True
            _tell(child, b"stop\n")
        ready, _, _ = select.select([relay_read], [], [], POLL_S)
        if not ready:
            continue
        chunk = os.read(relay_read, 1 << 16)
        if not chunk:  # the child closed its end: it exited (or is exiting)
            return outcome
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue  # a line torn by a dying child
            kind = message.pop("kind", None)
            if kind in ("result", "error", "crash"):
                outcome = {"kind": kind, **message}
            elif kind:
                sink.mirror(kind, message)


def _tell(child: subprocess.Popen, message: bytes) -> None:
    try:
        child.stdin.write(message)
        child.stdin.flush()
    except (BrokenPipeError, OSError, ValueError):
        pass  # it already exited


def _reap(child: subprocess.Popen) -> None:
    """Wait for the child; a child that outlives its relay is asked to stop, then killed."""
    for action, wait_s in ((None, STOP_GRACE_S), (child.terminate, KILL_GRACE_S), (child.kill, KILL_GRACE_S)):
        if action is not None:
            action()
        try:
            child.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    if child.stdin is not None:
        try:
            child.stdin.close()
        except OSError:
            pass


def _result(outcome: dict | None, returncode: int | None) -> str:
    """The child's status, or its failure raised here as the error type it had there."""
    if outcome is None:
        if returncode is not None and returncode < 0:
            name = signal.Signals(-returncode).name
            raise errors.TrainingError(
                f"The training process was killed ({name}); if the machine ran out of memory, lower "
                "training.batch_size or model.max_length. Resume the run from its last checkpoint, or "
                "start it again from its config. Details are in run.log."
            )
        raise errors.TrainingError(
            f"The training process ended (exit code {returncode}) without reporting a result. "
            "Details are in run.log; resume the run or start it again from its config."
        )
    if outcome["kind"] == "result":
        return str(outcome["status"])
    if outcome["kind"] == "error":
        error_type = getattr(errors, str(outcome.get("type")), None)
        if not (isinstance(error_type, type) and issubclass(error_type, errors.TuneboardError)):
            error_type = errors.TuneboardError
        raise error_type(str(outcome["message"]), field=outcome.get("field"))
    raise errors.TrainingError(str(outcome["message"]))


# ---- the child side -------------------------------------------------------------------------

class RelaySink(RunSink):
    """A RunSink that also sends each publication to the parent, one JSON line each."""

    def __init__(self, folder: RunFolder, relay: Any):
        super().__init__(folder, load_existing=False)
        self._relay_stream = relay
        self._relay_lock = threading.Lock()

    def _relay(self, kind: str, payload: dict[str, Any]) -> None:
        send(self._relay_stream, self._relay_lock, {"kind": kind, **payload})


def send(stream: Any, lock: threading.Lock, message: dict[str, Any]) -> None:
    """One line to the parent; a parent that is gone must not break the training (files are the record)."""
    line = json.dumps(message, default=str, allow_nan=False) + "\n"
    with lock:
        try:
            stream.write(line)
            stream.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass


def _watch_parent(stop_event: threading.Event) -> None:
    """Stop on the parent's word, or when stdin closes (the server went away)."""
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    stop_event.set()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child: train one run folder, report how it ended."""
    parser = argparse.ArgumentParser(prog="python -m core.service.child_process")
    parser.add_argument("folder", nargs="?", help="The run folder (a standby gets it from --control-fd).")
    parser.add_argument("--relay-fd", type=int, required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--standby", action="store_true", help="Import the engine, then wait for a run.")
    parser.add_argument("--control-fd", type=int, help="The standby's socket to the parent.")
    args = parser.parse_args(argv)
    if args.standby:
        assignment = _await_run(socket.socket(fileno=args.control_fd))
        if assignment is None:
            return 0  # discarded, or the server went away before a run came
        args.folder, args.resume = assignment
    elif not args.folder:
        parser.error("a run folder is required")

    relay = os.fdopen(args.relay_fd, "w", buffering=1, encoding="utf-8")
    relay_lock = threading.Lock()
    stop_event = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop_event.set())
    threading.Thread(target=_watch_parent, args=(stop_event,), name="tuneboard-parent", daemon=True).start()

    folder = RunFolder(Path(args.folder))
    sink = RelaySink(folder, relay)
    try:
        sink.set_status(training_pid=os.getpid())  # the parent never writes status.json while we run
        from core.training import (
            engine,  # after the watcher: importing torch takes seconds, Stop must not wait
        )

        status = engine.train(folder.config(), folder, sink, stop_event, resume=args.resume)
    except errors.TuneboardError as err:
        send(relay, relay_lock, {"kind": "error", "type": type(err).__name__, "message": str(err), "field": err.field})
        return 2
    except BaseException as err:  # the process boundary: the parent turns this into a failed run
        from core.errors import describe_failure

        _log_safely(folder, "".join(traceback.format_exception(err)).rstrip())
        send(relay, relay_lock, {"kind": "crash", "message": describe_failure(err)})
        return 1
    send(relay, relay_lock, {"kind": "result", "status": status})
    return 0


def _await_run(control: socket.socket) -> tuple[str, bool] | None:
    """A standby's wait: import the engine, then block until the parent hands over a run.

    Returns (run folder, resume), with stdout and stderr now writing to the run's log and the
    run's lock held through the descriptor that came with it; None when the parent closed the socket.
    """
    from core.training import engine  # noqa: F401  the import this process exists to have done early

    try:
        control.sendall(READY)
    except OSError:
        pass  # a run handed over while we imported: the parent has closed its end, the run waits below
    try:
        message, descriptors, _flags, _address = socket.recv_fds(control, 1 << 16, 2)
    except OSError:
        return None
    finally:
        control.close()
    if not message:
        for descriptor in descriptors:
            os.close(descriptor)
        return None
    assignment = json.loads(message)
    log_fd = descriptors[0]
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    # descriptors[1], when sent, is the run's lock: it stays open, unused, for as long as we live.
    return str(assignment["folder"]), bool(assignment["resume"])


def _log_safely(folder: RunFolder, message: str) -> None:
    """To run.log only (not relayed): a traceback belongs in the file, never on a page."""
    try:
        folder.log(message)
    except OSError:
        pass  # a full disk: the parent still gets the message


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from core.devices import tune_training_process

    tune_training_process()  # before anything imports torch
    sys.exit(main())
