"""Pages draw without torch: no page's script run imports torch, transformers, peft or datasets.

Each page runs under AppTest in a fresh interpreter (an import anywhere earlier in the test session
would hide one), with the warm-up off; then the warm-up's own thread is checked to be the one that
imports torch. Also here: the torch-free parameter count against the real one, the torch-free device
line, and the pieces of bench/gpu_check.py that need no GPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "peft", "datasets", "accelerate")
PAGES = ("pages/setup.py", "pages/data.py", "pages/train.py", "pages/compare.py", "pages/playground.py",
         "pages/evaluate.py", "pages/runs.py", "pages/compare_strategies.py")

# Runs in the fresh interpreter: the app, then one page (with a finished run of `task` selected),
# or Setup with every task chosen in turn; prints the heavy modules that got imported.
PAGE_SCRIPT = """
import json, os, sys
from pathlib import Path
from streamlit.testing.v1 import AppTest
from tests.support import make_run

page, task = sys.argv[1], sys.argv[2]
at = AppTest.from_file("app.py", default_timeout=60)
if page != "pages/setup.py":
    at.query_params["run"] = make_run(Path(os.environ["TUNEBOARD_RUNS"]), task=task)
at.run()
if page == "pages/setup.py":
    for chosen in ("classification", "causal", "mlm"):
        at.radio(key="cfg:task@0").set_value(chosen).run()
else:
    at.switch_page(page).run()
heavy = [name for name in %r if name in sys.modules]
print(json.dumps({"heavy": heavy, "errors": [str(e.value) for e in at.exception]}))
"""

WARM_UP_SCRIPT = """
import builtins, json, sys, threading
from streamlit.testing.v1 import AppTest

importers = {}
real_import = builtins.__import__

def spy(name, *args, **kwargs):
    top = name.split(".")[0]
    if top in ("torch", "transformers") and top not in importers:
        importers[top] = threading.current_thread().name
    return real_import(name, *args, **kwargs)

builtins.__import__ = spy
at = AppTest.from_file("app.py", default_timeout=60).run()
import ui.state
ui.state.warm_up().join(120)
from core.service import child_process
standby = child_process.standby_pid()
child_process.discard_standby()
print(json.dumps({"importers": importers, "loaded": "core.training.engine" in sys.modules, "standby": standby,
                  "errors": [str(e.value) for e in at.exception]}))
"""


def _fresh_python(code: str, *args: str, tmp_path: Path, **env: str) -> dict:
    environment = {**os.environ, "TUNEBOARD_RUNS": str(tmp_path / "runs"), "TUNEBOARD_UPLOADS": str(tmp_path / "up"),
                   "TUNEBOARD_DATA": str(tmp_path / "data"), **env}
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=environment, capture_output=True,
                          text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("page", PAGES)
def test_page_script_run_imports_no_ml_library(page, tmp_path):
    (tmp_path / "runs").mkdir()
    task = "classification" if page == "pages/evaluate.py" else "causal" if page == "pages/compare.py" else "mlm"
    found = _fresh_python(PAGE_SCRIPT % (HEAVY,), page, task, tmp_path=tmp_path, TUNEBOARD_WARM_UP="0")
    assert not found["errors"], found["errors"]
    assert found["heavy"] == [], f"{page} imported {found['heavy']} on the script thread"


def test_the_warm_up_thread_imports_torch_after_the_first_page(tmp_path):
    found = _fresh_python(WARM_UP_SCRIPT, tmp_path=tmp_path, TUNEBOARD_WARM_UP="1", TUNEBOARD_STANDBY="1")
    assert not found["errors"], found["errors"]
    assert found["loaded"], "the warm-up did not import the engine"
    assert found["importers"] == {"torch": "tuneboard-warm-up", "transformers": "tuneboard-warm-up"}
    assert isinstance(found["standby"], int), "no training process was made ready for Start"


def test_no_standby_training_process_when_switched_off(tmp_path):
    found = _fresh_python(WARM_UP_SCRIPT, tmp_path=tmp_path, TUNEBOARD_WARM_UP="1", TUNEBOARD_STANDBY="0")
    assert not found["errors"], found["errors"]
    assert found["standby"] is None


# ---- the parameter count without torch ---------------------------------------------------------

def test_header_count_equals_the_bundled_models_real_parameters():
    from transformers import AutoModel

    from core.models import bundled_model_path
    from core.models.params import checkpoint_param_count

    folder = bundled_model_path()
    model = AutoModel.from_pretrained(folder)  # BertModel with its pooler: what the checkpoint holds
    assert checkpoint_param_count(folder) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("task", ["mlm", "classification", "causal"])
def test_quick_count_equals_the_meta_model_count(task, tiny_bert, tiny_gpt2):
    from core.config import RunConfig
    from core.models.params import quick_params
    from core.training.strategies import estimate_params

    sources = ["bundled", "bundled:smollm2-135m", tiny_bert, tiny_gpt2]
    if task == "mlm":
        sources = ["bundled", tiny_bert]
    for source in sources:
        cfg = RunConfig.from_dict({"task": task, "model": {"source": source}})
        assert quick_params(cfg) == estimate_params(cfg), source


def test_gguf_architecture_count_equals_the_meta_model_count():
    """SmolLM2 before its first conversion is counted from the recorded architecture."""
    from core.config import RunConfig
    from core.models import gguf
    from core.models.params import task_param_count
    from core.training.strategies import estimate_params

    for task in ("causal", "classification"):
        cfg = RunConfig.from_dict({"task": task, "model": {"source": "bundled:smollm2-135m"}})
        assert task_param_count(dict(gguf.SMOLLM2.architecture), None, task) == estimate_params(cfg)[1]


def test_quick_count_leaves_other_strategies_and_families_to_the_meta_model():
    from core.config import RunConfig
    from core.models.params import quick_params, task_param_count

    lora = RunConfig.from_dict({"strategy": {"name": "lora"}})
    assert quick_params(lora) is None
    assert task_param_count({"model_type": "t5", "hidden_size": 8, "vocab_size": 10}, {}, "causal") is None
    assert task_param_count({"model_type": "llama", "hidden_size": 8, "vocab_size": 10}, {}, "mlm") is None


# ---- the device line without torch ---------------------------------------------------------------

def test_nvidia_smi_output_and_cpu_flags_are_read_like_torch(monkeypatch):
    from core import devices

    gpus = devices.parse_nvidia_smi("NVIDIA H200, 143771, 9.0\nTesla T4, 15360, 7.5\n")
    assert gpus == [("NVIDIA H200", 143771 / 1024, 9.0), ("Tesla T4", 15.0, 7.5)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert devices._visible_gpu(gpus)[0] == "Tesla T4"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert devices._visible_gpu(gpus) is None
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    assert devices._cpu_capability({"avx512f", "avx512bw", "avx512vl", "avx512dq", "fma", "avx2"}) == "AVX512"
    assert devices._cpu_capability({"avx2", "fma"}) == "AVX2"
    assert devices._cpu_capability({"sse2"}) == "DEFAULT"
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert devices._cpu_capability({"avx512f", "avx512bw", "avx512vl", "avx512dq", "fma", "avx2"}) == "AVX2"


def test_device_line_without_torch_matches_the_one_with_torch(tmp_path):
    code = ("import json, sys; from core import devices; line = devices.describe_device(); "
            "print(json.dumps({'line': line, 'torch': 'torch' in sys.modules}))")
    without = _fresh_python(code, tmp_path=tmp_path)
    assert not without["torch"]
    import torch  # noqa: F401 - loaded: describe_device asks torch

    from core import devices

    assert devices.describe_device.__wrapped__() == without["line"]


# ---- bench/gpu_check.py without a GPU ------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "label", "precision"),
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM", "bf16"),
        ("NVIDIA H100 PCIe", "H100 PCIe", "bf16"),
        ("NVIDIA H200", "H200", "bf16"),
        ("NVIDIA A100-SXM4-80GB", "A100", "bf16"),
        ("NVIDIA L4", "L4", "bf16"),
        ("NVIDIA L40S", "L40S", "bf16"),
        ("NVIDIA A10G", "A10G", "bf16"),
        ("NVIDIA GeForce RTX 4090", "RTX 4090", "bf16"),
        ("Tesla T4", "T4", "fp16"),
    ],
)
def test_gpu_peak_table_lookup(name, label, precision):
    from bench.gpu_check import peak_flops

    found = peak_flops(name)
    assert found is not None and (found[0], found[2]) == (label, precision)


def test_unknown_gpu_has_no_peak_and_mfu_arithmetic():
    from bench.gpu_check import mfu, peak_flops

    assert peak_flops("Quadro RTX 8000") is None
    # 6 x 100M params x 1M tokens/s = 6e14 FLOP/s: 60.7% of an H100 SXM's 989 TFLOP/s.
    assert mfu(100_000_000, 1_000_000, 989e12) == pytest.approx(6e14 / 989e12)


def test_gpu_check_reads_speed_and_folder_completeness(tmp_path):
    from bench.gpu_check import folder_complete, steady_samples_per_s

    metrics = [{"step": 1, "time": 0.0, "loss": 3.0}, {"step": 10, "time": 1.0, "loss": 2.0},
               {"step": 30, "time": 3.0, "loss": 1.5}, {"step": 30, "time": 3.5, "eval_loss": 1.4}]
    assert steady_samples_per_s(metrics, 32) == pytest.approx(20 * 32 / 2.0)
    assert steady_samples_per_s(metrics[:2], 32) is None
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    (run / "config.yaml").write_text("task: mlm\n")
    (run / "metrics.jsonl").write_text(json.dumps(metrics[0]) + "\n")
    (run / "status.json").write_text(json.dumps({"status": "completed"}))
    assert folder_complete(run) == {"config.yaml": True, "metrics.jsonl": True, "status completed": True,
                                    "model saved": False}
    (run / "final" / "config.json").write_text("{}")
    (run / "final" / "model.safetensors").write_bytes(b"")
    assert all(folder_complete(run).values())


def test_gpu_check_skips_cleanly_without_cuda(tmp_path):
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--out", str(tmp_path)], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "gpu_check skipped" in done.stdout and "CUDA" in done.stdout
    assert list(tmp_path.iterdir()) == []
