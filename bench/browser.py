"""The app as a user runs it (README's command) and Debian's Chromium, for benchmarks and tests.

`start_app` launches `make run` on a free port in its own process group and waits for the health
endpoint; `stop_app` ends the whole group. `chromium` opens Playwright's Chromium from
/usr/bin/chromium (a browser is never downloaded) with the flags this workplace requires.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1400, "height": 900}
APP_START_TIMEOUT_S = 180


class AppError(RuntimeError):
    """The app did not start (the message holds the end of its log)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def app_env(state_dir: Path) -> dict[str, str]:
    """Environment of an app whose runs, datasets and uploads live under state_dir."""
    return {
        **os.environ,
        "TUNEBOARD_RUNS": str(state_dir / "runs"),
        "TUNEBOARD_DATA": str(state_dir / "datasets"),
        "TUNEBOARD_UPLOADS": str(state_dir / "uploads"),
        "PYTHONUNBUFFERED": "1",
    }


def start_app(state_dir: Path, log_path: Path, extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """`make run` on a free port; returns (process, base url) once the app answers."""
    if shutil.which("make") is None:
        raise AppError("`make` is not installed; the app is started with `make run`")
    port = free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            ["make", "run", f"STREAMLIT_ARGS=--server.port {port} --server.headless true"],
            cwd=REPO, env={**app_env(state_dir), **(extra_env or {})}, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + APP_START_TIMEOUT_S
    while not healthy(url):
        if proc.poll() is not None:
            raise AppError(f"`make run` exited with {proc.returncode}:\n{log_tail(log_path)}")
        if time.monotonic() > deadline:
            stop_app(proc)
            raise AppError(f"the app did not answer within {APP_START_TIMEOUT_S}s:\n{log_tail(log_path)}")
        time.sleep(0.5)
    return proc, url


def stop_app(proc: subprocess.Popen) -> None:
    """SIGTERM the app's process group (make, streamlit, a training child), then SIGKILL what is left."""
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            time.sleep(0.5)  # let streamlit (a child of make) go too
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def chromium() -> Iterator[object]:
    """A Playwright Browser on Debian's Chromium; raises FileNotFoundError when it is missing."""
    if not CHROMIUM.exists():
        raise FileNotFoundError(f"{CHROMIUM} is missing: run `make browser-deps` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


IDLE_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app && app.dataset.testScriptState === 'notRunning'
        && !document.querySelector('[data-testid="stSkeleton"]');
}"""


def wait_idle(page, timeout_ms: int = 60_000) -> None:
    """Wait until Streamlit finished the script run and drew every element (no loading skeletons)."""
    for _ in range(2):  # twice, so a rerun that starts just after an action is waited for too
        page.wait_for_timeout(300)
        page.wait_for_function(IDLE_JS, timeout=timeout_ms)
