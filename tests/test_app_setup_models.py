"""AppTest: the Setup page's bundled-model catalogue, the task's default model, and the demo buttons."""

from __future__ import annotations

from core.models.catalogue import BUNDLED_SMOLLM2
from core.present import text
from tests.support import app, texts
from ui.state import CONFIG_KEY


def key(path: str, *extra: str, gen: int = 0) -> str:
    suffix = "".join(f"/{part}" for part in extra)
    return f"cfg:{path}{suffix}@{gen}"


def setup_page():
    at = app().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def config(at):
    return at.session_state[CONFIG_KEY]


def test_catalogue_table_shows_the_bundled_models_and_their_facts(jobs):
    at = setup_page()
    assert at.radio(key=key("model.source", "kind")).value == "bundled"
    # One column per model, one row per fact (a static table: it wraps a long fact instead of cutting it).
    table = next(t.value for t in at.table if text.BUNDLED_COLUMNS["licence"] in t.value.index)
    names = table.columns.tolist()
    assert names == [text.BUNDLED_DEFAULT_MARK + "MiniLM-L6", "SmolLM2-135M"]  # masked-LM: MiniLM is the default
    assert set(table.loc[text.BUNDLED_COLUMNS["licence"]]) == {"Apache-2.0"}
    heads = table.loc[text.BUNDLED_COLUMNS["head"]].tolist()
    assert heads == [text.BUNDLED_HEAD[False], text.BUNDLED_HEAD[None]]
    assert at.selectbox(key=key("model.source", "bundled", "mlm")).value == "bundled"
    assert config(at).model.source == "bundled"


def test_causal_task_picks_smollm2_with_its_probes_and_hint(jobs):
    at = setup_page()
    at.radio(key=key("task")).set_value("causal").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key=key("model.source", "bundled", "causal")).value == BUNDLED_SMOLLM2
    assert config(at).model.source == BUNDLED_SMOLLM2
    assert text.PROBE_TEXTS_CAUSAL_HINT in texts(at.caption)
    assert at.text_area(key=key("probes.texts", "causal")).value.splitlines()[0] == "Nike shoes are very"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[text.PARAMS_TOTAL] == "134.5M"  # estimated without loading (or converting) the weights
    assert not [e for e in texts(at.error) if "model" in e.lower()]
    # Back to masked-LM: the default model follows the task.
    at.radio(key=key("task")).set_value("mlm").run()
    assert config(at).model.source == "bundled"


def test_an_explicit_choice_is_kept_when_the_new_task_allows_it(jobs):
    at = setup_page()
    at.radio(key=key("task")).set_value("classification").run()
    at.selectbox(key=key("model.source", "bundled", "classification")).set_value(BUNDLED_SMOLLM2).run()
    assert config(at).model.source == BUNDLED_SMOLLM2
    assert any("starts untrained" in c for c in texts(at.caption))  # a new classifier head
    at.radio(key=key("task")).set_value("causal").run()
    assert config(at).model.source == BUNDLED_SMOLLM2  # chosen, and it serves causal LM
    at.radio(key=key("task")).set_value("mlm").run()
    assert config(at).model.source == "bundled"  # SmolLM2 cannot do masked-LM: the default takes over


def test_load_the_nike_demo_fills_the_form(jobs):
    at = setup_page()
    at.button(key="tb_setup_demo_nike").click().run()
    assert not at.exception, [e.value for e in at.exception]
    cfg = config(at)
    assert cfg.task == "causal" and cfg.model.source == BUNDLED_SMOLLM2 and cfg.name == "nike-demo"
    assert cfg.data.curation.signal["op"] == "and"
    assert at.radio(key=key("task", gen=1)).value == "causal"
    assert at.selectbox(key=key("model.source", "bundled", "causal", gen=1)).value == BUNDLED_SMOLLM2
    assert text.CONFIG_OK in texts(at.success)
    assert not at.button(key="tb_setup_start").disabled
    at.button(key="tb_setup_demo_nike-mlm").click().run()
    cfg = config(at)
    assert cfg.task == "mlm" and cfg.model.source == "bundled" and cfg.name == "nike-mlm-demo"


def test_load_the_news_demo_fills_the_form_for_instruction_tuning(jobs):
    at = setup_page()
    at.button(key="tb_setup_demo_news").click().run()
    assert not at.exception, [e.value for e in at.exception]
    cfg = config(at)
    assert cfg.task == "sft" and cfg.model.source == BUNDLED_SMOLLM2 and cfg.name == "news-demo"
    assert cfg.strategy.name == "lora" and cfg.data.synthetic.kind == "news" and cfg.model.max_length is None
    assert at.radio(key=key("data.synthetic.kind", gen=1)).value == "news"
    assert text.CONFIG_OK in texts(at.success), texts(at.error)
    assert not at.button(key="tb_setup_start").disabled


def test_instruction_tuning_starts_with_batches_of_8_unless_the_batch_was_chosen(jobs):
    at = setup_page()
    at.radio(key=key("task")).set_value("sft").run()
    assert not at.exception, [e.value for e in at.exception]
    assert config(at).training.batch_size == 8 and config(at).strategy.name == "lora"
    at.radio(key=key("task")).set_value("classification").run()
    at.number_input(key=key("training.batch_size")).set_value(16).run()
    at.radio(key=key("task")).set_value("sft").run()
    assert config(at).training.batch_size == 16  # the user's choice stays


def test_a_finished_run_is_offered_as_the_base_model(jobs, runs_root):
    from tests.support import make_run

    run_id = make_run(runs_root, name="first pass")
    at = setup_page()
    at.radio(key=key("model.source", "kind")).set_value("run").run()
    assert not at.exception, [e.value for e in at.exception]
    picker = at.selectbox(key=key("model.source", "run", "mlm"))
    assert picker.value == f"run:{run_id}"
    assert config(at).model.source == f"run:{run_id}"
    assert text.MODEL_RUN_NOTE in texts(at.caption)
