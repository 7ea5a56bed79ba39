"""Tiny local causal LMs with locally trained tokenizers, for tests and the offline demo.

Why: the machine has no Hugging Face Hub, and the engine must be exercised with two
students whose tokenizers *differ* (different segmentation, special tokens, chat
templates), because label masking, cross-tokenizer peer losses and evaluation all break
in ways a single shared tokenizer would hide. Each architecture gets its own tokenizer:

- ``llama``: byte-level BPE, ``<s>``/``</s>``/``<pad>``, ``[INST]``-style template.
- ``qwen2``: byte-level **Unigram**, ``<|im_start|>``/``<|im_end|>`` ChatML template.
- ``gpt2``:  byte-level BPE with a smaller vocabulary (3/4 of ``vocab_size``),
  ``<|endoftext|>`` + a separate ``<|pad|>``, plain ``User:/Assistant:`` template.

Byte-level pre-tokenisation everywhere, so any text round-trips through ``decode`` and
fast tokenizers return exact character offsets.
"""

from __future__ import annotations

import random
from pathlib import Path

ARCHS = ("llama", "qwen2", "gpt2")

_TEMPLATES = {
    "llama": (
        "{{ bos_token }}{% for m in messages %}"
        "{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
        "{% elif m['role'] == 'system' %}<<SYS>>{{ m['content'] }}<</SYS>>"
        "{% else %} {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %} {% endif %}"
    ),
    "qwen2": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    "gpt2": (
        "{% for m in messages %}{% if m['role'] == 'user' %}User: {{ m['content'] }}\n"
        "{% elif m['role'] == 'system' %}{{ m['content'] }}\n"
        "{% else %}Assistant: {{ m['content'] }}{{ eos_token }}\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}Assistant:{% endif %}"
    ),
}

_SPECIALS = {
    # arch: (bos, eos, pad, unk, extra)
    "llama": ("<s>", "</s>", "<pad>", "<unk>", []),
    "qwen2": ("<|endoftext|>", "<|im_end|>", "<|endoftext|>", None, ["<|im_start|>"]),
    "gpt2": ("<|endoftext|>", "<|endoftext|>", "<|pad|>", None, []),
}


def default_corpus(n: int = 400, seed: int = 1234) -> list[str]:
    """A deterministic small corpus of arithmetic word problems and reasoning text.

    It covers digits, operators, ``\\boxed{}``, MCQ letters and yes/no/NLI words, so the
    tokenizers trained on it segment every task's answers into sensible pieces.
    """
    rng = random.Random(seed)
    names = ["Ann", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "June"]
    things = ["apples", "books", "coins", "pens", "eggs", "cards", "shells", "stamps"]
    out = []
    for i in range(n):
        a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 9)
        who, what = rng.choice(names), rng.choice(things)
        q = (f"{who} has {a} {what}. {who} buys {b} more and then gives away {c} times as many as "
             f"{c} friends want. How many {what} does {who} have?")
        ans = a + b - c * c
        style = rng.choice(["Let's think step by step.", "Step 1:", "We write code:", "First,"])
        r = (f"{style} {who} starts with {a} {what}. After buying {b}, {who} has {a} + {b} = {a + b}. "
             f"Giving away {c} * {c} = {c * c} leaves {a + b} - {c * c} = {ans}. "
             f"The answer is \\boxed{{{ans}}}.")
        out.append(q)
        out.append(r)
        if i % 5 == 0:
            out.append("Question: Which is larger? Answer Choices: (A) 12 (B) 7 (C) 3 (D) 0 (E) 1. "
                       "The answer is (A). Yes. No. True. False. Neither. entailment neutral contradiction")
            out.append("def solution():\n    x = 3 * 4\n    return x\nprint(solution())  # 12")
    return out


TOKENIZER_MODELS = ("auto", "bpe", "unigram")


def train_tokenizer(arch: str, corpus: list[str], *, vocab_size: int = 512, max_positions: int = 512,
                    truncation_side: str = "right", model: str = "auto"):
    """Train the tokenizer of a tiny ``arch`` student on ``corpus``: the arch's special tokens and
    chat template, byte-level pre-tokenisation, and a BPE or Unigram model.

    ``model="auto"`` is the arch's own choice (Unigram for qwen2, BPE otherwise); ``"bpe"`` or
    ``"unigram"`` force one. Why force BPE: on a narrow corpus the Unigram trainer stops far below
    ``vocab_size`` (~380 pieces of 1024 on the demo's arith text) and splits text much finer than BPE.
    gpt2 keeps its smaller BPE vocabulary (3/4 of ``vocab_size``) either way.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if arch not in ARCHS:
        raise ValueError(f"unknown tiny arch {arch!r}; choose one of {', '.join(ARCHS)}")
    if model not in TOKENIZER_MODELS:
        raise ValueError(f"unknown tokenizer model {model!r}; choose one of {', '.join(TOKENIZER_MODELS)}")
    kind = ("unigram" if arch == "qwen2" else "bpe") if model == "auto" else model
    bos, eos, pad, unk, extra = _SPECIALS[arch]
    specials = list(dict.fromkeys([t for t in (bos, eos, pad, unk) if t] + extra))
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if kind == "unigram":
        tok = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials,
                                          initial_alphabet=alphabet, shrinking_factor=0.75,
                                          max_piece_length=8, show_progress=False)
    else:
        size = vocab_size if arch != "gpt2" else max(len(alphabet) + len(specials) + 16, vocab_size * 3 // 4)
        tok = Tokenizer(models.BPE(unk_token=unk) if unk else models.BPE())
        trainer = trainers.BpeTrainer(vocab_size=size, special_tokens=specials, initial_alphabet=alphabet,
                                      min_frequency=1, show_progress=False)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad, unk_token=unk,
        additional_special_tokens=[t for t in extra], model_max_length=max_positions,
        truncation_side=truncation_side, padding_side="right", clean_up_tokenization_spaces=False,
    )
    fast.chat_template = _TEMPLATES[arch]
    return fast


def _model_config(arch: str, tok, *, hidden: int, layers: int, heads: int, max_positions: int):
    vocab = len(tok)
    ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    if arch == "llama":
        from transformers import LlamaConfig
        return LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 2,
                           num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                           max_position_embeddings=max_positions, tie_word_embeddings=False, **ids)
    if arch == "qwen2":
        from transformers import Qwen2Config
        return Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 2,
                           num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                           max_position_embeddings=max_positions, tie_word_embeddings=True, **ids)
    if arch == "gpt2":
        from transformers import GPT2Config
        return GPT2Config(vocab_size=vocab, n_embd=hidden, n_layer=layers, n_head=heads,
                          n_positions=max_positions, **ids)
    raise ValueError(f"unknown tiny arch {arch!r}; choose one of {', '.join(ARCHS)}")


def make_tiny_student(out_dir, arch: str = "llama", *, corpus: list[str] | None = None,
                      vocab_size: int = 512, hidden: int = 64, layers: int = 2, heads: int = 4,
                      max_positions: int = 512, truncation_side: str = "right", seed: int = 0,
                      tokenizer: str = "auto") -> Path:
    """Build a randomly initialised tiny causal LM + its own tokenizer and save both to ``out_dir``.

    The folder is an ordinary Hugging Face model folder (``config.json``, weights,
    ``tokenizer.json``, chat template), loadable with ``AutoModelForCausalLM`` and
    :func:`distill.students.tokenizer.load_tokenizer`. Deterministic for a given ``seed``.
    ``tokenizer`` is :func:`train_tokenizer`'s ``model`` (``auto``, ``bpe`` or ``unigram``).
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown tiny arch {arch!r}; choose one of {', '.join(ARCHS)}")
    import torch
    from transformers import AutoModelForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(arch, corpus or default_corpus(), vocab_size=vocab_size, max_positions=max_positions,
                          truncation_side=truncation_side, model=tokenizer)
    cfg = _model_config(arch, tok, hidden=hidden, layers=layers, heads=heads, max_positions=max_positions)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.bos_token_id = tok.bos_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
