"""Shared fixtures: every test runs offline, in its own runs folder, on tiny models."""

from __future__ import annotations

import os

# Set before transformers / datasets / huggingface_hub are imported anywhere: they read these once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Pages keep a standby training process (core.service.child_process); tests that want one switch it on.
os.environ.setdefault("TUNEBOARD_STANDBY", "0")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_runs(tmp_path, monkeypatch):
    """Each test gets its own runs, datasets and uploads folders."""
    monkeypatch.setenv("TUNEBOARD_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("TUNEBOARD_DATA", str(tmp_path / "datasets"))
    monkeypatch.setenv("TUNEBOARD_UPLOADS", str(tmp_path / "uploads"))
    return tmp_path / "runs"


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
