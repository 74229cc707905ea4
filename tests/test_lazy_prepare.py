"""Lazy data preparation: the same token ids as eager tokenisation, length grouping, tiny runs, Hub streaming."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
import torch

from core.config import RunConfig
from core.data.prepare import LENGTH_COLUMN, length_column, prepare_data
from core.models import load_tokenizer
from core.run.folder import RunFolder
from core.run.sink import RunSink
from core.training import engine
from core.training.batching import length_grouped_indices, sampled_lengths
from core.training.trainer import (
    LogOnlySink,
    build_trainer,
    collator,
    prepare_run,
    tokenize,
    train_sampler,
)


def _file_config(model_dir: str, task: str, path) -> RunConfig:
    cfg = RunConfig(task=task)
    cfg.model.source = model_dir
    cfg.model.max_length = 12  # short enough that some rows are truncated
    cfg.data.source, cfg.data.path = "file", str(path)
    cfg.training.max_steps, cfg.training.batch_size, cfg.training.logging_steps = 3, 8, 1
    cfg.training.learning_rate = 1e-3
    cfg.training.eval_steps = cfg.training.save_steps = 3
    if task == "causal":
        cfg.probes.texts = ["Nike shoes are very"]
    return cfg.validate()


def _rows_file(tmp_path, rows: int = 120):
    rng = np.random.default_rng(0)
    words = "the shoes were great terrible comfy and I would buy them again never Nike Adidas run fast".split()
    texts = [f"review {i}: " + " ".join(rng.choice(words, size=int(rng.integers(2, 14)))) for i in range(rows)]
    path = tmp_path / "rows.csv"
    pd.DataFrame({"text": texts, "label": ["positive" if i % 3 else "negative" for i in range(rows)]}).to_csv(path, index=False)
    return path


def _both(cfg: RunConfig):
    tokenizer, max_length = load_tokenizer(cfg.model)
    data = prepare_data(cfg, tokenizer, max_length=max_length)
    eager = tokenize(data.train, tokenizer, cfg, max_length, "training")
    lazy = tokenize(data.train, tokenizer, cfg, max_length, "training", lazy=True)
    return tokenizer, data, eager, lazy


@pytest.mark.parametrize("task", ["mlm", "classification", "causal"])
def test_lazy_rows_are_the_eager_rows(task, tiny_bert, tiny_gpt2, tmp_path):
    cfg = _file_config(tiny_gpt2 if task == "causal" else tiny_bert, task, _rows_file(tmp_path))
    tokenizer, data, eager, lazy = _both(cfg)
    assert "input_ids" not in lazy.column_names and LENGTH_COLUMN in lazy.column_names  # nothing tokenised yet
    assert len(lazy) == len(eager) == len(data.train)
    indices = [5, 0, 17, 3, 42, 11, 8, 29]  # a batch as a sampler asks for it
    fetched = lazy.__getitems__(indices)  # what the DataLoader calls
    expected = [eager[i] for i in indices]
    assert fetched == expected
    assert [lazy[i] for i in indices] == expected
    assert max(len(row["input_ids"]) for row in eager) == cfg.model.max_length  # truncation kept
    if task == "classification":
        assert [row["labels"] for row in fetched] == [data.train[i]["label"] for i in indices]
    if task == "mlm":
        assert all("special_tokens_mask" in row for row in fetched)
    else:  # past the masking, the collated batches are identical too
        collate = collator(cfg, tokenizer)
        a, b = collate(fetched), collate(expected)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert "labels" in a


def test_mlm_collator_masks_the_lazy_batch_like_the_eager_one(tiny_bert, tmp_path):
    cfg = _file_config(tiny_bert, "mlm", _rows_file(tmp_path))
    tokenizer, _, eager, lazy = _both(cfg)
    collate = collator(cfg, tokenizer)
    rows = list(range(16))
    torch.manual_seed(0)
    a = collate(lazy.__getitems__(rows))
    torch.manual_seed(0)
    b = collate([eager[i] for i in rows])
    assert all(torch.equal(a[k], b[k]) for k in ("input_ids", "labels", "attention_mask"))


def test_length_grouped_sampler_uses_text_lengths_and_groups(tiny_bert, tmp_path):
    cfg = _file_config(tiny_bert, "classification", _rows_file(tmp_path, rows=400))
    cfg.data.validation_fraction = 0.0
    folder = RunFolder.create(tmp_path / "runs", "lazy-sampler", cfg)
    prepared = prepare_run(cfg, folder, LogOnlySink(None), is_main=False)
    texts = list(prepared.train_dataset.with_format(None).remove_columns([LENGTH_COLUMN])["text"])
    lengths = length_column(prepared.train_dataset)
    assert lengths == [len(t) for t in texts]
    trainer = build_trainer(cfg, folder, prepared, "cpu", has_eval=False)
    sampler = train_sampler(trainer)
    assert list(sampler.lengths) == lengths
    order = list(iter(sampler))
    assert sorted(order) == list(range(len(lengths)))
    batch = cfg.training.batch_size

    def spread(indices):  # mean (longest - shortest) text length within a batch
        return np.mean([np.ptp([lengths[i] for i in indices[s:s + batch]]) for s in range(0, len(indices), batch)])

    shuffled = list(np.random.default_rng(0).permutation(len(lengths)))
    assert spread(order) < 0.5 * spread(shuffled)
    first = next(iter(trainer.get_train_dataloader()))
    assert first["input_ids"].shape[0] == batch and "labels" in first


@pytest.mark.parametrize("rows, batch", [(1, 32), (7, 4), (400, 8), (20_000, 32)])
def test_length_grouped_order_is_transformers_order(rows, batch):
    from transformers.trainer_pt_utils import get_length_grouped_indices

    lengths = np.random.default_rng(rows).integers(0, 40, size=rows).tolist()  # many ties: their order counts
    torch.manual_seed(5)
    expected = get_length_grouped_indices(lengths, batch)
    torch.manual_seed(5)
    assert length_grouped_indices(lengths, batch) == expected
    assert length_grouped_indices(lengths, batch, torch.Generator().manual_seed(2)) == \
        get_length_grouped_indices(lengths, batch, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("task", ["mlm", "classification", "causal"])
def test_tiny_run_trains_on_lazily_tokenised_rows(task, tiny_bert, tiny_gpt2, tmp_path):
    cfg = _file_config(tiny_gpt2 if task == "causal" else tiny_bert, task, _rows_file(tmp_path))
    folder = RunFolder.create(tmp_path / "runs", f"lazy-{task}", cfg)
    status = engine.train(cfg, folder, RunSink(folder), threading.Event())
    assert status == "completed"
    losses = [m["loss"] for m in folder.metrics() if "loss" in m]
    assert len(losses) == 3 and all(np.isfinite(losses))
    speed = folder.status()["speed"]
    assert speed is None or speed["tokens_per_s"] > 0
    assert any("eval_loss" in m for m in folder.metrics())


def test_sampled_lengths_tokenise_only_a_sample(tiny_bert, tmp_path):
    cfg = _file_config(tiny_bert, "mlm", _rows_file(tmp_path, rows=300))
    _, _, eager, lazy = _both(cfg)
    exact = [len(row["input_ids"]) for row in eager]
    assert sampled_lengths(lazy) == exact
    sampled = sampled_lengths(lazy, limit=50)
    assert len(sampled) == 50 and set(sampled) <= set(exact)


# ---- Hub datasets: streamed past a size threshold ------------------------------------------

def _online(monkeypatch):
    from datasets import config as ds_config

    from core.models import hub

    monkeypatch.setattr(ds_config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "hub_offline", lambda: False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: True)


def test_a_large_hub_split_is_streamed_up_to_the_row_cap(monkeypatch):
    import datasets

    from core.data import hub_datasets
    from core.data.rows import hub_row_cap, load_frame

    _online(monkeypatch)
    calls = []

    def rows():
        for i in range(50_000):
            yield {"text": f"streamed review {i}", "label": i % 2}

    def fake_load_dataset(name, split=None, streaming=False, **kwargs):
        calls.append({"name": name, "split": split, "streaming": streaming})
        assert streaming, "a split past the threshold must not be downloaded whole"
        return datasets.IterableDataset.from_generator(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(hub_datasets, "hub_split_bytes", lambda name, split: 40 * 1024**3)
    cfg = RunConfig(task="classification")
    cfg.data.source, cfg.data.path, cfg.data.max_rows = "hub", "someone/huge", 900
    frame = load_frame(cfg.data)
    assert calls == [{"name": "someone/huge", "split": "train", "streaming": True}]
    assert len(frame) == hub_row_cap(cfg.data) == 1000  # 900 training rows + the 10% validation share
    assert frame["text"].iloc[0] == "streamed review 0" and frame.attrs["read_report"]["streamed"] is True
    assert "first 1,000 rows" in frame.attrs["read_report"]["warnings"][0]
    data = prepare_data(cfg)
    assert len(data.train) == 900

    cfg.data.max_rows = None  # no cap of the user's: the streaming cap applies
    monkeypatch.setattr(hub_datasets, "HUB_STREAMED_ROWS", 2500)
    frame = load_frame(cfg.data)
    assert len(frame) == 2500 and "streaming cap" in frame.attrs["read_report"]["warnings"][0]


def test_a_small_hub_split_is_loaded_whole(monkeypatch):
    import datasets

    from core.data import hub_datasets

    _online(monkeypatch)

    def fake_load_dataset(name, split=None, streaming=False, **kwargs):
        assert not streaming
        return datasets.Dataset.from_dict({"text": ["a b", "c d", "e f"]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(hub_datasets, "hub_split_bytes", lambda name, split: 1024)
    frame = hub_datasets.load_hub_dataset("someone/small", "train", max_rows=2)
    assert len(frame) == 3 and "streamed" not in frame.attrs["read_report"]


# ---- the too-long check at scale: tokenise only rows that could be too long -------------------

def test_the_too_long_bound_never_skips_a_row_that_is_too_long(tiny_bert, tiny_gpt2):
    from core.data.cells import arrow_text, token_lengths
    from core.data.integrity import may_exceed

    rng = np.random.default_rng(1)
    words = ["a", "Nike", "shoes", "!!", "x1y2z3", "comfy,", "héllo", "naïve", "日本", "😀", "  ", "\t", "zzzzzzqq"]
    texts = arrow_text(pd.Series([" ".join(rng.choice(words, size=int(rng.integers(1, 20)))) for _ in range(600)]))
    for model in (tiny_bert, tiny_gpt2):
        tokenizer, _ = _tokenizer(model)
        lengths = token_lengths(tokenizer, texts.tolist())
        for limit in (4, 8, 16, 32):
            may = may_exceed(texts, tokenizer, limit)
            assert not ((lengths > limit) & ~may).any(), (model, limit)
            assert may.sum() < len(texts) or limit == 4  # the bound does skip rows


def _tokenizer(model_dir: str):
    cfg = RunConfig()
    cfg.model.source = model_dir
    return load_tokenizer(cfg.model)


def test_past_the_exact_budget_truncation_is_estimated_from_a_sample(tiny_bert, monkeypatch):
    from core.config import DataConfig
    from core.data import integrity

    tokenizer, _ = _tokenizer(tiny_bert)
    texts = [f"row {i} " + "shoes " * (3 if i % 4 else 30) for i in range(400)]
    frame = pd.DataFrame({"text": texts})
    exact = integrity.curate(frame, DataConfig(), "mlm", tokenizer, max_length=16)
    entry = next(c for c in exact.report["checks"] if c["check"] == "too_long")
    assert entry["failed"] == 100 and "estimated" not in entry

    monkeypatch.setattr(integrity, "TOO_LONG_EXACT_ROWS", 50)
    monkeypatch.setattr(integrity, "TOO_LONG_SAMPLE_ROWS", 80)
    sampled = integrity.curate(frame, DataConfig(), "mlm", tokenizer, max_length=16)
    entry = next(c for c in sampled.report["checks"] if c["check"] == "too_long")
    assert entry["estimated"] is True and 40 <= entry["failed"] <= 160 and "sample of 80" in entry["detail"]
    assert len(sampled.kept) == 400 and sampled.kept["text"].tolist() == texts  # the engine truncates them

    drop = DataConfig()
    drop.curation.too_long = "drop"
    dropped = integrity.curate(frame, drop, "mlm", tokenizer, max_length=16)
    assert len(dropped.kept) == 300  # "drop" is always exact, whatever the size


@pytest.mark.parametrize(("rows", "fraction", "seed"), [(2, 0.5, 0), (10, 0.1, 42), (1000, 0.1, 42), (12345, 0.25, 7)])
def test_the_random_split_is_the_one_sklearn_draws(rows, fraction, seed):
    from sklearn.model_selection import train_test_split

    from core.data.prepare import split_positions

    train, held, how = split_positions(rows, None, fraction, seed, [])
    positions = np.arange(rows)
    expected_train, expected_held = train_test_split(positions, test_size=len(held), random_state=seed, shuffle=True)
    assert how == "random" and len(held) == min(max(round(rows * fraction), 1), rows - 1)
    assert np.array_equal(train, np.sort(expected_train)) and np.array_equal(held, np.sort(expected_held))
