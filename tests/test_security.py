"""Security and disk hygiene: server config, remote code, pickles, paths, uploads, the password gate.

What a Tuneboard left running on a shared GPU box must guarantee: it listens on localhost unless
told otherwise, never runs code shipped with a model or a file unless the user switches that on
(and is warned), never lets a run id or a config path reach outside where the user pointed, keeps
its disk use bounded and visible, and can be locked with a shared password.
"""

from __future__ import annotations

import os
import pickle
import re
import threading
import tomllib
from pathlib import Path

import pytest

from core.config import ModelConfig, RunConfig
from core.errors import DataError, ModelError, RunError
from core.present import text
from core.run.folder import RunFolder, validate_run_id
from core.service.jobs import JobManager
from tests.support import (
    app,
    make_run,
    open_page,
    texts,
)
from ui import auth

ROOT = Path(__file__).resolve().parents[1]


# ---- server configuration ------------------------------------------------------------------------

def test_streamlit_server_config_is_locked_down():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    server = config["server"]
    assert server["address"] == "127.0.0.1"  # not reachable from the network by default
    assert server["enableXsrfProtection"] is True
    assert server["enableCORS"] is True  # Streamlit turns XSRF protection off when CORS is off
    assert isinstance(server["maxUploadSize"], int) and 1 <= server["maxUploadSize"] <= 1024  # MB
    assert server["fileWatcherType"] == "none"  # no restarts under a running fine-tune, no inotify storm
    assert server.get("runOnSave", False) is False
    assert config["browser"]["gatherUsageStats"] is False
    assert config["client"]["showErrorDetails"] == "none"  # no tracebacks in the browser


def test_upload_cap_is_below_what_core_reads():
    """Streamlit refuses uploads over maxUploadSize; core's own cap for server paths is higher."""
    from core.data.tables import DEFAULT_MAX_FILE_MB

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] <= DEFAULT_MAX_FILE_MB


# ---- remote code and pickled weights ----------------------------------------------------------------

def _model_with_remote_code(folder: Path, marker: Path) -> Path:
    """A model folder whose config asks to run its own Python file (which would leave a marker)."""
    import json

    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "sneaky-bert",
        "auto_map": {"AutoConfig": "configuration_sneaky.SneakyConfig",
                     "AutoModelForMaskedLM": "modeling_sneaky.SneakyModel"},
    }))
    payload = f"open({str(marker)!r}, 'w').write('ran')\n"
    (folder / "configuration_sneaky.py").write_text(payload)
    (folder / "modeling_sneaky.py").write_text(payload)
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    return folder


def test_trust_remote_code_is_off_by_default_and_remote_code_never_runs(tmp_path, capsys):
    from core.__main__ import main
    from core.models import load_for_task
    from core.training.strategies import estimate_params

    assert RunConfig().model.trust_remote_code is False
    assert RunConfig.from_dict({"model": {"source": "x"}}).model.trust_remote_code is False
    marker = tmp_path / "code-ran"
    folder = _model_with_remote_code(tmp_path / "sneaky", marker)
    with pytest.raises(ModelError, match="trust_remote_code") as info:
        load_for_task(ModelConfig(source=str(folder)), "mlm")
    assert info.value.field == "model.trust_remote_code"
    cfg = RunConfig()
    cfg.model.source = str(folder)
    with pytest.raises(ModelError):
        estimate_params(cfg)  # what the Setup page calls on every change
    assert main(["train", "--model", str(folder), "--rows", "60", "--max-steps", "1"]) == 2
    assert "trust_remote_code" in capsys.readouterr().err
    assert not marker.exists(), "code shipped with a model ran without trust_remote_code"


def test_remote_code_runs_only_when_switched_on_and_its_failure_is_explained(tmp_path):
    """The control for the test above: with the switch on, the same folder's code does run."""
    import subprocess
    import sys

    marker = tmp_path / "code-ran"
    folder = _model_with_remote_code(tmp_path / "sneaky", marker)
    script = (
        "import sys\n"
        "from core.config import ModelConfig\n"
        "from core.errors import ModelError\n"
        "from core.models import load_for_task\n"
        "try:\n"
        f"    load_for_task(ModelConfig(source={str(folder)!r}, trust_remote_code=True), 'mlm')\n"
        "except ModelError as err:\n"
        "    print(err.field, err)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_MODULES_CACHE": str(tmp_path / "modules")}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert marker.exists()
    assert done.stdout.startswith("model.trust_remote_code The Python code shipped with"), done.stdout


def test_trust_remote_code_on_is_reported_as_a_warning(tiny_bert):
    from core.models import load_for_task

    quiet = load_for_task(ModelConfig(source=tiny_bert), "mlm")
    assert not any("trust_remote_code" in w for w in quiet.report["warnings"])
    loud = load_for_task(ModelConfig(source=tiny_bert, trust_remote_code=True), "mlm")
    assert any("trust_remote_code is on" in w for w in loud.report["warnings"])


def test_setup_page_warns_when_remote_code_or_pickles_are_allowed(jobs):
    at = app().run()
    assert text.TRUST_REMOTE_CODE_WARNING not in texts(at.warning)
    at.toggle(key="cfg:model.trust_remote_code@0").set_value(True).run()
    assert text.TRUST_REMOTE_CODE_WARNING in texts(at.warning)
    at.toggle(key="cfg:model.allow_pickle_weights@0").set_value(True).run()
    assert text.ALLOW_PICKLE_WARNING in texts(at.warning)
    assert not at.exception


def test_pickled_weights_are_refused_unless_allowed(tmp_path, capsys):
    from core.__main__ import main
    from core.models import load_for_task
    from tests.tiny_models import tiny_bert_dir

    folder = tiny_bert_dir(tmp_path, safetensors=False)
    assert not list(folder.glob("*.safetensors")) and (folder / "pytorch_model.bin").exists()
    with pytest.raises(ModelError, match="pickled weights") as info:
        load_for_task(ModelConfig(source=str(folder)), "mlm")
    assert info.value.field == "model.allow_pickle_weights"
    assert main(["train", "--model", str(folder), "--rows", "60", "--max-steps", "1"]) == 2
    assert "allow_pickle_weights" in capsys.readouterr().err
    allowed = load_for_task(ModelConfig(source=str(folder), allow_pickle_weights=True), "mlm")
    assert allowed.report["weights_format"] == "pickle"
    assert any("pickled" in w for w in allowed.report["warnings"])


# ---- run ids and paths ----------------------------------------------------------------------------

BAD_RUN_IDS = {
    "parent": "../victim", "dotdot": "..", "inner-dotdot": "a/../b", "absolute": "/etc", "slash": "x/y",
    "hidden": ".hidden", "empty": "", "backslash": "a\\b", "nul-byte": "run\x00id", "tilde": "~root",
    "too-long": "a" * 200,
}


@pytest.mark.parametrize("bad", list(BAD_RUN_IDS.values()), ids=list(BAD_RUN_IDS))
def test_run_ids_are_validated_before_they_become_paths(bad, tmp_path):
    root = tmp_path / "runs"
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "config.yaml").write_text(RunConfig().to_yaml())
    (victim / "status.json").write_text('{"status": "stopped"}')
    manager = JobManager(root, train_fn=lambda *a, **k: pytest.fail("must not train"), preflight_fn=lambda cfg: None)
    try:
        for action in (manager.snapshot, manager.resume, manager.delete, manager.stop, manager.cancel, manager.config):
            with pytest.raises(RunError, match="not a valid run id"):
                action(bad)
    finally:
        manager.shutdown(timeout=5)
    for call in (lambda: RunFolder.open(root, bad), lambda: RunFolder.create(root, bad, RunConfig()),
                 lambda: validate_run_id(bad)):
        with pytest.raises(RunError, match="not a valid run id"):
            call()
    assert (victim / "config.yaml").exists() and sorted(p.name for p in victim.iterdir()) == ["config.yaml", "status.json"]


def test_a_run_id_in_the_url_cannot_reach_outside_the_runs_folder(jobs, runs_root):
    victim = runs_root.parent / "victim"
    victim.mkdir()
    (victim / "config.yaml").write_text(RunConfig(name="outside").to_yaml())
    for page in ("pages/train.py", "pages/runs.py", "pages/compare.py"):
        at = open_page(page, {"run": "../victim"})
        assert not at.exception, [e.value for e in at.exception]
        assert "outside" not in "\n".join(texts(at.markdown) + texts(at.caption))
    assert (victim / "config.yaml").exists()


def test_data_paths_from_a_config_are_resolved_and_checked(tmp_path):
    from core.data.rows import load_frame
    from core.data.tables import read_table

    folder = tmp_path / "reviews.csv"
    folder.mkdir()
    with pytest.raises(DataError, match="is a folder"):
        load_frame(RunConfig.from_dict({"data": {"source": "file", "path": str(folder)}}).data)
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def read_fifo():
        try:
            read_table(fifo)
            outcome.append(None)
        except BaseException as err:  # noqa: BLE001 - recorded for the assertion below
            outcome.append(err)

    reader = threading.Thread(target=read_fifo, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # unblock the stuck reader so the test process can exit
        with open(fifo, "w"):
            pass
        pytest.fail("reading a FIFO blocked: non-regular files must be refused before they are opened")
    assert isinstance(outcome[0], DataError) and "not a regular file" in str(outcome[0])
    traversal = tmp_path / os.path.relpath("/etc/hostname", tmp_path)  # .../../../etc/hostname
    (tmp_path / "hostname").write_text("x")  # whether or not /etc/hostname exists, a file without a data suffix
    for path, message in ((str(traversal), "cannot read|does not exist"),
                          (str(tmp_path / "hostname"), "cannot read"),
                          ("/dev/null", "cannot read|not a regular file"),
                          ("/dev/zero.csv", "does not exist")):
        with pytest.raises(DataError, match=message):
            read_table(path)
    home_relative = Path("~").expanduser() / "tuneboard-test-missing.csv"
    with pytest.raises(DataError, match=re.escape(str(home_relative))):
        read_table("~/tuneboard-test-missing.csv")  # ~ is expanded, not taken literally


def test_model_paths_from_a_config_are_resolved_and_checked(tmp_path):
    from core.models import resolve_model

    with pytest.raises(ModelError, match="is a file"):
        resolve_model("/etc/passwd")
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path / ".." / ".."))
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model("../../no/such/model")  # not a Hub id either


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("../../etc/passwd.csv", "passwd.csv", id="parent-dirs"),
        pytest.param("..\\..\\windows\\win.csv", "win.csv", id="windows-parent-dirs"),
        pytest.param("/abs/path/reviews.CSV", "reviews.csv", id="absolute"),
        pytest.param(".hidden.csv", "hidden.csv", id="leading-dot"),
        pytest.param("My Reviews (final)!.jsonl", "My_Reviews_final_.jsonl", id="punctuation"),
        pytest.param("résumé.tsv", "r_sum_.tsv", id="non-ascii"),
        pytest.param("", "upload", id="empty"),
        pytest.param("....", "upload", id="only-dots"),
        pytest.param("a" * 300 + ".csv", "a" * 76 + ".csv", id="too-long"),
    ],
)
def test_uploaded_file_names_are_sanitised(name, expected, tmp_path):
    from ui.files import sanitise_filename, save_upload

    assert sanitise_filename(name) == expected
    root = tmp_path / "uploads"
    stored = save_upload(name, b"text,label\nok,1\n", root)
    assert stored.parent == root and stored.name.endswith(expected)
    assert stored.resolve().is_relative_to(root.resolve())


def test_uploaded_files_are_never_unpickled(tmp_path, monkeypatch):
    """A pickle disguised as a table is refused as binary, and nothing on the way calls pickle."""
    import pandas as pd

    from core.data.tables import SUPPORTED_SUFFIXES, read_table
    from ui.files import save_upload

    assert not {".pkl", ".pickle", ".pt", ".bin", ".npy", ".joblib"} & set(SUPPORTED_SUFFIXES)
    calls: list[str] = []
    for module, attr in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (pd, "read_pickle")):
        monkeypatch.setattr(module, attr, lambda *a, _n=attr, **k: calls.append(_n))
    payload = pickle.dumps({"text": ["x"], "label": [1]}, protocol=4)
    for name in ("evil.csv", "evil.json", "evil.jsonl", "evil.parquet"):
        stored = save_upload(name, payload, tmp_path / "uploads")
        with pytest.raises(DataError):
            read_table(stored)
    assert calls == []


FORBIDDEN = {
    "pickle.load(s) / Unpickler": r"\bpickle\.(loads?|Unpickler)\b|\bimport pickle\b|\bfrom pickle\b",
    "pandas read_pickle": r"\bread_pickle\b",
    "torch.load without weights_only=True": r"\btorch\.load\((?![^)]*weights_only=True)",
    "yaml.load (not safe_load)": r"\byaml\.(load|unsafe_load|full_load)\(",
    "eval / exec of strings": r"(?<![\w.])(eval|exec)\(",
    "trust_remote_code=True hard-coded": r"trust_remote_code\s*=\s*True",
    "a shell": r"shell\s*=\s*True|\bos\.system\(",
}


def test_no_code_path_unpickles_evaluates_or_hard_codes_trust():
    sources = [ROOT / "app.py", *sorted((ROOT / "core").rglob("*.py")), *sorted((ROOT / "ui").rglob("*.py")),
               *sorted((ROOT / "pages").rglob("*.py"))]
    hits = []
    for path in sources:
        source = path.read_text(encoding="utf-8")
        for what, pattern in FORBIDDEN.items():
            for match in re.finditer(pattern, source):
                line = source[: match.start()].count("\n") + 1
                hits.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert not hits, hits


# ---- disk hygiene ----------------------------------------------------------------------------------

def test_save_total_limit_keeps_the_last_k_checkpoints_and_disk_use_is_reported(tiny_bert, runs_root, jobs):
    import threading as _threading

    from core.run.sink import RunSink
    from core.training import engine
    from ui.widgets import format_bytes

    cfg = RunConfig(task="mlm", name="hygiene")
    cfg.model.source, cfg.model.max_length = tiny_bert, 32
    cfg.data.synthetic.rows = 80
    cfg.training.max_steps, cfg.training.batch_size = 5, 4
    cfg.training.save_steps, cfg.training.save_total_limit = 1, 2
    cfg.training.keep_checkpoints = True  # a completed run drops them unless asked to keep them
    cfg.training.keep_model = "last"  # 'best' checkpoints at evaluations only, not every save_steps
    cfg.training.eval_steps = 100
    folder = RunFolder.create(runs_root, "20240101-000000-mlm-disk", cfg.validate())
    assert engine.train(cfg, folder, RunSink(folder), _threading.Event()) == "completed"
    assert [p.name for p in folder.checkpoints()] == ["checkpoint-4", "checkpoint-5"]
    saved = [e["step"] for e in folder.metrics() if e.get("event") == "checkpoint"]
    assert saved == [1, 2, 3, 4, 5]  # five were written, the oldest three removed

    row = next(r for r in jobs.list_runs() if r.run_id == folder.run_id)
    assert row.disk_bytes == folder.disk_usage_bytes() > 0
    at = open_page("pages/runs.py", {"run": folder.run_id})
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    shown = table[table[text.COL_RUN] == folder.run_id].iloc[0][text.COL_DISK]
    assert shown == format_bytes(row.disk_bytes)


# ---- the optional password gate -----------------------------------------------------------------------

def test_no_password_configured_means_no_gate(jobs, monkeypatch):
    monkeypatch.delenv(auth.PASSWORD_ENV, raising=False)
    at = app().run()
    assert not at.exception
    assert at.title[0].value == text.SETUP_TITLE
    assert not [t for t in at.text_input if t.key == auth.PASSWORD_KEY]


def test_password_gate_blocks_every_page_until_the_password_is_entered(jobs, runs_root, monkeypatch):
    monkeypatch.setenv(auth.PASSWORD_ENV, "correct horse")
    monkeypatch.setattr(auth, "WRONG_DELAY_S", 0.0)
    compared: list[tuple[bytes, bytes]] = []
    real_compare = auth.hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest", lambda a, b: compared.append((a, b)) or real_compare(a, b))
    run_id = make_run(runs_root, name="secret-run")

    at = app({"run": run_id}).run()
    assert not at.exception
    assert [t.value for t in at.title] == [text.AUTH_TITLE]
    assert run_id not in "\n".join(texts(at.sidebar.caption) + texts(at.caption) + texts(at.markdown))
    password = at.text_input(key=auth.PASSWORD_KEY)
    assert password.proto.type == password.proto.PASSWORD  # typed characters are masked

    password.set_value("wrong horse")
    at.button[0].click().run()
    assert text.AUTH_WRONG in texts(at.error)
    assert [t.value for t in at.title] == [text.AUTH_TITLE]

    # A deep link to another page runs that page's script directly: the gate holds there too.
    deep = app({"run": run_id}).run().switch_page("pages/runs.py").run()
    assert [t.value for t in deep.title] == [text.AUTH_TITLE]
    assert not deep.get("dataframe")

    at.text_input(key=auth.PASSWORD_KEY).set_value("correct horse")
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == text.SETUP_TITLE
    assert at.session_state[auth.AUTH_KEY] is True
    assert (b"correct horse", b"correct horse") in compared  # constant-time comparison
    at.switch_page("pages/runs.py").run()  # remembered for this session
    assert at.title[0].value != text.AUTH_TITLE and at.get("dataframe")

    other_tab = app().run()  # another browser session has to enter it as well
    assert [t.value for t in other_tab.title] == [text.AUTH_TITLE]


def test_password_comparison():
    assert auth.password_matches("s3cret", "s3cret")
    assert not auth.password_matches("s3cre", "s3cret")
    assert not auth.password_matches("", "s3cret")
    assert auth.password_matches("pässwört", "pässwört")  # non-ASCII works (compare_digest needs bytes)
