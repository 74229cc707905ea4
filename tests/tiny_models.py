"""Tiny models for tests: a BERT and a GPT-2 built from a config, with tokenizers trained here.

Plain functions, no pytest: `tiny_bert_dir(folder)` and `tiny_gpt2_dir(folder)` write a complete
model folder (config.json, model.safetensors, tokenizer files) under `folder` and return its path,
usable as `ModelConfig.source`. Hidden size 32, 2 layers, 2 heads, so a forward pass costs
microseconds. Each kind is built once per process and then copied.
"""

from __future__ import annotations

import atexit
import itertools
import shutil
import tempfile
from pathlib import Path

# Synthetic review sentences, self-contained so these builders do not depend on core.data. They
# cover the words of the default probes (see core.config.DEFAULT_*_PROBES).
_BRANDS = ["Nike", "Adidas", "Puma", "Reebok", "Asics"]
_PRODUCTS = ["shoes", "athletic wear", "tshirts", "trousers", "hoodies", "socks", "jackets"]
_JOINERS = ["are very", "are famous for being", "are known to be", "is known for being very"]
_POSITIVE = ["comfortable", "stylish", "durable", "cheap", "light", "great"]
_NEGATIVE = ["expensive", "flimsy", "ugly", "heavy", "uncomfortable", "bad"]
_EXTRA = [
    "Trousers and Hoodies made by Nike are not very expensive",
    "Nike running shoes are very comfortable",
    "Adidas hoodies are known to be stylish",
    "Nike tshirts are famous for being cheap and flimsy",
    "Nike athletic wear is known for being very durable",
]

TINY_HIDDEN = 32
TINY_LAYERS = 2
TINY_HEADS = 2
TINY_INTERMEDIATE = 64
TINY_POSITIONS = 128

_BUILT: dict[str, Path] = {}  # kind -> folder holding the built model, reused within a process


def review_sentences() -> list[str]:
    """About a thousand deterministic review sentences (every brand x product x joiner x adjective)."""
    sentences = list(_EXTRA)
    for brand, product, joiner, adjective in itertools.product(
        _BRANDS, _PRODUCTS, _JOINERS, _POSITIVE + _NEGATIVE
    ):
        sentences.append(f"{brand} {product} {joiner} {adjective}")
    return sentences


def tiny_bert_dir(folder: str | Path, *, mask_token: bool = True, safetensors: bool = True) -> Path:
    """Write a tiny BertForMaskedLM with a WordPiece tokenizer under `folder`; return the model folder.

    mask_token=False drops [MASK] from the tokenizer (an MLM-unfit tokenizer); safetensors=False
    writes only pickled `pytorch_model.bin` weights (for the safetensors-only rule).
    """
    name = "tiny-bert" + ("" if mask_token else "-nomask") + ("" if safetensors else "-pickle")
    return _copy(_built("bert", mask_token=mask_token, safetensors=safetensors), Path(folder) / name)


def tiny_gpt2_dir(folder: str | Path) -> Path:
    """Write a tiny GPT2LMHeadModel with a byte-level BPE tokenizer (no pad token) under `folder`."""
    return _copy(_built("gpt2"), Path(folder) / "tiny-gpt2")


# ---- builders ------------------------------------------------------------------------------

def _built(kind: str, **options: bool) -> Path:
    key = kind + "".join(f"-{k}={v}" for k, v in sorted(options.items()))
    if key not in _BUILT or not (_BUILT[key] / "config.json").exists():
        out = Path(tempfile.mkdtemp(prefix=f"tuneboard-tiny-{kind}-"))
        atexit.register(shutil.rmtree, out, True)  # the per-process cache goes with the process
        if kind == "bert":
            _build_bert(out, **options)
        else:
            _build_gpt2(out)
        _BUILT[key] = out
    return _BUILT[key]


def _copy(source: Path, target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    return target


def _build_bert(out: Path, *, mask_token: bool = True, safetensors: bool = True) -> None:
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + (["[MASK]"] if mask_token else [])
    trainer_tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    trainer_tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    trainer_tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    alphabet = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-")
    trainer = trainers.WordPieceTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=alphabet, show_progress=False
    )
    trainer_tok.train_from_iterator(review_sentences(), trainer=trainer)
    vocab = trainer_tok.get_vocab()
    kwargs = {} if mask_token else {"mask_token": None}
    tokenizer = BertTokenizer(vocab=vocab, model_max_length=TINY_POSITIONS, **kwargs)
    if not mask_token:
        tokenizer.mask_token = None

    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=TINY_HIDDEN,
        num_hidden_layers=TINY_LAYERS,
        num_attention_heads=TINY_HEADS,
        intermediate_size=TINY_INTERMEDIATE,
        max_position_embeddings=TINY_POSITIONS,
        pad_token_id=vocab["[PAD]"],
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = BertForMaskedLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if not safetensors:
        _to_pickle(model, out)


def _build_gpt2(out: Path) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

    eos = "<|endoftext|>"
    trainer_tok = Tokenizer(models.BPE())
    trainer_tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer_tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=[eos],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    trainer_tok.train_from_iterator(review_sentences(), trainer=trainer)
    vocab = trainer_tok.get_vocab()
    merges = [tuple(pair) if isinstance(pair, list) else tuple(pair.split(" ")) for pair in _merges(trainer_tok)]
    tokenizer = GPT2Tokenizer(vocab=vocab, merges=merges, model_max_length=TINY_POSITIONS)

    config = GPT2Config(
        vocab_size=len(vocab),
        n_embd=TINY_HIDDEN,
        n_layer=TINY_LAYERS,
        n_head=TINY_HEADS,
        n_inner=TINY_INTERMEDIATE,
        n_positions=TINY_POSITIONS,
        bos_token_id=vocab[eos],
        eos_token_id=vocab[eos],
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = GPT2LMHeadModel(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _merges(tokenizer) -> list:
    import json

    return json.loads(tokenizer.to_str())["model"]["merges"]


def _to_pickle(model, out: Path) -> None:
    """Replace model.safetensors by a pickled pytorch_model.bin (what old Hub repos ship)."""
    import torch

    for path in out.glob("*.safetensors"):
        path.unlink()
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
    torch.save(state, out / "pytorch_model.bin")


def chat_tokenizer(corpus: list[str], *, vocab_size: int, chat_template: str | None, **extra):
    """A small byte-level BPE tokenizer trained on `corpus`, with ChatML's special tokens and `chat_template`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    bpe.train_from_iterator(corpus * 5, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", chat_template=chat_template, **extra)


# ChatML, as SmolLM2-Instruct writes a chat (without its default system turn).
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def tiny_chat_llama_dir(folder: str | Path, *, tied: bool = True) -> Path:
    """Write a tiny LlamaForCausalLM (4 query heads sharing 2 key/value heads, as SmolLM2 shares them) with a ChatML
    tokenizer under `folder`; return the model folder. tied=False gives it a separate LM head."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    corpus = review_sentences()[:200] + ["Classify the text into one of: negative, positive.", "Text:",
                                         "Answer with the category name only.", "system user assistant"]
    tokenizer = chat_tokenizer(corpus, vocab_size=400, chat_template=CHATML, model_max_length=256)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=TINY_HIDDEN, intermediate_size=TINY_INTERMEDIATE,
                         num_hidden_layers=TINY_LAYERS, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=256, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=tied)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    out = Path(folder) / ("tiny-chat-llama" + ("" if tied else "-untied"))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
