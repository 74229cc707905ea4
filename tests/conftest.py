"""Shared fixtures: every test runs offline, in its own runs folder, on tiny models.

Fixtures live here and nowhere else, so no test imports one by hand; plain helpers (the fake
trainer, run folders written without training, AppTest page helpers) are in tests/support.py.
"""

from __future__ import annotations

import os
import sys

# Set before transformers / datasets / huggingface_hub are imported anywhere: they read these once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Pages keep a standby training process (core.service.child_process); tests that want one switch it on.
os.environ.setdefault("TUNEBOARD_STANDBY", "0")
# After a page is drawn, ui.state.warm_up imports torch and transformers on a background thread. In
# the test process that thread outlived the page test that started it and raced the next tests' own
# `from transformers import ...` (transformers' lazy module fails such an import with "cannot import
# name" while another thread is importing it). Tests that check the warm-up switch it on in a fresh
# interpreter (test_import_hygiene).
os.environ.setdefault("TUNEBOARD_WARM_UP", "0")

from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

import pytest  # noqa: E402

if TYPE_CHECKING:  # imported where used, so a test that needs no page pays for no streamlit import
    from tests.support import FakeTrainer


@pytest.fixture(autouse=True)
def isolated_runs(tmp_path, monkeypatch):
    """Each test gets its own runs, datasets and uploads folders."""
    monkeypatch.setenv("TUNEBOARD_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("TUNEBOARD_DATA", str(tmp_path / "datasets"))
    monkeypatch.setenv("TUNEBOARD_UPLOADS", str(tmp_path / "uploads"))
    return tmp_path / "runs"


def _clear_streamlit_caches() -> None:
    streamlit = sys.modules.get("streamlit")  # no test imported it: there is nothing to clear
    if streamlit is not None:
        streamlit.cache_data.clear()
        streamlit.cache_resource.clear()


@pytest.fixture(autouse=True)
def clear_streamlit_caches(monkeypatch):
    """Streamlit's caches are process-wide: clear them so no test sees another's state.

    An AppTest script run also installs the page as sys.modules["__main__"] and leaves it there
    (streamlit's ScriptRunner); the real one is put back after the test.
    """
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    _clear_streamlit_caches()
    yield
    _clear_streamlit_caches()


@pytest.fixture
def runs_root(isolated_runs) -> Path:
    """The runs folder of this test (isolated_runs points $TUNEBOARD_RUNS at it), created."""
    isolated_runs.mkdir(parents=True, exist_ok=True)
    return isolated_runs


@pytest.fixture
def trainer() -> FakeTrainer:
    """The fake engine.train the `jobs` manager runs; tests turn its knobs (hold, gate, raise_at)."""
    from tests.support import FakeTrainer

    return FakeTrainer()


@pytest.fixture
def jobs(runs_root, trainer, monkeypatch):
    """A real JobManager on the test's runs folder with the fake trainer, injected into the app."""
    import ui.state
    from core.service.jobs import JobManager

    manager = JobManager(runs_root, train_fn=trainer, preflight_fn=lambda cfg: None)
    monkeypatch.setattr(ui.state, "get_jobs", lambda: manager)
    yield manager
    manager.shutdown(timeout=10)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A tiny BERT (MLM / classification) with a locally trained WordPiece tokenizer."""
    from tests.tiny_models import tiny_bert_dir

    return str(tiny_bert_dir(tmp_path_factory.mktemp("tiny-bert")))


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory):
    """A tiny GPT-2 (causal / classification) with a locally trained byte-level BPE tokenizer."""
    from tests.tiny_models import tiny_gpt2_dir

    return str(tiny_gpt2_dir(tmp_path_factory.mktemp("tiny-gpt2")))
