"""Generation side by side (core.insight.generate, `python -m core generate`, the Compare page's panel) on a tiny GPT-2 run."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

import core.insight.generate
from core.config import RunConfig
from core.errors import ConfigError, ModelError, RunError
from core.insight.generate import GenerationSettings, generate_continuations, stream_continuations
from core.present import text
from core.run.folder import RunFolder
from core.run.sink import RunSink
from core.training import engine
from tests.support import (
    all_text,
    make_run,
    open_page,
    texts,
)

PROMPT = "Nike shoes are"
GREEDY = GenerationSettings(max_new_tokens=8, temperature=0.0, top_p=1.0, seed=0)


def tiny_causal_config(model_dir: str, strategy: str = "full") -> RunConfig:
    """A causal-LM config on the tiny GPT-2 that trains in a couple of seconds."""
    cfg = RunConfig(task="causal")
    cfg.model.source = model_dir
    cfg.model.max_length = 32
    cfg.data.synthetic.rows = 80
    cfg.strategy.name = strategy
    cfg.training.max_steps = 2
    cfg.training.batch_size = 8
    cfg.training.learning_rate = 5e-3
    cfg.training.eval_steps = 2
    cfg.training.save_steps = 2
    cfg.probes.texts = ["Nike shoes are very"]
    # Exact comparisons with reloaded weights: bf16 autocast (what 'auto' picks on CPUs with
    # AVX512-BF16) scores the in-memory model a hair off the fp32 reload of the same weights.
    cfg.training.precision = "fp32"
    return cfg.validate()


def train_run(cfg: RunConfig, root: Path, run_id: str) -> Path:
    """Train `cfg` into root/run_id with the real engine; returns the run folder."""
    folder = RunFolder.create(root, run_id, cfg)
    status = engine.train(cfg, folder, RunSink(folder), threading.Event())
    assert status == "completed"
    return folder.path


@pytest.fixture(scope="module")
def causal_run(tiny_gpt2, tmp_path_factory) -> Path:
    """A completed causal-LM run (full fine-tuning) of the tiny GPT-2."""
    return train_run(tiny_causal_config(tiny_gpt2), tmp_path_factory.mktemp("gen-runs"), "causal-full")


# ---- core.insight.generate ---------------------------------------------------------------------------

def test_greedy_is_deterministic_and_labelled(causal_run):
    first = generate_continuations(causal_run, PROMPT, GREEDY)
    second = generate_continuations(causal_run, PROMPT, GREEDY)
    assert first == second
    assert set(first) == {"base", "tuned"}
    assert first["base"] and first["tuned"]  # a random tiny model does not stop at once


def test_seeded_sampling_is_reproducible_and_leaves_the_global_rng_alone(causal_run):
    import torch

    sampled = GenerationSettings(max_new_tokens=8, temperature=1.0, top_p=0.95, seed=7)
    state = torch.get_rng_state()
    first = generate_continuations(causal_run, PROMPT, sampled)
    assert torch.equal(state, torch.get_rng_state())
    assert generate_continuations(causal_run, PROMPT, sampled) == first
    others = {generate_continuations(causal_run, PROMPT, GenerationSettings(8, 1.0, 0.95, seed))["base"]
              for seed in (1, 2, 3)}
    assert len(others | {first["base"]}) > 1  # the seed matters when sampling


def test_streaming_yields_growing_text_base_then_tuned(causal_run):
    chunks = list(stream_continuations(causal_run, PROMPT, GenerationSettings(10, 0.0, 1.0, 0)))
    order = [which for which, _ in chunks]
    assert order[0] == "base" and order[-1] == "tuned"
    assert order == sorted(order)  # every base chunk before the first tuned one ("base" < "tuned")
    for which in ("base", "tuned"):
        grown = [piece for name, piece in chunks if name == which]
        assert grown[0] == ""  # the start marker a page uses to clear its column
        assert len(grown) > 2, "the text arrived in one piece, not streamed"
        assert all(later.startswith(earlier) for earlier, later in zip(grown, grown[1:], strict=False))


def test_bad_input_raises_typed_errors_with_a_next_step(causal_run, tmp_path):
    with pytest.raises(ConfigError, match="prompt"):
        generate_continuations(causal_run, "   ", GREEDY)
    for bad in (0, 10_000):
        with pytest.raises(ConfigError, match="Max new tokens"):
            generate_continuations(causal_run, PROMPT, GenerationSettings(bad, 0.0, 1.0, 0))
    with pytest.raises(ConfigError, match="Top-p"):
        generate_continuations(causal_run, PROMPT, GenerationSettings(8, 0.7, 0.0, 0))
    with pytest.raises(ConfigError, match="at most 128"):  # the tiny GPT-2 has 128 positions
        generate_continuations(causal_run, "Nike shoes are very " * 30, GenerationSettings(100, 0.0, 1.0, 0))

    mlm = RunFolder.create(tmp_path, "an-mlm-run", RunConfig(task="mlm"))
    with pytest.raises(ModelError, match="causal-LM run"):
        generate_continuations(mlm.path, PROMPT, GREEDY)
    no_model = RunFolder.create(tmp_path, "no-model-yet", RunConfig(task="causal"))
    with pytest.raises(RunError, match="no saved model yet"):
        generate_continuations(no_model.path, PROMPT, GREEDY)
    with pytest.raises(RunError, match="not a run folder"):
        generate_continuations(tmp_path / "nowhere", PROMPT, GREEDY)


# ---- the CLI ---------------------------------------------------------------------------------

def test_cli_prints_both_continuations_labelled(causal_run, capsys):
    from core.__main__ import main

    code = main(["generate", str(causal_run), "--prompt", PROMPT, "--max-new-tokens", "6", "--temperature", "0"])
    out = capsys.readouterr().out
    assert code == 0
    expected = generate_continuations(causal_run, PROMPT, GenerationSettings(6, 0.0, 0.95, 0))
    assert f"--- base ---\n{PROMPT}{expected['base']}\n" in out
    assert f"--- fine-tuned ---\n{PROMPT}{expected['tuned']}\n" in out


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--max-new-tokens", "0"], "Max new tokens"),
        (["--temperature", "-1"], "Temperature"),
        (["--prompt", ""], "Write a prompt"),
    ],
)
def test_cli_bad_input_is_one_error_line_and_exit_2(causal_run, capsys, flags, needle):
    from core.__main__ import main

    code = main(["generate", str(causal_run), "--prompt", PROMPT, *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and needle in err and "Traceback" not in err


def test_cli_non_causal_run_exits_2(tmp_path, capsys):
    from core.__main__ import main

    folder = RunFolder.create(tmp_path, "mlm-run", RunConfig(task="mlm"))
    assert main(["generate", str(folder.path), "--prompt", PROMPT]) == 2
    assert "generation needs a causal-LM run" in capsys.readouterr().err


# ---- the Compare page ------------------------------------------------------------------------

def test_compare_generation_panel_streams_both_columns(jobs, runs_root, causal_run):
    run_id = "20260101-000000-causal-gen"
    shutil.copytree(causal_run, runs_root / run_id)
    at = open_page("pages/compare.py", {"run": run_id})
    assert not at.exception, [e.value for e in at.exception]
    assert text.GENERATE_TITLE in texts(at.subheader)
    at.text_area(key="tb_compare_gen_prompt").set_value(PROMPT)
    at.number_input(key="tb_compare_gen_max").set_value(6)
    at.number_input(key="tb_compare_gen_temp").set_value(0.0)
    at.button(key="tb_compare_gen_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    expected = generate_continuations(runs_root / run_id, PROMPT, GenerationSettings(6, 0.0, 0.95, 0))
    assert shown_plain(at, expected["base"]) and shown_plain(at, expected["tuned"])
    at.run()  # a rerun (any widget) keeps the last generation on the page
    assert shown_plain(at, expected["tuned"])


def shown_plain(at, continuation: str) -> bool:
    """Whether a markdown element shows the bold prompt and then `continuation` (Markdown escapes removed)."""
    return f"**{PROMPT}**{continuation}" in [m.replace("\\", "") for m in texts(at.markdown)]


def test_compare_generation_panel_only_for_causal_runs_and_needs_a_model(jobs, runs_root, monkeypatch):
    calls = []

    def fake_stream(run_path, prompt, settings, *, before="parent"):
        calls.append((run_path.name, prompt, settings, before))
        yield "base", ""
        yield "base", " very"
        yield "tuned", ""
        yield "tuned", " very comfortable"

    monkeypatch.setattr(core.insight.generate, "stream_continuations", fake_stream)
    mlm = make_run(runs_root, final_model=True)
    at = open_page("pages/compare.py", {"run": mlm})
    assert text.GENERATE_TITLE not in texts(at.subheader)

    pending = make_run(runs_root, task="causal", status="running")
    at = open_page("pages/compare.py", {"run": pending})
    assert at.button(key="tb_compare_gen_go").disabled
    assert text.GENERATE_NO_MODEL in texts(at.caption)

    causal = make_run(runs_root, task="causal", final_model=True)
    at = open_page("pages/compare.py", {"run": causal})
    at.button(key="tb_compare_gen_go").click().run()
    assert text.GENERATE_EMPTY in texts(at.error) and not calls
    at.text_area(key="tb_compare_gen_prompt").set_value("Nike socks are")
    at.number_input(key="tb_compare_gen_seed").set_value(5)
    at.button(key="tb_compare_gen_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert calls == [(causal, "Nike socks are", GenerationSettings(40, 0.7, 0.95, 5), "parent")]
    page = all_text(at)
    assert "very comfortable" in page and text.COLUMN_TUNED_LATEST in page


def test_compare_generation_errors_are_messages(jobs, runs_root, monkeypatch):
    def broken(run_path, prompt, settings, *, before="parent"):
        raise ConfigError("The prompt is 200 tokens and 40 new tokens were asked for: shorten the prompt.")
        yield  # a generator, like the real one

    monkeypatch.setattr(core.insight.generate, "stream_continuations", broken)
    run_id = make_run(runs_root, task="causal", final_model=True)
    at = open_page("pages/compare.py", {"run": run_id})
    at.text_area(key="tb_compare_gen_prompt").set_value("Nike")
    at.button(key="tb_compare_gen_go").click().run()
    assert any("shorten the prompt" in e for e in texts(at.error))
    assert not at.exception


# ---- the repetition guard (issue 27: "...very comfortable and stylish... very comfortable and stylish...") ----

def repeated_trigrams(ids: list[int]) -> list[tuple[int, ...]]:
    """The token 3-grams that occur more than once in `ids`."""
    grams = [tuple(ids[i:i + 3]) for i in range(len(ids) - 2)]
    return sorted({g for g in grams if grams.count(g) > 1})


def greedy_ids(model, tokenizer, settings: GenerationSettings, monkeypatch) -> list[int]:
    """The token ids (prompt and continuation) that stream_continuation's generate() produced."""
    from core.insight.generate import stream_continuation

    produced = []
    real = model.generate

    def recording(**kwargs):
        output = real(**kwargs)
        produced.append(output[0].tolist())
        return output

    monkeypatch.setattr(model, "generate", recording)
    list(stream_continuation(model, tokenizer, PROMPT, settings))
    monkeypatch.undo()
    return produced[0]


def test_greedy_generation_with_the_default_guard_repeats_no_3_gram(causal_run, monkeypatch):
    from core.insight.generate import load_models

    guarded = GenerationSettings(max_new_tokens=60, temperature=0.0, top_p=1.0, seed=0)
    assert guarded.repetition_penalty > 1.0 and guarded.no_repeat_ngram_size == 3  # on by default
    unguarded = GenerationSettings(60, 0.0, 1.0, 0, repetition_penalty=1.0, no_repeat_ngram_size=0)
    looped = False
    for model, tokenizer in load_models(causal_run):
        ids = greedy_ids(model, tokenizer, guarded, monkeypatch)
        assert len(ids) > 20 and repeated_trigrams(ids) == []
        looped = looped or bool(repeated_trigrams(greedy_ids(model, tokenizer, unguarded, monkeypatch)))
    assert looped, "without the guard the tiny model should loop: the check above would then prove nothing"


def test_guard_settings_are_checked():
    for bad in ({"repetition_penalty": 0.5}, {"repetition_penalty": 9.0}, {"no_repeat_ngram_size": -1},
                {"no_repeat_ngram_size": 2.5}):
        with pytest.raises(ConfigError) as caught:
            GenerationSettings(**bad).validate()
        assert caught.value.field in bad


def test_cli_guard_flags_reach_the_generation(causal_run, capsys):
    from core.__main__ import main

    code = main(["generate", str(causal_run), "--prompt", PROMPT, "--max-new-tokens", "30", "--temperature", "0",
                 "--repetition-penalty", "1", "--no-repeat-ngram-size", "0"])
    out = capsys.readouterr().out
    assert code == 0
    off = generate_continuations(causal_run, PROMPT, GenerationSettings(30, 0.0, 0.95, 0, 1.0, 0))
    assert f"--- base ---\n{PROMPT}{off['base']}\n" in out
    assert main(["generate", str(causal_run), "--prompt", PROMPT, "--no-repeat-ngram-size", "-2"]) == 2
    assert "No-repeat n-gram size" in capsys.readouterr().err


def test_compare_generation_panel_shows_and_passes_the_guard(jobs, runs_root, monkeypatch):
    calls = []

    def fake_stream(run_path, prompt, settings, *, before="parent"):
        calls.append(settings)
        yield "base", ""
        yield "base", " very"

    monkeypatch.setattr(core.insight.generate, "stream_continuations", fake_stream)
    at = open_page("pages/compare.py", {"run": make_run(runs_root, task="causal", final_model=True)})
    defaults = GenerationSettings()
    assert at.number_input(key="tb_compare_gen_penalty").value == defaults.repetition_penalty
    assert at.number_input(key="tb_compare_gen_ngram").value == defaults.no_repeat_ngram_size
    assert text.GENERATE_GUARD_NGRAM.format(size=3) in all_text(at)
    at.text_area(key="tb_compare_gen_prompt").set_value("Nike")
    at.number_input(key="tb_compare_gen_ngram").set_value(0)
    at.number_input(key="tb_compare_gen_penalty").set_value(1.0)
    at.button(key="tb_compare_gen_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert calls[-1].repetition_penalty == 1.0 and calls[-1].no_repeat_ngram_size == 0
    assert text.GENERATE_GUARD_OFF in texts(at.caption)
