"""AppTest: Setup tells the truth before Start (#27): the rows left after curation and why, the estimate from
them, the evaluation file as an upload or a server path, and what a change of task reset or kept."""

from __future__ import annotations

import json

from core.present import text
from tests.support import texts
from tests.test_app_setup import key, review_csv, setup_page, upload
from tests.test_app_setup_sft import element_under
from ui.state import CONFIG_KEY


def news_csv(rows: int = 800, unique: int = 282) -> bytes:
    """The issue's walkthrough: 800 headlines in 8 classes, 518 of them repeats of earlier ones."""
    lines = ["headline,category"]
    for i in range(rows):
        n = i % unique
        lines.append(f"Headline number {n} about topic {n % 8},topic{n % 8}")
    return ("\n".join(lines) + "\n").encode()


def captions(at) -> list[str]:
    return texts(at.caption)


def config(at):
    return at.session_state[CONFIG_KEY]


# ---- the rows after curation, and the estimate from them ----------------------------------------

def test_duplicates_are_counted_before_start_and_the_estimate_uses_the_rows_left(jobs):
    at = upload(setup_page(jobs), "news.csv", news_csv())
    assert not at.exception, [e.value for e in at.exception]
    line = "Data: 800 rows → 282 rows after curation (dropped: 518 duplicates) → 254 to train on, 28 held out " \
           "for evaluation."
    assert line in captions(at), captions(at)
    assert any("254 training rows" in c for c in captions(at)), captions(at)  # the estimate: not 720 rows
    assert any(c.startswith("Plan: ") for c in captions(at))
    assert text.LABEL_CLASSES.format(classes=8, rows=282, balance=35 / 36) in captions(at)


def test_repeated_chats_are_counted_as_duplicates(jobs, tmp_path):
    qa = [{"role": "user", "content": "What is the capital of France?"}, {"role": "assistant", "content": "Paris."}]
    rows = [{"messages": qa}] * 25 + [{"messages": [{"role": "user", "content": f"Question {i}?"},
                                                    {"role": "assistant", "content": f"Answer {i}."}]}
                                      for i in range(30)]
    content = "".join(json.dumps(row) + "\n" for row in rows).encode()
    at = setup_page(jobs)
    at.radio(key=key("task")).set_value("sft").run()
    at.radio(key=key("data.source")).set_value("file").run()
    at.file_uploader(key=key("data.upload")).upload("chats.jsonl", content, "application/json").run()
    assert not at.exception, [e.value for e in at.exception]
    assert text.SFT_ROWS.format(rows=31) in captions(at)
    assert any(c.startswith("Data: 55 rows → 31 conversations after curation (dropped: 24 duplicates)")
               for c in captions(at)), captions(at)


# ---- the evaluation file ------------------------------------------------------------------------

def test_the_evaluation_file_is_an_upload_checked_like_the_training_file(jobs, isolated_runs):
    at = upload(setup_page(jobs), "reviews.csv", review_csv(rows=300))
    uploader = key("data.eval_upload")
    at.file_uploader(key=uploader).upload("held-out.csv", b"review,human\nGreat shoes,positive\n", "text/csv").run()
    assert not at.exception, [e.value for e in at.exception]
    refused = [e for e in texts(at.error) if "has no label column 'sentiment'" in e]
    assert len(refused) == 2 and "held-out.csv" in refused[0], texts(at.error)  # under the widget, and by Start
    assert not [e for e in texts(at.error) if "-held-out.csv" in e]  # named as uploaded, not as stored
    under = element_under(at, uploader)
    assert under is not None and under.type == "error" and "sentiment" in str(under.value)
    assert at.button(key="tb_setup_start").disabled

    good = b"review,sentiment\nGreat shoes,positive\nAwful socks,negative\nFine laces,positive\n"
    at.file_uploader(key=uploader).upload("held-out.csv", good, "text/csv").run()
    assert not at.exception and not at.error, texts(at.error)
    stored = config(at).data.eval_path
    assert stored and stored.startswith(str(isolated_runs.parent / "uploads")) and stored.endswith("held-out.csv")
    assert text.EVAL_ROWS.format(rows=3) in captions(at)
    assert any("300 to train on, evaluated on the separate evaluation file" in c for c in captions(at))
    assert not at.button(key="tb_setup_start").disabled

    at.file_uploader(key=uploader).clear().run()  # removing the upload removes the path it set
    assert not at.exception
    assert config(at).data.eval_path is None
    assert at.text_input(key=key("data.eval_path")).value == ""


def test_an_evaluation_file_already_on_the_server_is_given_by_its_path(jobs, tmp_path):
    at = upload(setup_page(jobs), "reviews.csv", review_csv(rows=300))
    at.text_input(key=key("data.eval_path")).set_value(str(tmp_path / "missing.csv")).run()
    assert any("There is no file at" in e for e in texts(at.error)), texts(at.error)
    path = tmp_path / "eval.csv"
    path.write_text("review,sentiment\nGreat shoes,positive\nAwful socks,negative\n", encoding="utf-8")
    at.text_input(key=key("data.eval_path")).set_value(str(path)).run()
    assert not at.exception and not at.error, texts(at.error)
    assert config(at).data.eval_path == str(path)
    assert text.EVAL_ROWS.format(rows=2) in captions(at)


# ---- a change of task ---------------------------------------------------------------------------

def test_a_task_switch_resets_a_demo_s_settings_and_says_so(jobs):
    """The issue's case: after the Nike demo (12 max steps, batch 8, lr 1e-4), the next task trained too little."""
    at = setup_page(jobs)
    at.button(key="tb_setup_demo_nike").click().run()
    # Its rows after the empty ones, the repeats and the Nike signal: 265 train, not the 1,710 read and split.
    assert any(c.startswith("Data: 2,000 rows → 295 rows after curation (dropped: 100 empty, 39 duplicates, "
                            "1,566 by the curation signal) → 265 to train on") for c in captions(at)), captions(at)
    assert any("265 training rows" in c for c in captions(at)), captions(at)
    at.radio(key=key("task", gen=1)).set_value("classification").run()
    assert not at.exception, [e.value for e in at.exception]
    training = config(at).training
    assert (training.max_steps, training.batch_size, training.learning_rate) == (0, 32, None)
    assert config(at).model.max_length is None
    assert at.number_input(key=key("training.batch_size", gen=1)).value == 32
    note = next(i for i in texts(at.info) if i.startswith("For Classification"))
    assert "max steps 12 → off" in note and "batch size 8 → 32" in note and "learning rate 0.0001 → default" in note
    assert text.TASK_SWITCH_KEPT.split(":")[0] not in note
    assert "tb_setup_task_defaults@1" not in [b.key for b in at.button]  # nothing kept, nothing more to reset


def test_settings_the_user_chose_are_kept_and_can_be_reset_too(jobs):
    at = setup_page(jobs)
    at.number_input(key=key("training.batch_size")).set_value(16).run()
    at.radio(key=key("task")).set_value("sft").run()
    assert not at.exception, [e.value for e in at.exception]
    assert config(at).training.batch_size == 16 and config(at).strategy.name == "lora"
    note = next(i for i in texts(at.info) if "Kept as you set them" in i)
    assert "batch size 16" in note and "strategy Full fine-tune → LoRA adapters" in note
    at.button(key="tb_setup_task_defaults@0").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert config(at).training.batch_size == 8  # instruction tuning's own default
    assert at.number_input(key=key("training.batch_size")).value == 8
    assert not [i for i in texts(at.info) if "Kept as you set them" in i]
