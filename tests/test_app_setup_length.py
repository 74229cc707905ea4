"""AppTest: Setup's training length: enough for the data by default, epochs or max steps when chosen."""

from __future__ import annotations

from core.present import text
from core.training import run_length
from tests.support import texts
from tests.test_app_setup import key, setup_page


def test_the_default_length_follows_the_data_and_says_how(jobs):
    at = setup_page(jobs)
    assert at.radio(key=key("training.max_steps", "mode")).value == "auto"
    note = text.TRAIN_FOR_AUTO_NOTE.format(steps=run_length.MIN_STEPS, per_class=run_length.SAMPLES_PER_CLASS,
                                           epochs=run_length.MAX_EPOCHS, evaluations=run_length.EVALUATIONS,
                                           patience=run_length.PATIENCE)
    assert note in texts(at.caption)
    training = at.session_state["tb_config"].training
    assert (training.epochs, training.max_steps, training.eval_steps, training.early_stopping_patience) == (
        None, 0, None, None)


def test_choosing_epochs_or_steps_sets_them_and_auto_clears_them(jobs):
    at = setup_page(jobs)
    at.radio(key=key("training.max_steps", "mode")).set_value("epochs").run()
    assert at.session_state["tb_config"].training.epochs == run_length.DEFAULT_EPOCHS
    at.number_input(key=key("training.epochs")).set_value(3.0).run()
    assert at.session_state["tb_config"].training.epochs == 3.0
    at.radio(key=key("training.max_steps", "mode")).set_value("auto").run()
    training = at.session_state["tb_config"].training
    assert (training.epochs, training.max_steps) == (None, 0)
    # Patience 0 switches early stopping off even in an automatic run; an interval may be set by hand.
    at.number_input(key=key("training.early_stopping_patience")).set_value(0).run()
    at.number_input(key=key("training.eval_steps")).set_value(20).run()
    training = at.session_state["tb_config"].training
    assert (training.early_stopping_patience, training.eval_steps) == (0, 20)
    assert not at.exception
