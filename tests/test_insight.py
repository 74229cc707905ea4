"""Per-example predictions (core.insight.predictions): the numbers against scikit-learn, the filters, the files the
engine writes for classification and language models."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score, confusion_matrix, precision_recall_fscore_support

from core.insight import analysis, example_pass
from core.insight import predictions as insight
from core.run.folder import RunFolder

LABELS = ["negative", "neutral", "positive"]
GOLD = ["negative", "neutral", "positive", "positive", "negative", "neutral", "positive", "negative", "positive", "neutral"]
PRED = ["negative", "positive", "positive", "neutral", "negative", "neutral", "positive", "positive", "positive", "negative"]


def stage(predicted: list[str], confidence: list[float] | None = None) -> pd.DataFrame:
    """A classification stage frame for GOLD with the given predictions."""
    n = len(GOLD)
    return pd.DataFrame({
        "row": np.arange(n), "text": [f"text {i}" for i in range(n)], "gold": GOLD, "predicted": predicted,
        "confidence": confidence or [0.5 + i / 40 for i in range(n)],
    })


def test_confusion_matrix_matches_sklearn_with_row_shares():
    counts, shares = analysis.confusion(GOLD, PRED, LABELS)
    assert counts.tolist() == confusion_matrix(GOLD, PRED, labels=LABELS).tolist()
    assert np.allclose(shares.sum(axis=1), 1.0)
    assert shares[0].tolist() == pytest.approx([2 / 3, 0, 1 / 3])


def test_confusion_of_a_class_with_no_examples_has_zero_shares():
    counts, shares = analysis.confusion(["a", "a"], ["a", "b"], ["a", "b"])
    assert counts.tolist() == [[1, 1], [0, 0]] and shares[1].tolist() == [0.0, 0.0]


def test_per_class_matches_sklearn():
    table = analysis.per_class(GOLD, PRED, LABELS)
    precision, recall, f1, support = precision_recall_fscore_support(GOLD, PRED, labels=LABELS, zero_division=0)
    assert table["label"].tolist() == LABELS
    assert table["precision"].tolist() == pytest.approx(precision.tolist())
    assert table["recall"].tolist() == pytest.approx(recall.tolist())
    assert table["f1"].tolist() == pytest.approx(f1.tolist())
    assert table["support"].tolist() == support.tolist()


def test_per_class_change_is_tuned_minus_base():
    base = stage(["negative"] * len(GOLD))
    table = analysis.per_class_change(base, stage(PRED), LABELS)
    before = analysis.per_class(GOLD, base["predicted"].tolist(), LABELS)
    assert table["f1_change"].tolist() == pytest.approx((table["f1"] - before["f1"]).tolist())
    assert table.loc[table.label == "positive", "recall_change"].item() == pytest.approx(0.75)
    assert "f1_change" not in analysis.per_class_change(None, stage(PRED), LABELS)


@pytest.mark.parametrize("other", [PRED, GOLD, ["negative"] * len(GOLD), list(reversed(GOLD))])
def test_kappa_matches_sklearn(other):
    assert analysis.cohen_kappa(GOLD, other) == pytest.approx(cohen_kappa_score(GOLD, other))


def test_kappa_of_identical_single_label_lists_is_one():
    assert analysis.cohen_kappa(["a", "a"], ["a", "a"]) == 1.0
    assert analysis.accuracy([], []) == 0.0


def test_filters_select_misclassified_fixed_broken_and_least_confident():
    base = stage(GOLD[:5] + ["neutral"] * 5)  # right on the first five (and row 5, gold neutral)
    tuned = stage(PRED, confidence=[0.9, 0.4, 0.8, 0.3, 0.95, 0.6, 0.7, 0.5, 0.85, 0.55])
    table = analysis.example_table(base, tuned)
    assert table.columns.tolist() == ["row", "text", "gold", "base_prediction", "tuned_prediction", "confidence",
                                      "base_confidence", "base_correct", "tuned_correct"]
    assert analysis.filter_examples(table, "misclassified")["row"].tolist() == [1, 3, 7, 9]
    assert analysis.filter_examples(table, "fixed")["row"].tolist() == [6, 8]
    assert analysis.filter_examples(table, "broken")["row"].tolist() == [1, 3, 9]
    assert analysis.filter_examples(table, "least_confident", limit=3)["row"].tolist() == [3, 1, 7]
    assert len(analysis.filter_examples(table, "all")) == len(GOLD)
    with pytest.raises(ValueError):
        analysis.filter_examples(table, "nonsense")


def test_without_a_base_stage_nothing_counts_as_fixed_or_broken():
    table = analysis.example_table(None, stage(PRED))
    assert analysis.filter_examples(table, "fixed").empty and analysis.filter_examples(table, "broken").empty
    assert len(analysis.filter_examples(table, "misclassified")) == 4


def test_loss_improvements_and_regressions():
    base = insight.loss_frame(["a", "b", "c", "d"], [3.0, 2.0, 1.0, 4.0])
    tuned = insight.loss_frame(["a", "b", "c", "d"], [1.0, 2.5, 1.0, 3.5])
    changes = analysis.loss_changes(base, tuned)
    assert changes["change"].tolist() == pytest.approx([-2.0, 0.5, 0.0, -0.5])
    assert analysis.largest_improvements(changes)["text"].tolist() == ["a", "d"]
    assert analysis.largest_regressions(changes)["text"].tolist() == ["b"]
    assert analysis.largest_improvements(changes, n=1)["text"].tolist() == ["a"]


def test_classification_frame_and_softmax():
    probabilities = insight.softmax(np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 5.0]]))
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    frame = insight.classification_frame(["x", "y"], [0, 1], probabilities, LABELS)
    assert frame["predicted"].tolist() == ["negative", "positive"] and frame["gold"].tolist() == ["negative", "neutral"]
    assert frame["confidence"].tolist() == pytest.approx(probabilities.max(axis=1).tolist())
    assert [c for c in frame.columns if c.startswith(insight.PROB_PREFIX)] == [f"prob:{n}" for n in LABELS]


def write_run(tmp_path, *, sampled: bool = False) -> RunFolder:
    folder = RunFolder(tmp_path / "run")
    out = folder.predictions_path
    out.mkdir(parents=True)
    (out / insight.META_FILE).write_text(
        f'{{"task": "classification", "label_names": {LABELS!r}, "rows_used": 10, "rows_total": {2500 if sampled else 10},'
        f' "sampled": {str(sampled).lower()}, "final_step": 40}}'.replace("'", '"')
    )
    insight.write_frame_atomically(out / insight.stage_file_name("base"), stage(["negative"] * len(GOLD)))
    insight.write_frame_atomically(out / insight.stage_file_name("eval", 20), stage(GOLD))
    insight.write_frame_atomically(out / insight.stage_file_name("final"), stage(PRED))
    return folder


def test_stages_are_listed_in_training_order_and_final_wins(tmp_path):
    folder = write_run(tmp_path)
    assert insight.list_stages(folder.path) == [("base", None), ("eval", 20), ("final", None)]
    predictions = insight.load_predictions(folder.path)
    assert predictions.tuned_stage == "final" and predictions.tuned_step == 40
    assert predictions.tuned["predicted"].tolist() == PRED and predictions.label_names == LABELS
    assert insight.load_predictions(tmp_path / "nothing-here") is None


def test_human_labels_are_matched_by_text_and_scored_in_three_pairs(tmp_path):
    predictions = insight.load_predictions(write_run(tmp_path).path)
    humans = pd.DataFrame({
        "sentence": [f" text {i} " for i in range(8)] + ["not in the eval set"],
        "rating": ["NEGATIVE", 1, "positive", "positive", 0, "neutral", "positive", "negative", "positive"],
    })
    result = analysis.human_agreement(humans, "sentence", "rating", predictions)
    human = GOLD[:8]  # names in any case and ids both resolve to the run's labels
    assert result.matched == 8 and result.unmatched == 1
    assert list(result.pairs) == list(analysis.AGREEMENT_PAIRS)
    tuned, base, gold = result.pairs["tuned"], result.pairs["base"], result.pairs["gold"]
    assert tuned["accuracy"] == pytest.approx(np.mean([h == p for h, p in zip(human, PRED[:8], strict=True)]))
    assert tuned["kappa"] == pytest.approx(cohen_kappa_score(human, PRED[:8]))
    assert base["kappa"] == pytest.approx(cohen_kappa_score(human, ["negative"] * 8))
    assert gold == {"accuracy": 1.0, "kappa": 1.0}  # these humans are the gold labels


def test_human_agreement_lists_each_kind_of_disagreement(tmp_path):
    """Model vs human, model vs gold and human vs gold are three different lists (the page listed rows where the
    fine-tuned model agreed with the humans as disagreements)."""
    predictions = insight.load_predictions(write_run(tmp_path).path)
    human = ["positive", *GOLD[1:]]  # the human differs from gold on text 0 only (gold: negative)
    humans = pd.DataFrame({"text": [f"text {i}" for i in range(10)], "human": human})
    result = analysis.human_agreement(humans, "text", "human", predictions)

    def texts(kind: str) -> list[str]:
        return result.disagreements(kind)["text"].tolist()

    assert texts("human_gold") == ["text 0"]
    assert texts("model_gold") == [f"text {i}" for i in range(10) if PRED[i] != GOLD[i]]
    assert texts("model_human") == [f"text {i}" for i in range(10) if PRED[i] != human[i]]
    assert "text 0" in texts("model_human") and "text 0" not in texts("model_gold")  # PRED[0] is gold, not human
    assert result.disagreement_counts() == {kind: len(texts(kind)) for kind in analysis.DISAGREEMENT_KINDS}
    assert result.disagreements("human_gold").columns.tolist() == ["text", "human", "gold", "base_prediction",
                                                                     "tuned_prediction"]
    assert result.pairs["gold"]["accuracy"] == pytest.approx(0.9)
    with pytest.raises(ValueError, match="Unknown kind"):
        result.disagreements("fixed")


def test_human_labels_in_columns_named_text_label_and_human(tmp_path):
    """The most common names: they clash with the stored predictions' own `text` column when merged, and the
    file's `label` (its gold) must not be taken for the humans'."""
    predictions = insight.load_predictions(write_run(tmp_path).path)
    human = ["neutral", *GOLD[1:8]]
    humans = pd.DataFrame({"text": [f"text {i}" for i in range(8)], "label": GOLD[:8], "human": human})
    assert analysis.likely_text_column(humans, predictions, "sentence") == "text"
    assert analysis.likely_human_column(list(humans.columns), "text", "label") == "human"
    for label_column, disagreeing in (("label", 0), ("human", 1)):
        result = analysis.human_agreement(humans, "text", label_column, predictions)
        assert result.matched == 8 and result.unmatched == 0
        assert result.disagreement_counts()["human_gold"] == disagreeing
    assert result.pairs["tuned"]["accuracy"] == pytest.approx(np.mean([h == p for h, p in zip(human, PRED, strict=False)]))


def test_unmatched_and_unlabelled_human_rows_are_left_out(tmp_path):
    predictions = insight.load_predictions(write_run(tmp_path).path)
    humans = pd.DataFrame({"text": ["text 0", "text 1", "text 1", "elsewhere", "text 2", "  "],
                           "human": ["negative", "neutral", "positive", "positive", None, "negative"]})
    result = analysis.human_agreement(humans, "text", "human", predictions)
    # "text 1" counts once (its first label), the unlabelled "text 2" and the blank text not at all
    assert (result.matched, result.unmatched) == (2, 1)
    assert result.disagreements("human_gold").empty
    nothing = analysis.human_agreement(humans.assign(text="elsewhere"), "text", "human", predictions)
    assert nothing.matched == 0 and nothing.unmatched == 1
    with pytest.raises(ValueError, match="two columns"):
        analysis.human_agreement(humans, "text", "text", predictions)


def test_the_human_column_is_neither_the_text_nor_the_gold_column():
    guess = analysis.likely_human_column
    assert guess(["sentence", "label", "annotator_2"], "sentence", "label") == "annotator_2"
    assert guess(["text", "label", "Human_Label", "notes"], "text", "label") == "Human_Label"
    assert guess(["text", "label", "notes", "rating"], "text", "label") == "notes"
    assert guess(["text", "label"], "text", "label") == "label"  # nothing else left: the user sees what it is


def test_the_text_column_is_the_one_holding_the_run_texts(tmp_path):
    predictions = insight.load_predictions(write_run(tmp_path).path)
    frame = pd.DataFrame({"id": range(3), "review": ["text 0", "text 1", "x"], "text": ["a", "b", "text 2"]})
    assert analysis.likely_text_column(frame, predictions, "text") == "review"
    assert analysis.likely_text_column(frame.assign(review="none"), predictions, "text") == "text"
    assert analysis.likely_text_column(frame.assign(text="none", review="none"), predictions, "missing") == "id"


# ---- the engine writes the stages -------------------------------------------------------------

def _train(cfg, root):
    from core.run.sink import RunSink
    from core.training import engine

    folder = RunFolder.create(root, f"r-{cfg.task}", cfg)
    status = engine.train(cfg, folder, RunSink(folder, load_existing=False), threading.Event())
    return status, folder


def test_engine_stores_classification_stages_from_the_evaluation_logits(tiny_bert, tmp_path, monkeypatch):
    from tests.test_engine import tiny_config

    passes = []
    real_pass = example_pass.classification_pass
    monkeypatch.setattr(insight, "classification_pass", lambda *a, **k: passes.append(1) or real_pass(*a, **k))
    status, folder = _train(tiny_config(tiny_bert, "classification"), tmp_path)
    assert status == "completed"
    assert insight.list_stages(folder.path) == [("base", None), ("eval", 2), ("eval", 4), ("final", None)]
    assert len(passes) == 1, "only the base stage may cost an extra pass; evaluations reuse the Trainer's logits"
    predictions = insight.load_predictions(folder.path)
    meta = predictions.meta
    assert meta["task"] == "classification" and meta["rows_used"] == meta["rows_total"] > 0 and not meta["sampled"]
    for frame in (predictions.base, predictions.tuned):
        assert {"row", "text", "gold", "predicted", "confidence", "prob:negative", "prob:positive"} <= set(frame.columns)
        assert len(frame) == meta["rows_used"]
        assert np.allclose(frame[["prob:negative", "prob:positive"]].sum(axis=1), 1.0, atol=1e-5)
    # The evaluation logits were put back in row order: the final stage's accuracy is the logged one.
    accuracy = float((predictions.tuned["gold"] == predictions.tuned["predicted"]).mean())
    logged = [m for m in folder.metrics() if "eval_accuracy" in m][-1]["eval_accuracy"]
    assert accuracy == pytest.approx(logged)
    assert (folder.predictions_path / "final.parquet").exists()


def test_engine_stores_mlm_losses_at_base_and_final(tiny_bert, tmp_path):
    from tests.test_engine import tiny_config

    status, folder = _train(tiny_config(tiny_bert, "mlm"), tmp_path)
    assert status == "completed"
    assert insight.list_stages(folder.path) == [("base", None), ("final", None)]
    predictions = insight.load_predictions(folder.path)
    assert predictions.base.columns.tolist() == ["row", "text", "loss"]
    assert np.isfinite(predictions.base["loss"]).all() and np.isfinite(predictions.tuned["loss"]).all()
    changes = analysis.loss_changes(predictions.base, predictions.tuned)
    assert len(changes) == predictions.meta["rows_used"]


def test_mlm_example_losses_are_repeatable_for_the_same_model(tiny_bert, tmp_path):
    import datasets

    from core.config import ModelConfig
    from core.models import load_for_task

    loaded = load_for_task(ModelConfig(source=tiny_bert), "mlm")
    encoded = loaded.tokenizer(["nike shoes are very good", "the socks are nice"], return_special_tokens_mask=True)
    dataset = datasets.Dataset.from_dict(dict(encoded))
    first = example_pass.example_loss_pass(loaded.model, dataset, loaded.tokenizer, "mlm", seed=7)
    again = example_pass.example_loss_pass(loaded.model, dataset, loaded.tokenizer, "mlm", seed=7)
    assert first.shape == (2,) and np.isfinite(first).all() and np.allclose(first, again)


# ---- the per-example passes against the row-order implementation they replaced ------------------

def _reference_example_loss_pass(model, dataset, tokenizer, task, seed, batch_size=8):
    """The pass as it was: row-order batches of 8, the model's full logits at every position."""
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(seed)
    model.eval()
    losses = []
    keep = [c for c in ("input_ids", "attention_mask", "token_type_ids", "special_tokens_mask") if c in dataset.column_names]
    with torch.inference_mode():
        for start in range(0, len(dataset), batch_size):
            rows = dataset[start:start + batch_size]
            batch = tokenizer.pad([{c: rows[c][i] for c in keep} for i in range(len(rows["input_ids"]))], return_tensors="pt")
            input_ids, attention = batch["input_ids"], batch["attention_mask"]
            special = batch.pop("special_tokens_mask", None)
            if task == "mlm":
                maskable = attention.bool() & ~special.bool()
                draw = torch.rand(input_ids.shape, generator=generator)
                chosen = maskable & (draw < example_pass.MLM_MASK_FRACTION)
                lowest = torch.where(maskable, draw, torch.full_like(draw, 2.0)).argmin(dim=1)
                chosen[torch.arange(len(chosen)), lowest] |= maskable[torch.arange(len(chosen)), lowest]
                labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
                masked = torch.where(chosen, torch.full_like(input_ids, tokenizer.mask_token_id), input_ids)
                logits = model(**{**batch, "input_ids": masked}).logits.float()
            else:
                labels = torch.where(attention.bool(), input_ids, torch.full_like(input_ids, -100))
                logits = model(**batch).logits.float()
                logits, labels = logits[:, :-1], labels[:, 1:]
            token_loss = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
            counted = (labels != -100).sum(dim=1)
            losses.append((token_loss.sum(dim=1) / counted.clamp(min=1)).numpy())
    return np.concatenate(losses)


LM_TEXTS = [
    "nike shoes are very good", "the socks are nice", "bad", "great service and a very fast delivery of my order",
    "the box arrived late", "would buy again", "never again: the battery died after two days of normal use",
    "fine", "price and quality are both good", "the screen is too dark", "ok",
    "support answered quickly and fixed the phone the same afternoon",
]


def _lm_dataset(tokenizer, task):
    import datasets

    encoded = tokenizer(LM_TEXTS, return_special_tokens_mask=task == "mlm")
    return datasets.Dataset.from_dict(dict(encoded))


@pytest.mark.parametrize("task", ["mlm", "causal"])
def test_example_losses_match_the_row_order_full_logits_pass(task, tiny_bert, tiny_gpt2, monkeypatch):
    from core.config import ModelConfig
    from core.models import load_for_task

    loaded = load_for_task(ModelConfig(source=tiny_bert if task == "mlm" else tiny_gpt2), task)
    dataset = _lm_dataset(loaded.tokenizer, task)
    expected = _reference_example_loss_pass(loaded.model, dataset, loaded.tokenizer, task, seed=7)
    # Small batches, so length-sorted batching regroups the rows across several batches.
    monkeypatch.setattr(example_pass, "LM_TOKENS_PER_BATCH", 40)
    monkeypatch.setattr(example_pass, "LOGITS_BYTES_PER_BATCH", 40 * 4 * loaded.model.config.vocab_size)
    got = example_pass.example_loss_pass(loaded.model, dataset, loaded.tokenizer, task, seed=7)
    assert got.shape == (len(LM_TEXTS),)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    if task == "mlm":  # the same losses without the masked-only shortcut (a model whose head is not one module)
        monkeypatch.setattr("core.models.fast_mlm.masked_only_parts", lambda model: None)
        full = example_pass.example_loss_pass(loaded.model, dataset, loaded.tokenizer, task, seed=7)
        np.testing.assert_allclose(full, expected, rtol=1e-5, atol=1e-5)


def test_mlm_masks_are_seeded_skip_special_tokens_and_never_leave_a_row_unmasked():
    ids = [[101, 5, 6, 7, 102], [101, 8, 102], [101] + list(range(10, 40)) + [102]] * 4
    special = [[1] + [0] * (len(row) - 2) + [1] for row in ids]
    masks = example_pass.mlm_example_masks(ids, special, seed=3)
    assert [len(m) for m in masks] == [len(row) for row in ids]
    for mask, spec in zip(masks, special, strict=True):
        assert mask.any() and not (mask & np.asarray(spec, bool)).any()  # at least one, never a special token
    again = example_pass.mlm_example_masks(ids, special, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(masks, again, strict=True))
    # Left padding draws the same random numbers, aligned to the row's end as the padded batch was.
    assert example_pass.mlm_example_masks(ids[:1], special[:1], seed=3, padding_side="left")[0].shape == (5,)


def test_classification_probabilities_match_the_row_order_pass(tiny_bert, monkeypatch):
    import torch

    from core.config import ModelConfig
    from core.models import load_for_task

    loaded = load_for_task(ModelConfig(source=tiny_bert), "classification", label_names=["negative", "positive"])
    dataset = _lm_dataset(loaded.tokenizer, "classification")
    loaded.model.eval()
    with torch.inference_mode():
        expected = np.concatenate([
            torch.softmax(loaded.model(**loaded.tokenizer.pad(
                [{c: dataset[i][c] for c in ("input_ids", "attention_mask", "token_type_ids")}], return_tensors="pt"),
            ).logits.float(), dim=-1).numpy() for i in range(len(dataset))])
    monkeypatch.setattr(example_pass, "CLASSIFICATION_TOKENS_PER_BATCH", 40)
    got = example_pass.classification_pass(loaded.model, dataset, loaded.tokenizer)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_language_model_examples_are_a_fixed_sample_of_a_large_eval_set(tiny_bert, tmp_path, monkeypatch):
    import datasets

    from core.config import ModelConfig
    from core.models import load_for_task

    monkeypatch.setattr(insight, "LM_EXAMPLE_ROWS", 5)
    loaded = load_for_task(ModelConfig(source=tiny_bert), "mlm")
    rows = datasets.Dataset.from_dict({"text": LM_TEXTS})
    recorder = insight.PredictionRecorder(tmp_path, "mlm", rows, 40, None, _lm_dataset(loaded.tokenizer, "mlm"),
                                          loaded.tokenizer, seed=7)
    recorder.base(loaded.model)
    predictions = insight.load_predictions(tmp_path)
    assert predictions.base["text"].tolist() == LM_TEXTS[:5]
    assert predictions.meta["rows_used"] == 5 and predictions.meta["rows_total"] == 40 and predictions.sampled
