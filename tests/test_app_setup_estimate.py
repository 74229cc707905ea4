"""AppTest: Setup's time estimate, disk use and the kept-model options."""

from __future__ import annotations

from core.present import text
from tests.support import texts
from tests.test_app_setup import key, review_csv, setup_page, upload


def _estimate(at) -> str:
    return {m.label: m.value for m in at.metric}[text.ESTIMATE]


def test_a_small_upload_is_estimated_in_seconds_from_its_real_rows(jobs):
    at = upload(setup_page(jobs), "reviews.csv", review_csv(rows=300))
    assert not at.exception, [e.value for e in at.exception]
    value = _estimate(at)
    assert value.startswith("about ") and "m" not in value.removeprefix("about ").rstrip("s"), value  # under a minute
    captions = " ".join(texts(at.caption))
    assert "270 training rows" in captions  # 300 rows less the 10% validation share, not an assumed 10,000
    assert "Disk: up to" in captions


def test_without_an_estimate_the_page_says_why(jobs):
    at = setup_page(jobs)
    at.radio(key=key("data.source")).set_value("file").run()
    assert _estimate(at) == text.ESTIMATE_UNKNOWN
    assert text.ESTIMATE_WHY_PROBLEMS in texts(at.caption)


def test_long_texts_are_announced_before_start(jobs):
    long_rows = "\n".join(f"{i},{'very ' * 200}long review {i},positive" if i % 2 else f"{i},short review {i},negative"
                          for i in range(60))
    at = upload(setup_page(jobs), "long.csv", ("id,review,sentiment\n" + long_rows + "\n").encode())
    # Left empty, the max length follows the data: long enough for these rows, so nothing is cut.
    assert not [n for n in texts(at.info) if "longer than the model's max length" in n], texts(at.info)
    assert any("fitted to 99% of the rows" in c for c in texts(at.caption)), texts(at.caption)
    at.number_input(key=key("model.max_length")).set_value(64).run()
    notes = [n for n in texts(at.info) if "longer than the model's max length" in n]
    assert notes and "50%" in notes[0], texts(at.info)
    assert at.session_state["tb_config"].model.max_length == 64


def test_kept_model_and_early_stopping_reach_the_config(jobs):
    at = setup_page(jobs)
    at.radio(key=key("training.keep_model")).set_value("last").run()
    at.number_input(key=key("training.early_stopping_patience")).set_value(3).run()
    at.toggle(key=key("training.keep_checkpoints")).set_value(True).run()
    training = at.session_state["tb_config"].training
    assert (training.keep_model, training.early_stopping_patience, training.keep_checkpoints) == ("last", 3, True)
    assert not at.exception


def test_tensorboard_logging_is_offered_and_reaches_the_config(jobs):
    at = setup_page(jobs)
    at.multiselect(key=key("training.log_to")).set_value(["tensorboard"]).run()
    assert at.session_state["tb_config"].training.log_to == ["tensorboard"]
    assert not at.exception
