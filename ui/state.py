"""App-wide state: the shared JobManager, the selected run (in the URL) and the per-tab RunConfig.

- `get_jobs()` is one JobManager per server process, shared by every tab (st.cache_resource).
  Keep it tiny and stable: editing its source creates a new cache entry and orphans the threads
  of the old manager.
- The selected run id lives in `st.query_params["run"]` so a reloaded tab reattaches; a copy in
  session_state survives page switches (navigation clears query params).
- The unsaved RunConfig of a tab lives in session_state; widgets are keyed by a "form generation"
  so loading a config (YAML, a past run) rebuilds every widget from the new values.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from core.config import RunConfig
from core.errors import RunError
from core.run.folder import default_runs_root, validate_run_id

CONFIG_KEY = "tb_config"
FORM_GEN_KEY = "tb_form_gen"
RUN_KEY = "tb_run"
WATCH_KEY = "tb_watch"
WATCH_HISTORY_KEY = "tb_watch_history"


@st.cache_resource(show_spinner=False)
def get_jobs():
    """The process-wide JobManager (runs root: $TUNEBOARD_RUNS or ./runs)."""
    from core.service.jobs import JobManager

    return JobManager(runs_root(), preflight_fn=preflight_after_warm_up)


def runs_root() -> Path:
    """Folder holding the run folders."""
    return default_runs_root()


def uploads_root() -> Path:
    """Where uploaded data files are stored: $TUNEBOARD_UPLOADS or next to the runs folder."""
    configured = os.environ.get("TUNEBOARD_UPLOADS")
    return Path(configured).resolve() if configured else runs_root().parent / "uploads"


def run_path(run_id: str) -> Path:
    """The folder of one run."""
    return runs_root() / validate_run_id(run_id)


@st.cache_data(show_spinner=False)
def device_label() -> str:
    """The device runs use, e.g. 'CPU: 2 cores, AVX2, fp32' (read from the hardware, without torch)."""
    from core.devices import describe_device

    return describe_device()


# ---- warming up the ML libraries -----------------------------------------------------------

# What Start (engine.preflight), a LoRA parameter count or a generation import: ~6 s on 2 cores.
WARM_UP_MODULES = ("core.training.engine", "peft")
WARM_UP_THREAD = "tuneboard-warm-up"
_warm_up_lock = threading.Lock()
_warm_up: list[threading.Thread] = []


def warm_up() -> threading.Thread | None:
    """After a page is drawn: import torch and transformers once per server on a background thread,
    then keep a training process waiting with them and the engine imported (core.service.child_process).

    Pages never import them on the script thread for their first draw; this makes the first Start
    (or a strategy other than full on Setup) as fast as later ones. The two imports run one after
    the other: together they took 2 CPUs from the browser still drawing the first page (its
    parameter count showed 5.1 s after `goto` instead of 3.2 s, bench/bench_first_page.py).
    TUNEBOARD_WARM_UP=0 turns both off, TUNEBOARD_STANDBY=0 the waiting training process alone.
    """
    if os.environ.get("TUNEBOARD_WARM_UP", "1") == "0":
        return None
    jobs = get_jobs() if training_process_waits() else None
    with _warm_up_lock:
        if not _warm_up:
            thread = threading.Thread(target=_import_ml_libraries, args=(jobs,), name=WARM_UP_THREAD, daemon=True)
            thread.start()
            _warm_up.append(thread)
            return thread
        thread = _warm_up[0]
    if jobs is not None and not thread.is_alive():
        jobs.keep_training_process_ready()  # cheap while one waits; a new one if it went
    return thread


def training_process_waits() -> bool:
    """Whether the dashboard keeps a training process waiting, so that a Start skips a cold process start."""
    return os.environ.get("TUNEBOARD_WARM_UP", "1") != "0" and os.environ.get("TUNEBOARD_STANDBY", "1") != "0"


def wait_for_warm_up(timeout: float | None = 120.0) -> None:
    """Before the script thread imports torch or transformers itself: let the warm-up's imports finish.

    Two threads importing transformers at once can hand one of them a half-initialised module
    (Python breaks the import-lock deadlock that way): `cannot import name 'BertConfig' from
    'transformers'`. Waiting costs nothing once the warm-up is done, and at most its remaining
    seconds before.
    """
    with _warm_up_lock:
        thread = _warm_up[0] if _warm_up else None
    if thread is not None and thread is not threading.current_thread():
        thread.join(timeout)


# ---- a page's models, loaded while its user reads and types ----------------------------------

_ahead_lock = threading.Lock()
_loaded_ahead: dict[str, threading.Thread] = {}


def load_ahead(key: str, load: Callable[[], object]) -> threading.Thread | None:
    """Call `load` once per server for `key`, on a background thread after the warm-up's imports.

    For models a page is about to need (the Chat page's two): they load while the user writes the
    first message, which then gets its answer at once instead of after the loading (bench_chat).
    Call it when the page is drawn. A failure is left to the page's own call, which raises it again
    (the model caches keep no failures) and shows it. Off with TUNEBOARD_WARM_UP=0, like the warm-up.
    """
    warming = warm_up()
    if warming is None:
        return None
    with _ahead_lock:
        if key in _loaded_ahead:
            return _loaded_ahead[key]
        thread = threading.Thread(target=_load_after_warm_up, args=(warming, load), name=f"tuneboard-load-ahead:{key}",
                                  daemon=True)
        _loaded_ahead[key] = thread
    thread.start()
    return thread


def _load_after_warm_up(warming: threading.Thread, load: Callable[[], object]) -> None:
    warming.join()  # two threads importing transformers at once break each other's imports
    try:
        load()
    except Exception:  # noqa: BLE001  the thread's boundary: the page's own call raises it again and shows it
        return


def preflight_after_warm_up(cfg: RunConfig) -> None:
    """The engine's checks before a run is queued, once the warm-up has imported what they import."""
    wait_for_warm_up()
    from core.training import engine

    engine.preflight(cfg)


def _import_ml_libraries(jobs=None) -> None:
    import importlib
    import logging

    for module in WARM_UP_MODULES:
        try:
            importlib.import_module(module)
        except Exception as err:  # a broken install shows where it is used, with its own message
            logging.getLogger(__name__).warning("Warm-up could not import %s: %s", module, err)
    if jobs is not None:
        jobs.keep_training_process_ready()


# ---- the selected run ----------------------------------------------------------------------

def selected_run_id() -> str | None:
    """The run this tab looks at: from the URL, else from this tab's session."""
    from_url = st.query_params.get("run")
    for candidate in (from_url, st.session_state.get(RUN_KEY)):
        if candidate:
            try:
                run_id = validate_run_id(str(candidate))
            except RunError:
                continue
            if from_url != run_id:
                st.query_params["run"] = run_id  # put it back in the address after a page switch
            st.session_state[RUN_KEY] = run_id
            return run_id
    return None


def select_run(run_id: str | None) -> None:
    """Remember the run in the URL and in the session."""
    if run_id:
        st.session_state[RUN_KEY] = run_id
        st.query_params["run"] = run_id
    else:
        st.session_state.pop(RUN_KEY, None)
        st.query_params.pop("run", None)


# ---- following a run's state in every tab --------------------------------------------------

def run_fingerprint(jobs, snap, *, probes: bool = False) -> tuple:
    """What a page drew of a run that only a full rerun redraws: its status, whether the manager
    still holds it (Resume waits for that), and its probe count where the page shows probes."""
    return (snap.run_id, snap.status, jobs.is_busy(snap.run_id), len(snap.probes) if probes else None)


def watch(jobs, snap, *, probes: bool = False) -> None:
    """Remember what this page drew; the sidebar's fragment reruns the page when it changes.

    Stop, Resume, a failure or the end of a run in one tab must show in every other tab within
    about two seconds, without a reload, and without re-sending every chart every second.
    """
    st.session_state[WATCH_KEY] = (run_fingerprint(jobs, snap, probes=probes), probes)


def history_fingerprint(runs) -> tuple:
    """What a page listing every run drew: each run's id, status and whether it can resume."""
    return tuple((r.run_id, r.status, r.resumable) for r in runs)


def watch_history(runs) -> None:
    """Like `watch`, for a page that lists every run (Runs): a run queued, started, ended or
    handed back anywhere reruns it. `runs` is the jobs.list_runs() the page drew."""
    st.session_state[WATCH_HISTORY_KEY] = history_fingerprint(runs)


def forget_watch() -> None:
    """Drop what the last page drew, at the start of a full run, before the sidebar's fragment."""
    st.session_state.pop(WATCH_KEY, None)
    st.session_state.pop(WATCH_HISTORY_KEY, None)


def watched_run_changed(jobs) -> bool:
    """Whether what this page drew has moved on: its run (status, or probes where the page shows
    them), or the run history on a page that lists it."""
    history = st.session_state.get(WATCH_HISTORY_KEY)
    if history is not None and history_fingerprint(jobs.list_runs()) != history:
        return True
    watched = st.session_state.get(WATCH_KEY)
    if not watched:
        return False
    drawn, probes = watched
    try:
        snap = jobs.snapshot(drawn[0])
    except RunError:
        return True  # deleted meanwhile: the page says so after a rerun
    return run_fingerprint(jobs, snap, probes=probes) != drawn


# ---- the per-tab config --------------------------------------------------------------------

def get_config() -> RunConfig:
    """A copy of this tab's unsaved RunConfig (the defaults run the seed demo)."""
    if CONFIG_KEY not in st.session_state:
        st.session_state[CONFIG_KEY] = RunConfig()
    return copy.deepcopy(st.session_state[CONFIG_KEY])


def set_config(cfg: RunConfig) -> None:
    """Store the tab's RunConfig (widgets keep their own values)."""
    st.session_state[CONFIG_KEY] = copy.deepcopy(cfg)


def load_config(cfg: RunConfig) -> None:
    """Replace the tab's config and rebuild every Setup widget from it."""
    set_config(cfg)
    st.session_state[FORM_GEN_KEY] = form_generation() + 1


def form_generation() -> int:
    """Suffix of widget keys; bumped when a whole config is loaded."""
    return int(st.session_state.get(FORM_GEN_KEY, 0))


@st.cache_data(show_spinner=False, ttl=30)
def curated_datasets() -> list[dict]:
    """Saved curated datasets (name, rows, ...), newest first; cleared when the Data page saves one."""
    from core.data.curation import list_curated

    return list_curated()
