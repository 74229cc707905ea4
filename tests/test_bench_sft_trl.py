"""The logic of bench/bench_sft_trl.py and the SFT part of bench/gpu_check.py, on tiny models: no timing asserted.

What a step costs (weights per kind, FLOPs per batch), which TRL precisions run, the interleaving, the
summary's baseline / ratio / loss check, the shared held-out loss, and gpu_check's SFT plan without a GPU.
"""

from __future__ import annotations

import pytest

from tests.tiny_models import tiny_chat_llama_dir


@pytest.fixture(scope="module")
def chat_llama(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_chat_llama_dir(tmp_path_factory.mktemp("sft-trl"))
    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


def test_model_costs_split_base_weights_head_and_adapters(chat_llama):
    import copy

    from peft import LoraConfig, get_peft_model

    from bench.bench_sft_trl import model_costs
    from core.training.strategies import block_linear_names

    model, tokenizer = chat_llama
    # hidden 32, MLP 64, 4 query heads of 8 sharing 2 key/value heads: q, o 32x32; k, v 32x16; gate, up, down 32x64.
    per_layer = 2 * 32 * 32 + 2 * 32 * 16 + 3 * 32 * 64
    costs = model_costs(model)
    assert (costs.body, costs.head, costs.adapters) == (2 * per_layer, len(tokenizer) * 32, 0)
    assert (costs.layers, costs.width) == (2, 32)
    lora = get_peft_model(copy.deepcopy(model), LoraConfig(r=8, target_modules=block_linear_names(model)))
    adapters = 8 * (2 * (32 + 32) + 2 * (32 + 16) + 3 * (32 + 64))  # r x (in + out) per adapted layer
    assert model_costs(lora) == costs.__class__(body=costs.body, head=costs.head, adapters=2 * adapters,
                                                layers=2, width=32)


def test_batch_stats_and_step_flops():
    import torch

    from bench.bench_sft_trl import ModelCosts, batch_stats, train_flops

    batch = {"input_ids": torch.zeros(2, 5, dtype=torch.long),
             "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]),
             "labels": torch.tensor([[-100, -100, -100, 7, 8], [-100, -100, 9, -100, -100]])}
    stats = batch_stats(batch)
    assert stats == {"rows": 2, "padded": 10, "tokens": 8, "trained": 3, "attention": 25 + 9}
    costs = ModelCosts(body=100, head=50, adapters=10, layers=2, width=4)
    body, adapters, attention, head = 2 * 100 * 8, 2 * 10 * 8, 4 * 4 * 2 * 34, 2 * 50 * 3
    assert train_flops(costs, stats, "full") == 3 * (body + adapters + attention + head)
    # frozen base and head: input gradients only (backward = forward); adapters and attention: backward = 2x forward
    assert train_flops(costs, stats, "lora") == 2 * body + 3 * adapters + 3 * attention + 2 * head


def test_held_out_loss_is_the_token_mean_over_every_answer(chat_llama):
    import torch
    from transformers import DataCollatorForSeq2Seq

    from bench.bench_sft_trl import held_out_loss
    from core.data.instructions import encode_conversation, training_chat_template

    model, tokenizer = chat_llama
    chats = [{"messages": [{"role": "system", "content": "Answer with the category name only."},
                           {"role": "user", "content": text},
                           {"role": "assistant", "content": answer}]}
             for text, answer in (("Nike shoes are very comfortable", "positive"),
                                  ("Puma socks are flimsy", "negative"),
                                  ("Asics hoodies are known to be stylish and light", "positive"))]
    model.train()
    loss, tokens = held_out_loss(model, tokenizer, chats, max_length=128, batch_size=1)
    assert model.training  # left as it was found
    model.eval()
    template = training_chat_template(tokenizer)
    rows = [{k: e[k] for k in ("input_ids", "attention_mask", "labels")}
            for e in (encode_conversation(tokenizer, c["messages"], 128, chat_template=template) for c in chats)]
    batch = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)(rows)
    with torch.no_grad():
        reference = model(**batch).loss  # one batch: the mean over every trained token of the three chats
    assert tokens == int((batch["labels"][:, 1:] != -100).sum())
    assert loss == pytest.approx(float(reference), rel=1e-4)


def test_chats_become_trl_prompt_completion_rows():
    from bench.bench_sft_trl import prompt_completion

    chat = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                         {"role": "assistant", "content": "a"}]}
    row = prompt_completion(chat)
    assert row["prompt"] == chat["messages"][:2] and row["completion"] == chat["messages"][2:]


def test_trl_bf16_runs_only_where_its_matmuls_could_win():
    from bench.bench_sft_trl import trl_precisions

    assert trl_precisions(["auto"], {"fp32": 160e9, "bf16": 400e9}) == (["fp32", "bf16"], None)
    kept, why = trl_precisions(["auto"], {"fp32": 100e9, "bf16": 0.4e9})
    assert kept == ["fp32"] and "0.4 GFLOP/s" in why and "--trl-precisions" in why
    assert trl_precisions(["bf16", "fp32"], {"fp32": 100e9, "bf16": 0.4e9}) == (["fp32", "bf16"], None)


def test_conditions_interleave_and_reverse_every_other_repeat():
    from bench.bench_sft_trl import interleaved

    pairs = [("lora", "tuneboard"), ("lora", "trl-fp32"), ("full", "tuneboard"), ("full", "trl-fp32")]
    assert interleaved(pairs, 0) == pairs
    assert interleaved(pairs, 1) == pairs[::-1]
    assert interleaved(pairs, 2) == pairs


def _run(samples: float, loss: float, precision: str = "fp32") -> dict:
    return {"samples_per_s": samples, "flops": samples * 1e9, "seconds": 1.0, "precision": precision,
            "eval_loss": loss, "tokens_per_row": 80.0, "padded_per_row": 84.0, "trained_per_row": 4.0,
            "trainable_params": 10, "attention": "sdpa", "threads": 2}


def test_summary_takes_the_faster_trl_precision_per_repeat_as_baseline():
    from bench.bench_sft_trl import summarise

    runs = {"tuneboard": [_run(2.0, 1.00), _run(3.0, 1.00)],
            "trl-fp32": [_run(1.0, 1.01), _run(1.0, 1.01)],
            "trl-bf16": [_run(0.5, 1.02, "bf16"), _run(2.0, 1.02, "bf16")]}
    s = summarise("lora", runs, {"fp32": 10e9, "bf16": 20e9})
    assert s["baseline"] == "trl-bf16"  # median 1.25 against fp32's 1.0
    assert s["ratio_per_repeat"] == [2.0, 1.5]  # repeat 1 against fp32 (1.0), repeat 2 against bf16 (2.0)
    assert s["ratio"] == 1.75 and s["target"] == 2.0 and not s["target_met"]
    assert s["eval_loss_gap"] == pytest.approx((1.00 - 1.02) / 1.02, abs=1e-4) and s["eval_loss_within"]
    tuneboard = s["conditions"]["tuneboard"]
    assert tuneboard["mfu"] == pytest.approx(2.5e9 / 10e9) and tuneboard["mfu_vs_best_peak"] == pytest.approx(2.5e9 / 20e9)
    assert s["conditions"]["trl-bf16"]["mfu"] == pytest.approx(1.25e9 / 20e9)


def test_summary_flags_an_eval_loss_off_by_more_than_two_percent():
    from bench.bench_sft_trl import summarise

    runs = {"tuneboard": [_run(3.2, 1.05)], "trl-fp32": [_run(2.0, 1.00)]}
    s = summarise("full", runs, {"fp32": 10e9, "bf16": 1e9})
    assert s["target_met"] and s["ratio"] == 1.6 and not s["eval_loss_within"]


def test_gpu_check_plans_one_sft_run_per_strategy_and_skips_without_cuda(tmp_path, monkeypatch):
    from bench import gpu_check

    assert gpu_check.planned_runs(["causal", "sft"], ["lora", "full"]) == [
        ("causal", None), ("sft", "lora"), ("sft", "full")]
    assert gpu_check.model_flops_per_s(100, 10.0) == 6000.0
    monkeypatch.setattr(gpu_check, "cuda_missing", lambda: "no CUDA device is visible to torch")
    assert gpu_check.main(["--tasks", "sft", "--sft-strategies", "lora", "full", "--out", str(tmp_path)]) is None
    assert list(tmp_path.iterdir()) == []


def test_gpu_check_sft_flops_per_chat_agree_with_the_bench_batches(tmp_path, chat_llama):
    import json

    from transformers import DataCollatorForSeq2Seq

    from bench.bench_sft_trl import batch_stats, model_costs, train_flops
    from bench.gpu_check import sft_flops_per_row
    from core.config import RunConfig
    from core.data.instructions import encode_conversation, training_chat_template
    from tests.tiny_models import tiny_chat_llama_dir

    model, tokenizer = chat_llama
    chats = [{"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]}
             for text, answer in (("Nike shoes are very comfortable", "positive"), ("Puma socks are flimsy", "negative"))]
    data = tmp_path / "chats.jsonl"
    data.write_text("".join(json.dumps(chat) + "\n" for chat in chats), encoding="utf-8")
    cfg = RunConfig(task="sft")
    cfg.model.source, cfg.data.source, cfg.data.path = str(tiny_chat_llama_dir(tmp_path)), "file", str(data)
    template, collate = training_chat_template(tokenizer), DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)
    costs = model_costs(model)
    for strategy, adapters in (("full", 0), ("lora", 1000)):
        expected = sum(
            train_flops(costs.__class__(costs.body, costs.head, adapters, costs.layers, costs.width),
                        batch_stats(collate([{k: e[k] for k in ("input_ids", "attention_mask", "labels")}])), strategy)
            for e in (encode_conversation(tokenizer, c["messages"], 256, chat_template=template) for c in chats)) / 2
        assert sft_flops_per_row(cfg, strategy, adapters) == pytest.approx(expected)
