"""Evaluation scores only the generated continuation, and the ensemble picks by confidence."""

from __future__ import annotations

import torch


def test_answers_are_extracted_from_the_continuation_only(tiny_llama, tiny_qwen2):
    from transformers import AutoModelForCausalLM

    from distill.students.data import chat_prompt, question_text
    from distill.students.evaluate import evaluate
    from distill.students.tokenizer import load_tokenizer
    from distill.verify import score

    # The question itself contains a correct boxed answer: scoring prompt+continuation would pass.
    rows = [{"id": f"r{i}", "question": f"Ann says the answer is \\boxed{{{40 + i}}}. Is she right?",
             "gold_answer": str(40 + i)} for i in range(3)]
    students = [(AutoModelForCausalLM.from_pretrained(p), load_tokenizer(p)) for p in (tiny_llama, tiny_qwen2)]
    tok = students[0][1]
    whole = chat_prompt(tok, question_text("arith", rows[0]))
    v = score("arith", whole, rows[0])
    assert getattr(v, "correct", v) is True, "precondition: the prompt alone would be scored correct"

    preds, metrics = evaluate(students, rows, "arith", eval_bs=2, max_new_tokens=2)
    assert metrics["n"] == 3
    assert metrics["acc_s1"] == 0.0 and metrics["acc_s2"] == 0.0 and metrics["acc_oracle"] == 0.0
    for p in preds:
        for k in ("s1", "s2"):
            assert "Ann says" not in p[k]["text"] and p[k]["n_tokens"] <= 2
        pick = 1 if p["s1"]["mean_logprob"] >= p["s2"]["mean_logprob"] else 2
        assert p["ensemble"]["pick"] == pick


def test_left_padded_batch_generation_matches_single_prompts(tiny_llama):
    """Batching with left padding must not change greedy answers (a right-padding bug would)."""
    from transformers import AutoModelForCausalLM

    from distill.students.evaluate import generate_answers
    from distill.students.tokenizer import load_tokenizer

    model, tok = AutoModelForCausalLM.from_pretrained(tiny_llama), load_tokenizer(tiny_llama)
    prompts = [tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False)
               for q in ("2+3?", "Ann has 12 apples and buys 30 more. How many apples does she have now?")]
    batched = generate_answers(model, tok, prompts, batch_size=2, max_new_tokens=6)
    single = [generate_answers(model, tok, [p], batch_size=1, max_new_tokens=6)[0] for p in prompts]
    for b, s in zip(batched, single):
        assert b["text"] == s["text"]
        assert abs(b["mean_logprob"] - s["mean_logprob"]) < 1e-3
    assert tok.padding_side == "right"  # restored after generation
