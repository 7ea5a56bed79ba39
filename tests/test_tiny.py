"""The tiny-model factory produces ordinary HF folders with distinct, working tokenizers."""

from __future__ import annotations

import pytest


def test_tiny_models_load_generate_and_have_distinct_tokenizers(tiny_llama, tiny_qwen2, tiny_gpt2):
    import torch
    from transformers import AutoModelForCausalLM

    from distill.students.tokenizer import load_tokenizer

    text = "Ann has 12 apples. The answer is \\boxed{17}."
    pieces = {}
    for path in (tiny_llama, tiny_qwen2, tiny_gpt2):
        tok = load_tokenizer(path)
        model = AutoModelForCausalLM.from_pretrained(path)
        assert tok.pad_token_id is not None and tok.eos_token_id is not None
        assert model.config.vocab_size == len(tok)
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        # byte-level: exact round trip and offsets that tile the text
        assert tok.decode(enc["input_ids"]) == text
        assert "".join(text[a:b] for a, b in enc["offset_mapping"]) == text
        prompt = tok.apply_chat_template([{"role": "user", "content": "What is 2+3?"}],
                                         add_generation_prompt=True, tokenize=False)
        assert "What is 2+3?" in prompt
        ids = tok(prompt, add_special_tokens=False, return_tensors="pt")
        out = model.generate(**ids, max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id)
        assert out.shape[1] > ids["input_ids"].shape[1]
        pieces[str(path)] = (tuple(enc["input_ids"]), prompt)
    segs = [p[0] for p in pieces.values()]
    prompts = [p[1] for p in pieces.values()]
    assert len(set(segs)) == 3, "each arch must tokenise differently"
    assert len(set(prompts)) == 3, "each arch must have its own chat template"


def test_tiny_is_deterministic_and_honours_truncation_side(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from distill.models.tiny import make_tiny_student
    from distill.students.tokenizer import load_tokenizer

    a = make_tiny_student(tmp_path / "a", "gpt2", seed=3, truncation_side="left", max_positions=64)
    b = make_tiny_student(tmp_path / "b", "gpt2", seed=3, max_positions=64)
    c = make_tiny_student(tmp_path / "c", "gpt2", seed=4, max_positions=64)
    ma, mb = (AutoModelForCausalLM.from_pretrained(p) for p in (a, b))
    for (n, pa), (_, pb) in zip(ma.named_parameters(), mb.named_parameters()):
        assert torch.equal(pa, pb), n
    mc = AutoModelForCausalLM.from_pretrained(c)
    assert not torch.equal(ma.transformer.wte.weight, mc.transformer.wte.weight), "seed must matter"
    assert ma.config.n_positions == 64
    assert load_tokenizer(a).truncation_side == "left"
    assert load_tokenizer(b).truncation_side == "right"
    with pytest.raises(ValueError, match="unknown tiny arch"):
        make_tiny_student(tmp_path / "d", "mamba")
