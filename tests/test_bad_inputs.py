"""The bad-input catalogue: every case is either refused or repaired, and tested as exactly that.

Refused means: the CLI (`python -m core train`, run in-process) exits 2 with exactly one line that
starts with "error:" and no traceback, the core function the UI calls raises a TuneboardError with
the same actionable message, and a run folder created before the problem surfaced ends `failed`
with that message (never half-written, never `running`). Repaired means: the input is read
correctly, the repair is recorded (read report, data report or load report), and training
completes. RELIABILITY.md lists every case with the test that proves it.
"""

from __future__ import annotations

import errno
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from core.__main__ import EXIT_USER_ERROR, main
from core.config import RunConfig
from core.errors import ConfigError, DataError, ModelError, RunError, TuneboardError
from core.run.folder import RunFolder, now_iso
from tests.support import app, texts

# ---- data and helpers -------------------------------------------------------------------------

_BRANDS = ("Nike", "Adidas", "Puma", "Reebok")
_PRODUCTS = ("shoes", "hoodies", "socks", "jackets", "tshirts")
_GOOD = ("comfortable", "stylish", "durable")
_BAD = ("flimsy", "ugly", "heavy")


def reviews(n: int = 48) -> list[tuple[str, str]]:
    """n distinct (text, label) rows, labels "1" (positive) and "0" (negative) alternating."""
    good = (f"{b} {p} are very {a}" for b, p, a in itertools.product(_BRANDS, _PRODUCTS, _GOOD))
    bad = (f"{b} {p} are very {a}" for b, p, a in itertools.product(_BRANDS, _PRODUCTS, _BAD))
    rows = []
    for (g, b) in zip(good, bad, strict=False):
        rows += [(g, "1"), (b, "0")]
    return rows[:n]


def csv_text(rows, header: str | None = "text,label", sep: str = ",") -> str:
    lines = [header] if header else []
    lines += [f"{t}{sep}{lab}" for t, lab in rows]
    return "\n".join(lines) + "\n"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["train", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    """The single 'error:' line of a refused command (asserts there is exactly one, no traceback)."""
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    return lines[0]


def run_folders(root: Path) -> list[RunFolder]:
    return [RunFolder(p) for p in root.iterdir() if (p / "config.yaml").exists()] if root.exists() else []


@dataclass
class Ctx:
    """What a case needs: a scratch folder and the tiny models (built lazily, once per session)."""

    tmp: Path
    request: pytest.FixtureRequest

    @property
    def bert(self) -> str:
        return self.request.getfixturevalue("tiny_bert")

    @property
    def gpt2(self) -> str:
        return self.request.getfixturevalue("tiny_gpt2")

    def file(self, name: str, content: bytes | str) -> str:
        path = self.tmp / name
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return str(path)

    def config(self, data: object, name: str = "run.yaml") -> str:
        text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
        return self.file(name, text)

    def train(self, task: str, dataset: str, *extra: str) -> list[str]:
        """CLI flags for a tiny, quick run on a data file."""
        return ["--task", task, "--model", self.bert, "--dataset", dataset, "--max-steps", "2",
                "--batch-size", "4", *extra]


@pytest.fixture
def ctx(tmp_path, request) -> Ctx:
    return Ctx(tmp_path, request)


# ---- the refused catalogue ------------------------------------------------------------------------

@dataclass(frozen=True)
class Refused:
    """A bad input the CLI refuses; `core` (optional) is the core call the UI makes, with its error type."""

    argv: Callable[[Ctx], list[str]]
    needles: tuple[str, ...]
    core: Callable[[Ctx], object] | None = None
    error: type[TuneboardError] = TuneboardError


def _read_path(path: Path | str):
    from core.data.tables import read_table

    return read_table(path)


def _read(ctx: Ctx, name: str, content: bytes | str):
    return _read_path(ctx.file(name, content))


def _prepare(ctx: Ctx, task: str, name: str, content: bytes | str, **data):
    from core.data.prepare import prepare_data

    cfg = RunConfig(task=task)
    cfg.data.source, cfg.data.path = "file", ctx.file(name, content)
    for key, value in data.items():
        setattr(cfg.data, key, value)
    return prepare_data(cfg)


def _check_data(ctx: Ctx, task: str, name: str, content: bytes | str):
    """What the CLI and Start check before a run folder exists (core.data.preflight.check_data)."""
    from core.data.preflight import check_data

    cfg = RunConfig(task=task)
    cfg.data.source, cfg.data.path = "file", ctx.file(name, content)
    return check_data(cfg)


def _load(ctx: Ctx, source: str, task: str):
    from core.config import ModelConfig
    from core.models import load_for_task

    return load_for_task(ModelConfig(source=source), task)


def _no_config_folder(ctx: Ctx) -> str:
    folder = ctx.tmp / "just-weights"
    folder.mkdir(exist_ok=True)
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    return str(folder)


def _no_mask_bert(ctx: Ctx) -> str:
    from tests.tiny_models import tiny_bert_dir

    return str(tiny_bert_dir(ctx.tmp, mask_token=False))


def _resolve(source: str):
    from core.models import resolve_model

    return resolve_model(source)


_ALL_NULL = "text,label\n" + "".join(f"{t},{lab}\n" for t, lab in [("", "1"), ("nan", "0"), ("  ", "1"), ("NULL", "0")] * 6)
_ONE_CLASS = csv_text([(t, "1") for t, _ in reviews(24)])
_GARBAGE_MID = "\n".join(json.dumps({"text": t, "label": int(lab)}) for t, lab in reviews(10))
_GARBAGE_MID = _GARBAGE_MID.replace('"label": 0}\n', '"label": 0\n', 1)  # line 2 loses its brace
_HEADER_ONLY = "text,label\n"
_BROKEN_QUOTES = 'text,label\n"Nike shoes are very comfortable,1\nAdidas socks are very ugly,0\n'
_RAGGED_LATER = "text,label\nNike shoes are very comfortable,1\nAdidas socks, sadly, are ugly,0\n"
_RAGGED_FIRST = "text,label\nAdidas socks, sadly, are ugly,0\nNike shoes are very comfortable,1\n"

REFUSED: dict[str, Refused] = {
    # ---- files ----
    "file-empty": Refused(
        lambda c: c.train("mlm", c.file("empty.csv", b"")), ("empty.csv is empty",),
        lambda c: _read(c, "empty.csv", b""), DataError),
    "file-header-only": Refused(
        lambda c: c.train("mlm", c.file("header.csv", _HEADER_ONLY)), ("header.csv has a header", "no data rows"),
        lambda c: _read(c, "header.csv", _HEADER_ONLY), DataError),
    "file-binary-disguised": Refused(
        lambda c: c.train("mlm", c.file("photo.csv", b"\x89PNG\r\n\x1a\n\x00\x00IHDR")), ("not a text table", "PNG"),
        lambda c: _read(c, "photo.csv", b"\x89PNG\r\n\x1a\n\x00\x00IHDR"), DataError),
    "file-binary-garbage": Refused(
        lambda c: c.train("mlm", c.file("dump.csv", bytes(range(256)) * 8)), ("binary file",),
        lambda c: _read(c, "dump.csv", bytes(range(256)) * 8), DataError),
    "file-excel-extension": Refused(
        lambda c: c.train("mlm", c.file("reviews.xlsx", b"PK\x03\x04rest")), ("'.xlsx'", ".csv"),
        lambda c: _read(c, "reviews.xlsx", b"PK\x03\x04rest"), DataError),
    "file-broken-quoting": Refused(
        lambda c: c.train("mlm", c.file("quotes.csv", _BROKEN_QUOTES)), ("never closed", "line 2"),
        lambda c: _read(c, "quotes.csv", _BROKEN_QUOTES), DataError),
    "file-ragged-row": Refused(
        lambda c: c.train("mlm", c.file("ragged.csv", _RAGGED_LATER)), ("line 3 has 4 fields", "double quotes"),
        lambda c: _read(c, "ragged.csv", _RAGGED_LATER), DataError),
    "file-ragged-first-row": Refused(
        lambda c: c.train("mlm", c.file("ragged1.csv", _RAGGED_FIRST)), ("first data row has more fields",),
        lambda c: _read(c, "ragged1.csv", _RAGGED_FIRST), DataError),
    "file-jsonl-garbage-line": Refused(
        lambda c: c.train("mlm", c.file("torn.jsonl", _GARBAGE_MID)), ("line 2 is not valid JSON",),
        lambda c: _read(c, "torn.jsonl", _GARBAGE_MID), DataError),
    "file-missing": Refused(
        lambda c: c.train("mlm", str(c.tmp / "nowhere.csv")), ("does not exist",),
        lambda c: _read_path(c.tmp / "nowhere.csv"), DataError),
    "file-missing-columns": Refused(
        lambda c: c.train("classification", c.file("cols.csv", csv_text(reviews(), header="review,stars"))),
        ("no text column 'text'", "review, stars", "data.text_column"),
        lambda c: _prepare(c, "classification", "cols.csv", csv_text(reviews(), header="review,stars")), DataError),
    "file-all-null-text": Refused(
        lambda c: c.train("classification", c.file("nulls.csv", _ALL_NULL)), ("has no text in any of its", "choose the column"),
        lambda c: _check_data(c, "classification", "nulls.csv", _ALL_NULL), DataError),
    "file-one-label-class": Refused(
        lambda c: c.train("classification", c.file("one.csv", _ONE_CLASS)), ("a single class", "'1'"),
        lambda c: _check_data(c, "classification", "one.csv", _ONE_CLASS), DataError),
    # ---- models ----
    "model-unknown-hub-id-offline": Refused(
        lambda c: ["--model", "someone/surely-not-a-model-xyz"], ("not in the local Hugging Face cache", "bundled"),
        lambda c: _resolve("someone/surely-not-a-model-xyz"), ModelError),
    "model-folder-without-config": Refused(
        lambda c: ["--model", _no_config_folder(c)], ("no config.json",),
        lambda c: _resolve(_no_config_folder(c)), ModelError),
    "model-file-not-folder": Refused(
        lambda c: ["--model", c.file("model.safetensors", b"\0" * 16)], ("is a file", "folder"),
        lambda c: _resolve(c.file("model.safetensors", b"\0" * 16)), ModelError),
    "model-gpt2-for-mlm": Refused(
        lambda c: ["--task", "mlm", "--model", c.gpt2, "--rows", "60", "--max-steps", "1"],
        ("gpt2 model cannot be loaded for masked-LM", "causal LM"),
        lambda c: _load(c, c.gpt2, "mlm"), ModelError),
    "model-tokenizer-without-mask": Refused(
        lambda c: ["--task", "mlm", "--model", _no_mask_bert(c), "--rows", "60", "--max-steps", "1"],
        ("no mask token", "causal"),
        lambda c: _load(c, _no_mask_bert(c), "mlm"), ModelError),
    # ---- configs ----
    "config-zero-batch": Refused(lambda c: ["--batch-size", "0"], ("training.batch_size", "positive")),
    "config-negative-learning-rate": Refused(lambda c: ["--learning-rate", "-0.001"], ("training.learning_rate",)),
    "config-zero-epochs": Refused(lambda c: ["--epochs", "0"], ("training.epochs",)),
    "config-negative-max-length": Refused(
        lambda c: ["--config", c.config({"model": {"max_length": -5}})], ("model.max_length", "positive"),
        lambda c: RunConfig.from_dict({"model": {"max_length": -5}}).validate(), ConfigError),
    "config-nan-number": Refused(
        lambda c: ["--config", c.config("training:\n  learning_rate: .nan\n")], ("training.learning_rate",),
        lambda c: RunConfig.from_yaml("training:\n  learning_rate: .nan\n").validate(), ConfigError),
    "config-unknown-strategy": Refused(
        lambda c: ["--strategy", "magic"], ("strategy.name", "lora"),
        lambda c: RunConfig.from_dict({"strategy": {"name": "magic"}}).validate(), ConfigError),
    "config-unknown-task": Refused(
        lambda c: ["--config", c.config({"task": "translation"})], ("task is 'translation'", "mlm, classification, causal"),
        lambda c: RunConfig.from_dict({"task": "translation"}).validate(), ConfigError),
    "config-not-yaml": Refused(
        lambda c: ["--config", c.config("task: [mlm\n  model: : :\n")], ("not valid YAML", "line"),
        lambda c: RunConfig.from_yaml("task: [mlm\n  model: : :\n"), ConfigError),
    "config-not-a-mapping": Refused(
        lambda c: ["--config", c.config("- mlm\n- bundled\n")], ("mapping of settings",),
        lambda c: RunConfig.from_yaml("- mlm\n- bundled\n"), ConfigError),
    "config-newer-version-unknown-keys": Refused(
        lambda c: ["--config", c.config({"version": 7, "task": "mlm", "training": {"galaxy_brain": True}})],
        ("newer Tuneboard", "format 7", "training.galaxy_brain", "Upgrade"),
        lambda c: RunConfig.from_dict({"version": 7, "training": {"galaxy_brain": True}}), ConfigError),
    "config-misspelled-key": Refused(
        lambda c: ["--config", c.config({"training": {"batchsize": 4}})], ("training.batchsize", "spelling"),
        lambda c: RunConfig.from_dict({"training": {"batchsize": 4}}), ConfigError),
    "config-wrong-type": Refused(
        lambda c: ["--config", c.config({"training": {"batch_size": "lots"}})], ("training.batch_size", "whole number"),
        lambda c: RunConfig.from_dict({"training": {"batch_size": "lots"}}), ConfigError),
    "config-file-missing": Refused(
        lambda c: ["--config", str(c.tmp / "nope.yaml")], ("does not exist",),
        lambda c: RunConfig.load(c.tmp / "nope.yaml"), ConfigError),
    # ---- runs ----
    "run-resume-missing": Refused(lambda c: ["--resume", str(c.tmp / "runs" / "ghost-run")], ("no run ghost-run",)),
}


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_refused(case, ctx, capsys, isolated_runs):
    spec = REFUSED[case]
    started = time.monotonic()
    code, _, err = run_cli(capsys, *spec.argv(ctx))
    line = error_line(err)
    assert code == EXIT_USER_ERROR, err
    for needle in spec.needles:
        assert needle.lower() in line.lower(), (needle, line)
    assert time.monotonic() - started < 60  # refusals are fast (the first case also imports torch)
    # A run folder created before the problem showed up says why it failed, in the same words.
    for folder in run_folders(isolated_runs):
        status = folder.status()
        assert status["status"] == "failed", status
        assert status["error"] == line.removeprefix("error: "), status
    if spec.core is not None:
        with pytest.raises(spec.error) as info:
            spec.core(ctx)
        assert isinstance(info.value, TuneboardError)
        message = str(info.value)
        for needle in spec.needles:
            assert needle.lower() in message.lower(), (needle, message)


def test_oversized_file_is_refused_before_it_is_read(ctx, capsys, monkeypatch):
    """Uploads are capped by Streamlit (see test_security); a server-side path is capped by core."""
    from core.data import tables

    monkeypatch.setenv("TUNEBOARD_MAX_FILE_MB", "1")
    big = ctx.file("big.csv", csv_text(reviews()) * 1500)  # about 2 MB
    read = []
    monkeypatch.setattr(Path, "read_bytes", lambda self: read.append(self) or b"")
    with pytest.raises(DataError, match=r"big.csv is \d\.\d MB, more than Tuneboard reads at once \(1 MB\)"):
        tables.read_table(big)
    assert not read, "the file must be refused before it is loaded into memory"
    monkeypatch.undo()
    monkeypatch.setenv("TUNEBOARD_MAX_FILE_MB", "1")
    code, _, err = run_cli(capsys, *ctx.train("mlm", big))
    assert code == EXIT_USER_ERROR
    assert "TUNEBOARD_MAX_FILE_MB" in error_line(err)
    monkeypatch.delenv("TUNEBOARD_MAX_FILE_MB")
    assert tables.max_file_bytes() == tables.DEFAULT_MAX_FILE_MB * 2**20
    assert len(tables.read_table(big)) > 1000  # under the default cap it is read


# ---- the repaired catalogue ---------------------------------------------------------------------

def _data_report(out: str) -> dict:
    folder = Path(next(line for line in out.splitlines() if line.startswith("Run folder: ")).split(": ", 1)[1])
    assert RunFolder(folder).status()["status"] == "completed"
    return json.loads((folder / "data_report.json").read_text())


def _latin1_rows() -> list[tuple[str, str]]:
    accented = [("Café crème hoodies are très stylish", "1"), ("Naïve Señor socks are très ugly", "0")]
    return accented * 1 + reviews(30)


def test_latin1_file_is_repaired(ctx, capsys):
    path = ctx.file("latin1.csv", csv_text(_latin1_rows()).encode("latin-1"))
    frame = _read(ctx, "latin1.csv", csv_text(_latin1_rows()).encode("latin-1"))
    assert frame["text"].iloc[0] == "Café crème hoodies are très stylish"
    assert frame["text"].iloc[1] == "Naïve Señor socks are très ugly"
    code, out, err = run_cli(capsys, *ctx.train("classification", path))
    assert code == 0, err
    read = _data_report(out)["curation"]["read"]
    assert read["encoding"] in ("cp1252", "latin-1")
    assert any("not UTF-8" in r for r in read["repairs"])


def test_utf16_file_is_repaired(ctx):
    frame = _read(ctx, "excel.csv", csv_text(reviews(6)).encode("utf-16"))
    assert list(frame.columns) == ["text", "label"] and len(frame) == 6
    assert any("UTF-16" in r for r in frame.attrs["read_report"]["repairs"])


def test_headerless_tsv_is_repaired(ctx, capsys):
    path = ctx.file("noheader.tsv", csv_text(reviews(), header=None, sep="\t"))
    frame = _read(ctx, "noheader.tsv", csv_text(reviews(), header=None, sep="\t"))
    assert list(frame.columns) == ["text", "label"] and len(frame) == 48  # the first row is kept as data
    assert frame["text"].iloc[0] == reviews()[0][0]
    code, out, err = run_cli(capsys, *ctx.train("classification", path))
    assert code == 0, err
    repairs = _data_report(out)["curation"]["read"]["repairs"]
    assert any("first row is data" in r for r in repairs)


def test_torn_last_jsonl_line_is_repaired(ctx, capsys):
    lines = [json.dumps({"text": t, "label": int(lab)}) for t, lab in reviews()]
    content = "\n".join(lines) + '\n{"text": "Nike socks are very dur'  # the writer was killed mid-line
    path = ctx.file("export.jsonl", content)
    assert len(_read(ctx, "export.jsonl", content)) == 48
    code, out, err = run_cli(capsys, *ctx.train("classification", path))
    assert code == 0, err
    report = _data_report(out)
    assert report["rows_read"] == 48
    assert any("line 49 is incomplete" in w for w in report["warnings"])


def test_mixed_label_types_are_repaired_by_majority(ctx, capsys):
    """Integers win when most labels are integers; the stray names are dropped and counted, not a new class."""
    rows = [{"text": t, "label": int(lab) if i % 3 else float(lab)} for i, (t, lab) in enumerate(reviews())]
    rows += [{"text": "Puma socks are very positive vibes", "label": "positive"},
             {"text": "Asics shoes are very meh", "label": "meh"}]
    path = ctx.file("mixed.json", json.dumps(rows))
    code, out, err = run_cli(capsys, *ctx.train("classification", path))
    assert code == 0, err
    report = _data_report(out)
    assert report["label_names"] == ["0", "1"]  # 1 and 1.0 are one class; "positive" is not a class
    assert report["dropped"].get("unparseable_label") == 2
    checks = {c["check"]: c for c in report["curation"]["checks"]}
    assert checks["unparseable_label"]["failed"] == 2


def test_tokenizer_without_pad_token_is_repaired(ctx, capsys):
    loaded = _load(ctx, ctx.gpt2, "causal")
    assert loaded.tokenizer.pad_token == loaded.tokenizer.eos_token
    assert any("no pad token" in w for w in loaded.report["warnings"])
    code, out, err = run_cli(capsys, "--task", "causal", "--model", ctx.gpt2, "--rows", "60", "--max-steps", "2",
                             "--batch-size", "4")
    assert code == 0, err
    folder = Path(next(line for line in out.splitlines() if line.startswith("Run folder: ")).split(": ", 1)[1])
    assert any("no pad token" in w for w in RunFolder(folder).load_report()["warnings"])


def test_config_number_written_as_text_is_repaired():
    """YAML 1.1 reads 5e-5 (no dot) as a string; it is parsed as the number it obviously is."""
    cfg = RunConfig.from_yaml("training:\n  learning_rate: 5e-5\n").validate()
    assert cfg.training.learning_rate == pytest.approx(5e-5)


def test_config_from_a_newer_version_with_known_keys_is_read():
    """A newer format that only uses settings this version knows is read as is; nothing is dropped."""
    cfg = RunConfig.from_dict({"version": 7, "task": "classification", "training": {"batch_size": 4}}).validate()
    assert cfg.task == "classification" and cfg.training.batch_size == 4


# ---- runs -------------------------------------------------------------------------------------

def _finished_run(root: Path, status: str, name: str) -> str:
    folder = RunFolder.create(root, name, RunConfig())
    folder.update_status(status=status, finished_at=now_iso(), error="boom" if status == "failed" else None)
    return name


@pytest.mark.parametrize(
    ("status", "needle"),
    [pytest.param("completed", "is completed; start a new run from its config", id="completed"),
     pytest.param("failed", "failed before its first complete checkpoint; fix the cause", id="failed"),
     pytest.param("cancelled", "cancelled before it started", id="cancelled")],
)
def test_resume_of_a_finished_run_is_refused(status, needle, isolated_runs, capsys):
    from core.service.jobs import JobManager

    run_id = _finished_run(isolated_runs, status, f"20240101-000000-mlm-{status}")
    manager = JobManager(isolated_runs, train_fn=lambda *a, **k: pytest.fail("must not train"),
                         preflight_fn=lambda cfg: None)
    try:
        with pytest.raises(RunError, match=needle):
            manager.resume(run_id)
        with pytest.raises(RunError, match="There is no run"):
            manager.resume("20240101-000000-mlm-ghost")
    finally:
        manager.shutdown(timeout=5)
    assert RunFolder(isolated_runs / run_id).status()["status"] == status  # unchanged
    code, _, err = run_cli(capsys, "--resume", str(isolated_runs / run_id))
    assert code == EXIT_USER_ERROR
    assert status in error_line(err)


def _stopped_run_with_checkpoint(root: Path) -> str:
    folder = RunFolder.create(root, "20240101-000000-mlm-stop", RunConfig())
    folder.update_status(status="stopped", step=4)
    checkpoint = folder.path / "checkpoint-4"
    checkpoint.mkdir()
    for name in ("optimizer.pt", "scheduler.pt", "model.safetensors"):
        (checkpoint / name).write_bytes(b"x")
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 4}))
    return folder.run_id


def test_two_resumes_at_once_from_two_servers_only_one_wins(isolated_runs):
    """Two managers on the same runs folder (two server processes, or two tabs of two servers)."""
    from core.service.jobs import JobManager

    run_id = _stopped_run_with_checkpoint(isolated_runs)
    release = threading.Event()
    calls: list[str] = []

    def train(cfg, folder, sink, stop_event, *, resume=False):
        calls.append(folder.run_id)
        sink.set_status(status="running")
        release.wait(10)
        sink.set_status(status="completed")
        return "completed"

    managers = [JobManager(isolated_runs, train_fn=train, preflight_fn=lambda cfg: None) for _ in range(2)]
    barrier = threading.Barrier(4)
    results: list[str] = []

    def resume(manager):
        barrier.wait()
        try:
            manager.resume(run_id)
            results.append("ok")
        except RunError as err:
            results.append(str(err))

    threads = [threading.Thread(target=resume, args=(m,)) for m in managers for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert results.count("ok") == 1, results
        assert all("already" in r for r in results if r != "ok"), results
        release.set()
        deadline = time.monotonic() + 10
        while RunFolder(isolated_runs / run_id).status()["status"] != "completed" and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # a loser that slipped through would start training now
        assert calls == [run_id]
    finally:
        release.set()
        for manager in managers:
            manager.shutdown(timeout=10)


# ---- resources: disk full, out of memory, NaN ------------------------------------------------------

def _tiny_cfg(model: str, **training) -> RunConfig:
    cfg = RunConfig(task="mlm")
    cfg.model.source, cfg.model.max_length = model, 32
    cfg.data.synthetic.rows = 80
    cfg.training.max_steps = 6
    cfg.training.batch_size = 4
    cfg.training.logging_steps = 1
    cfg.training.eval_steps = 100
    cfg.training.save_steps = 2
    for key, value in training.items():
        setattr(cfg.training, key, value)
    return cfg.validate()


def _wait_finished(manager, run_id: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not manager.is_busy() and manager.snapshot(run_id).status not in ("queued", "running"):
            return manager.snapshot(run_id)
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


def test_disk_full_while_saving_fails_the_run_and_keeps_its_metrics(tiny_bert, isolated_runs, monkeypatch):
    from transformers import Trainer

    from core.service.jobs import JobManager, train_in_this_process

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(isolated_runs / "checkpoint-2"))

    monkeypatch.setattr(Trainer, "_save_checkpoint", full)
    manager = JobManager(isolated_runs, train_fn=train_in_this_process)  # the patch lives in this process
    try:
        run_id = manager.submit(_tiny_cfg(tiny_bert))
        snap = _wait_finished(manager, run_id)
    finally:
        manager.shutdown(timeout=30)
    assert snap.status == "failed"
    assert re.search(r"disk (is full|filled up)", snap.error) and "free space" in snap.error.lower()
    folder = RunFolder(isolated_runs / run_id)
    assert folder.status()["status"] == "failed"  # on disk too, not just in memory
    steps = [m["step"] for m in folder.metrics() if "loss" in m]
    assert steps[:2] == [1, 2]  # the metrics logged before the save survive, readable
    assert folder.config().training.max_steps == 6


def test_cuda_oom_on_the_first_step_retries_with_half_batch(tiny_bert, ctx, capsys, monkeypatch):
    import torch

    from core.training.trainer import TuneboardTrainer

    original = TuneboardTrainer.training_step
    seen: list[tuple[int, int]] = []

    def training_step(self, *args, **kwargs):
        seen.append((self.args.per_device_train_batch_size, self.args.gradient_accumulation_steps))
        if len(seen) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TuneboardTrainer, "training_step", training_step)
    out_dir = ctx.tmp / "runs" / "oom"
    code, out, err = run_cli(capsys, "--model", tiny_bert, "--rows", "80", "--max-steps", "2", "--batch-size", "8",
                             "--output-dir", str(out_dir))
    assert code == 0, err
    folder = RunFolder(out_dir)
    assert folder.status()["status"] == "completed"
    events = [m for m in folder.metrics() if m.get("event") == "oom_retry"]
    assert len(events) == 1
    assert "batch size 4" in events[0]["message"] and "2x gradient accumulation" in events[0]["message"]
    assert seen[0] == (8, 1) and seen[1] == (4, 2)  # same effective batch


def test_cuda_oom_that_persists_fails_with_advice(tiny_bert, capsys, monkeypatch):
    import torch

    from core.training.trainer import TuneboardTrainer

    def training_step(self, *args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory.")

    monkeypatch.setattr(TuneboardTrainer, "training_step", training_step)
    code, _, err = run_cli(capsys, "--model", tiny_bert, "--rows", "80", "--max-steps", "2", "--batch-size", "8")
    assert code == EXIT_USER_ERROR
    line = error_line(err)
    assert "out of memory even at half the batch size" in line and "LoRA" in line


def test_nan_loss_fails_with_advice(tiny_bert, capsys, monkeypatch):
    import torch

    from core.training.trainer import TuneboardTrainer

    original = TuneboardTrainer.compute_loss

    def compute_loss(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if isinstance(result, tuple):
            return (result[0] * torch.tensor(float("nan")), *result[1:])
        return result * torch.tensor(float("nan"))

    monkeypatch.setattr(TuneboardTrainer, "compute_loss", compute_loss)
    code, out, err = run_cli(capsys, "--model", tiny_bert, "--rows", "80", "--max-steps", "4", "--batch-size", "4")
    assert code == EXIT_USER_ERROR
    line = error_line(err)
    assert "loss became nan" in line.lower() and "Lower the learning rate" in line


def test_ram_exhaustion_fails_with_advice(tiny_bert, isolated_runs, monkeypatch):
    from core.service.jobs import JobManager, train_in_this_process
    from core.training.trainer import TuneboardTrainer

    def training_step(self, *args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(TuneboardTrainer, "training_step", training_step)
    manager = JobManager(isolated_runs, train_fn=train_in_this_process)  # the patch lives in this process
    try:
        run_id = manager.submit(_tiny_cfg(tiny_bert))
        snap = _wait_finished(manager, run_id)
    finally:
        manager.shutdown(timeout=30)
    assert snap.status == "failed"
    assert "ran out of memory (RAM)" in snap.error and "batch_size" in snap.error


# ---- the same refusals in the UI: next to the widget, never a traceback --------------------------------

UPLOADS = {
    "broken-quoting": ("quotes.csv", _BROKEN_QUOTES.encode(), "quotes.csv: a double quote opened on line 2 is never closed"),
    "ragged-first-row": ("ragged.csv", _RAGGED_FIRST.encode(), "ragged.csv: the first data row has more fields"),
    "jsonl-garbage-line": ("rows.jsonl", _GARBAGE_MID.encode(), "rows.jsonl: line 2 is not valid JSON"),
    "binary": ("dump.csv", bytes(range(256)) * 8, "dump.csv looks like a binary file"),
    "latin1": ("latin1.csv", csv_text(_latin1_rows()).encode("latin-1"), None),
    "headerless-tsv": ("noheader.tsv", csv_text(reviews(), header=None, sep="\t").encode(), None),
}


@pytest.mark.parametrize("case", list(UPLOADS), ids=list(UPLOADS))
def test_setup_page_shows_upload_problems_next_to_the_widget(case, jobs):
    name, content, message = UPLOADS[case]
    at = app().run()
    # The repaired files hold ~30 rows: a smaller batch than the default 32 fits them.
    at.number_input(key="cfg:training.batch_size@0").set_value(8).run()
    at.radio(key="cfg:data.source@0").set_value("file").run()
    at.file_uploader(key="cfg:data.upload@0").upload(name, content, "text/csv")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    errors = texts(at.error)
    if message is None:  # repaired: a preview and a ready config
        assert not errors, errors
        # The data preview (the model catalogue above it is a table too).
        preview = next(d.value for d in at.dataframe if "text" in d.value.columns)
        assert list(preview.columns) == ["text", "label"]
        if case == "latin1":
            assert preview["text"].iloc[0] == "Café crème hoodies are très stylish"
    else:
        assert any(e.startswith(message) for e in errors), errors
        assert not any("Traceback" in e for e in errors)
        assert at.button(key="tb_setup_start").disabled


def test_setup_page_refuses_a_config_from_a_newer_version(jobs):
    at = app().run()
    newer = yaml.safe_dump({"version": 9, "training": {"warp_drive": 1}}).encode()
    at.file_uploader(key="tb_setup_yaml").upload("future.yaml", newer, "application/x-yaml")
    at.run()
    assert not at.exception
    assert any("newer Tuneboard" in e and "training.warp_drive" in e for e in texts(at.error))
    assert at.session_state["tb_config"].version == 1  # the tab keeps its config

