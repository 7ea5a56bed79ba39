"""Evaluation: continuation-only scoring, pure greedy decoding, stop tokens, budgets, the
tokenizer-independent ensemble pick, and reloading a trained (QLoRA) run as it was trained."""

from __future__ import annotations

import json
import math

import pytest
import torch

GOLD = {"id": "r0", "question": "Ann has 3 apples and buys 4 more. How many apples?", "gold_answer": "7"}


# ----------------------------------------------------------------------------- helpers
def _scripted_gpt2(path, answer: str, total_logprob: float, *, stop: str | None = None):
    """A tiny GPT-2 from ``distill.models.tiny`` whose weights are set by hand so that, after
    the chat prompt of :data:`GOLD`, greedy decoding emits exactly ``answer`` then ``stop`` (default: EOS), each token
    with the same probability, so the whole string has log-probability ``total_logprob``.

    How: every block's output projections are zeroed (attention and MLP add nothing), token
    embeddings are zeroed, so the last hidden state is ``ln_f(wpe[position])``; each answer
    position gets its own orthogonal direction, and an untied output head maps that direction
    to the scripted token's logit. Returns ``(model, tokenizer, n_tokens)``.
    """
    from transformers import AutoModelForCausalLM

    from distill.students.tokenizer import load_tokenizer

    tok = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    if stop is not None and stop not in tok.get_added_vocab():
        tok.add_special_tokens({"additional_special_tokens": [stop]})
    stop_id = tok.convert_tokens_to_ids(stop) if stop is not None else tok.eos_token_id
    script = tok(answer, add_special_tokens=False)["input_ids"] + [stop_id]
    n_prompt = len(tok(_prompt(tok), add_special_tokens=False)["input_ids"])
    d, vocab = model.config.n_embd, len(tok)
    assert len(script) < d, "one orthogonal direction per scripted step"
    with torch.no_grad():
        for block in model.transformer.h:
            for lin in (block.attn.c_proj, block.mlp.c_proj):
                lin.weight.zero_()
                lin.bias.zero_()
        model.config.tie_word_embeddings = False
        model.transformer.wte = torch.nn.Embedding(vocab, d)
        model.transformer.wte.weight.zero_()
        model.transformer.ln_f.weight.fill_(1.0)
        model.transformer.ln_f.bias.zero_()
        g = torch.Generator().manual_seed(0)
        basis = torch.randn(d, len(script), generator=g)
        basis, _ = torch.linalg.qr(basis - basis.mean(dim=0, keepdim=True))  # orthonormal, zero-mean columns
        model.transformer.wpe.weight.zero_()
        head = torch.zeros(vocab, d)
        p = math.exp(total_logprob / len(script))  # every step equally likely
        logit = math.log(p * (vocab - 1) / (1 - p))  # softmax([logit, 0, ..., 0])[0] == p
        for i, target in enumerate(script):
            pos = n_prompt - 1 + i  # the position whose output predicts script[i]
            model.transformer.wpe.weight[pos] = 10.0 * basis[:, i]
            h = model.transformer.ln_f(model.transformer.wpe.weight[pos])
            head[target] += logit * h / h.dot(h)
        model.lm_head = torch.nn.Linear(d, vocab, bias=False)
        model.lm_head.weight.copy_(head)
    model.eval()
    return model, tok, len(script)


def _prompt(tok, row=GOLD):
    from distill.students.data import chat_prompt, question_text

    return chat_prompt(tok, question_text("arith", row))


@pytest.fixture(scope="module")
def gpt2_coarse(tmp_path_factory):
    from distill.models.tiny import make_tiny_student

    return make_tiny_student(tmp_path_factory.mktemp("coarse"), "gpt2", vocab_size=1024)  # 768 pieces


@pytest.fixture(scope="module")
def gpt2_fine(tmp_path_factory):
    from distill.models.tiny import make_tiny_student

    return make_tiny_student(tmp_path_factory.mktemp("fine"), "gpt2", vocab_size=256)  # ~bytes: 274 pieces


# ------------------------------------------------------------------------------- tests
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
    assert v.correct is True, "precondition: the prompt alone would be scored correct"

    preds, metrics = evaluate(students, rows, "arith", eval_bs=2, max_new_tokens=2)
    assert metrics["n"] == 3
    assert metrics["acc_s1"] == 0.0 and metrics["acc_s2"] == 0.0 and metrics["acc_oracle"] == 0.0
    for p in preds:
        for k in ("s1", "s2"):
            assert "Ann says" not in p[k]["text"] and p[k]["n_tokens"] <= 2
            if p[k]["hit_budget"]:
                assert p[k]["n_tokens"] == 2
        pick = 1 if p["s1"]["logprob_per_byte"] >= p["s2"]["logprob_per_byte"] else 2
        assert p["ensemble"]["pick"] == pick
    for k in ("s1", "s2"):
        assert metrics[f"hit_budget_{k}"] == sum(p[k]["hit_budget"] for p in preds) / 3
        assert metrics[f"budget_{k}"] == 2


def test_left_padded_batch_generation_matches_single_prompts(tiny_llama):
    """Batching with left padding must not change greedy answers (a right-padding bug would)."""
    from transformers import AutoModelForCausalLM

    from distill.students.generate import generate_answers
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


def test_decoding_is_pure_greedy_whatever_the_models_generation_config(tiny_llama):
    """A checkpoint's generation_config (sampling, repetition penalty, n-gram ban, top-k) must not
    leak into evaluation: the answer equals a hand-written argmax loop, for the bare model and
    for the PEFT-wrapped student that training evaluates."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from distill.students.generate import generate_answers, stop_token_ids
    from distill.students.tokenizer import load_tokenizer

    tok = load_tokenizer(tiny_llama)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    prompt = _prompt(tok)
    steps = 24
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    stops = set(stop_token_ids(tok, base))
    want: list[int] = []
    with torch.no_grad():
        for _ in range(steps):
            nxt = int(base(ids).logits[0, -1].argmax())
            want.append(nxt)
            if nxt in stops:
                break
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    assert len(set(want)) < len(want), "precondition: greedy repeats a token, so a penalty would change it"

    gc = base.generation_config
    gc.do_sample, gc.repetition_penalty, gc.no_repeat_ngram_size, gc.top_k, gc.temperature = True, 50.0, 1, 2, 5.0
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama),
                                LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    peft_gc = peft_model.get_base_model().generation_config
    peft_gc.do_sample, peft_gc.repetition_penalty, peft_gc.no_repeat_ngram_size = True, 50.0, 1
    for model in (base, peft_model):
        for _ in range(2):  # sampling would differ between runs
            got = generate_answers(model, tok, [prompt], batch_size=1, max_new_tokens=steps)[0]
            assert got["text"] == tok.decode(want, skip_special_tokens=True)
            assert got["n_tokens"] == len(want)
    assert base.generation_config.repetition_penalty == 50.0 and base.generation_config.do_sample  # restored


def test_generation_stops_at_the_chat_templates_end_of_turn_token(gpt2_coarse):
    """``<|eot_id|>`` (Llama 3's end of turn) is not the tokenizer's EOS, but ends the answer."""
    from distill.students.generate import generate_answers, stop_token_ids

    answer = "The answer is \\boxed{7}."
    model, tok, n = _scripted_gpt2(gpt2_coarse, answer, -2.0, stop="<|eot_id|>")
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    assert eot != tok.eos_token_id and eot in stop_token_ids(tok, model)
    got = generate_answers(model, tok, [_prompt(tok)], batch_size=1, max_new_tokens=40)[0]
    assert got["text"] == answer and got["n_tokens"] == n and not got["hit_budget"]
    assert abs(got["logprob"] - (-2.0)) < 1e-3


def test_completion_budget_is_the_99th_percentile_never_below_the_floor():
    from distill.students.generate import BUDGET_FLOOR, completion_budget, default_budgets

    lengths = list(range(1, 1001))  # 1..1000 tokens
    assert completion_budget(lengths, floor=16) == 990
    assert completion_budget(lengths[::-1], floor=16) == 990  # order does not matter
    assert completion_budget([10] * 50 + [5000], floor=16) == 5000  # 1 in 51 is above the 99th percentile
    assert completion_budget([10] * 200 + [5000], floor=1) == 10  # one outlier in 201 is above p99
    assert completion_budget([10, 20, 30], floor=256) == 256  # short styles: the floor
    assert completion_budget([], floor=300) == 300
    assert BUDGET_FLOOR >= 256  # tot paths need ~200 tokens
    assert default_budgets({"s1": [400] * 10, "s2": [12]}) == {"s1": 400, "s2": BUDGET_FLOOR}


def test_hit_budget_share_reports_answers_cut_by_the_budget(gpt2_coarse):
    from distill.students.evaluate import evaluate

    answer = "The answer is \\boxed{7}."
    model, tok, n = _scripted_gpt2(gpt2_coarse, answer, -2.0)
    _, short = evaluate([(model, tok)], [GOLD], "arith", eval_bs=1, max_new_tokens=n - 3)
    assert short["hit_budget_s1"] == 1.0 and short["acc_s1"] == 0.0  # the answer was cut before \boxed{7}
    preds, full = evaluate([(model, tok)], [GOLD], "arith", eval_bs=1, max_new_tokens=n + 10)
    assert full["hit_budget_s1"] == 0.0 and full["acc_s1"] == 1.0 and preds[0]["s1"]["text"] == answer


@pytest.mark.parametrize("coarse_is_better", [True, False])
def test_ensemble_pick_does_not_depend_on_tokenizer_granularity(gpt2_coarse, gpt2_fine, coarse_is_better):
    """Two students, one with a ~byte-level tokenizer (23 tokens for the answer) and one with a
    coarse one (10 tokens), give equally long answers; the better one (higher string probability)
    is right. The pick must follow the string's probability, whichever tokenizer is finer. The old
    per-token mean picks the fine student even when it is the worse one."""
    from distill.students.evaluate import evaluate

    right, wrong = "The answer is \\boxed{7}.", "The answer is \\boxed{8}."
    good, bad = -3.0, -3.3  # total log-probabilities: the better answer is only a little more likely
    c_ans, c_lp = (right, good) if coarse_is_better else (wrong, bad)
    f_ans, f_lp = (wrong, bad) if coarse_is_better else (right, good)
    coarse, ctok, n_c = _scripted_gpt2(gpt2_coarse, c_ans, c_lp)
    fine, ftok, n_f = _scripted_gpt2(gpt2_fine, f_ans, f_lp)
    assert n_f > 2 * n_c, "precondition: the fine tokenizer cuts the answer into many more tokens"
    preds, metrics = evaluate([(coarse, ctok), (fine, ftok)], [GOLD], "arith", eval_bs=1, max_new_tokens=40)
    s1, s2 = preds[0]["s1"], preds[0]["s2"]
    assert (s1["text"], s2["text"]) == (c_ans, f_ans) and s1["n_bytes"] == s2["n_bytes"]
    assert abs(s1["logprob"] - c_lp) < 1e-3 and abs(s2["logprob"] - f_lp) < 1e-3
    assert s2["mean_logprob"] > s1["mean_logprob"], "precondition: per token, the fine student looks surer"
    assert preds[0]["ensemble"]["pick"] == (1 if coarse_is_better else 2)
    assert metrics["acc_ensemble"] == 1.0 and metrics["acc_oracle"] == 1.0 and metrics["acc_best_single"] == 1.0
    assert metrics["ensemble_rule"] == "logprob_per_byte"


def _save_run(run, base_path, *, train_config: dict | None, summary: dict | None = None, n_students: int = 1):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from distill.students.tokenizer import load_tokenizer

    run.mkdir(parents=True, exist_ok=True)
    for k in range(1, n_students + 1):
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_path),
                               LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
        model.save_pretrained(run / f"student{k}")
        load_tokenizer(base_path).save_pretrained(run / f"student{k}")
    if train_config is not None:
        (run / "train_config.json").write_text(json.dumps(train_config))
    if summary is not None:
        (run / "train_summary.json").write_text(json.dumps(summary))
    return run


def test_trained_qlora_student_reloads_its_base_in_4bit(tmp_path, tiny_llama):
    bnb = pytest.importorskip("bitsandbytes", reason="QLoRA reload needs bitsandbytes (CPU backend >= 0.45)")
    from distill.students.load import load_trained_student

    q_run = _save_run(tmp_path / "qlora", tiny_llama, train_config={"students": {"load_in_4bit": True}})
    model, tok = load_trained_student(q_run / "student1")
    four_bit = [n for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert four_bit, "the base must be reloaded in 4-bit, as it was trained"
    assert any("lora_A" in n for n, _ in model.named_parameters())  # the adapter is on top
    assert not model.training and tok.eos_token_id is not None

    fp_run = _save_run(tmp_path / "fp", tiny_llama, train_config={"load_in_4bit": False, "load_in_8bit": False})
    fp, _ = load_trained_student(fp_run / "student1")
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in fp.modules())


def test_distill_eval_command_runs_the_library_evaluation(tmp_path, tiny_llama):
    """``distill eval`` (the command module) over a two-student run: budgets from train_summary.json."""
    from distill.commands import main

    run = _save_run(tmp_path / "run", tiny_llama, train_config={"load_in_4bit": False},
                    summary={"eval_budget": {"s1": 3, "s2": 4}}, n_students=2)
    test = tmp_path / "test.jsonl"
    test.write_text("".join(json.dumps({**GOLD, "id": f"r{i}"}) + "\n" for i in range(3)))
    assert main(["eval", "--run", str(run), "--task", "arith", "--test", str(test), "--eval_bs", "2"]) == 0
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["n"] == 3 and (metrics["budget_s1"], metrics["budget_s2"]) == (3, 4)
    assert {"acc_ensemble", "acc_oracle", "acc_best_single", "hit_budget_s1", "hit_budget_s2"} <= set(metrics)
    row = metrics["table"]["ensemble"]["distilled"]  # the table's one row for a non-formal task
    assert row["correct"] == metrics["acc_ensemble"] and row["valid"] is None and row["n"] == 3
    preds = (run / "eval" / "predictions.jsonl").read_text().splitlines()
    assert all(json.loads(line)["s1"]["n_tokens"] <= 3 for line in preds)


def test_run_budgets_prefer_the_summary_then_the_training_paths_then_the_floor(tmp_path, tiny_llama, tiny_train_data):
    from types import SimpleNamespace

    from distill.students.evaluate import run_budgets
    from distill.students.generate import completion_budget
    from distill.students.paths import load_train_paths
    from distill.students.tokenizer import load_tokenizer

    toks = {"s1": load_tokenizer(tiny_llama)}
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_budgets(empty, toks, floor=300)[0] == {"s1": 300}
    cfg = {"data": {"task": "arith", "data_root": str(tiny_train_data)}, "students": {"load_in_4bit": False}}
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_config.json").write_text(json.dumps(cfg))
    paths = load_train_paths(SimpleNamespace(task="arith", data_root=str(tiny_train_data), train_file=None,
                                             judged_only=False, is_quality=True, sample_size=None))
    want = completion_budget([len(toks["s1"](p["response"], add_special_tokens=False)["input_ids"]) + 1
                              for p in paths], floor=1)
    assert run_budgets(run, toks, floor=1) == ({"s1": want}, "the run's training paths")
    (run / "train_summary.json").write_text(json.dumps({"eval_budget": {"s1": 777}}))
    assert run_budgets(run, toks, floor=1)[0] == {"s1": 777}


SMT_ROWS = [{"id": f"smt-{i}", "question": f"Find an integer x greater than {i}.",
             "gold_answer": f"(declare-const x Int)\n(assert (> x {i}))\n(check-sat)"} for i in range(3)]


def _smt_test_file(tmp_path):
    test = tmp_path / "smt_test.jsonl"
    test.write_text("".join(json.dumps(r) + "\n" for r in SMT_ROWS))
    return test


def test_distill_eval_base_with_refinement_on_smt_rows(tmp_path, tiny_llama, capsys, monkeypatch):
    """``distill eval --base --refine 1``: the untrained student (no adapter), its invalid programs sent back
    once with the solver's message; per item the refinement fields and trail, and the table rows."""
    from distill.commands import main

    monkeypatch.setenv("DISTILL_NO_PROGRESS", "1")
    run = _save_run(tmp_path / "run", tiny_llama, train_config={"load_in_4bit": False})
    test = _smt_test_file(tmp_path)
    assert main(["eval", "--run", str(run), "--task", "smt", "--test", str(test), "--base",
                 "--refine", "1", "--max_new_tokens", "6", "--eval_bs", "2"]) == 0
    out = run / "eval" / "base"
    assert not (run / "eval" / "metrics.json").exists()  # the trained students' file is left alone
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 3 and metrics["valid_s1"] == 0.0  # 6 random tokens are no SMT-LIB2 script
    assert list(metrics["table"]["s1"]) == ["base", "refine"]
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    for p in preds:
        s = p["s1"]
        assert s["initial_valid"] is False and s["final_valid"] is False and s["final_correct"] is False
        assert s["iterations"] == 1 and len(s["trail"]) == 2 and s["refine_stop"] in ("unchanged", "rounds")
        assert s["trail"][0]["text"] == s["text"] and s["trail"][0]["diagnostic"]
    assert metrics["table"]["s1"]["refine"]["mean_iterations"] == 1.0
    assert "distilled + refinement (K=1)" in capsys.readouterr().err  # the console table


def test_refinement_and_template_repair_are_for_formal_tasks_only(tmp_path, tiny_llama, capsys):
    from distill.commands import main

    run = _save_run(tmp_path / "run", tiny_llama, train_config={"load_in_4bit": False})
    test = tmp_path / "test.jsonl"
    test.write_text(json.dumps(GOLD) + "\n")
    capsys.readouterr()
    assert main(["eval", "--run", str(run), "--task", "arith", "--test", str(test), "--refine", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--refine: only for the formal tasks" in err and len(err.splitlines()) == 1
    assert main(["eval", "--run", str(run), "--task", "arith", "--test", str(test), "--base",
                 "--max_new_tokens", "2"]) == 0  # --base works for every task
    base = json.loads((run / "eval" / "base" / "metrics.json").read_text())
    assert base["n"] == 1 and list(base["table"]["s1"]) == ["base"] and base["budget_s1"] == 2


def test_the_base_student_is_the_adapters_base_without_the_adapter(tmp_path, tiny_llama):
    from distill.students.evaluate import load_base_student

    run = _save_run(tmp_path / "run", tiny_llama, train_config={"load_in_4bit": False})
    model, tok = load_base_student(run / "student1")
    assert not any("lora" in name for name, _ in model.named_parameters()) and not model.training
    assert type(model).__name__ == "LlamaForCausalLM" and tok.pad_token_id is not None


def test_run_eval_table_writes_the_table_for_both_students_and_the_ensemble(tmp_path, tiny_llama, tiny_qwen2):
    """The API the demo calls: base, distilled, template repair and refinement rows for s1, s2 and the
    ensemble, the keys the rest of the code reads, the merged predictions and the PNG."""
    from distill.students.eval_table import run_eval_table

    run = tmp_path / "run"
    _save_run(run, tiny_llama, train_config={"load_in_4bit": False})
    _save_run(tmp_path / "other", tiny_qwen2, train_config=None)
    (tmp_path / "other" / "student1").rename(run / "student2")
    logged: list[str] = []
    metrics = run_eval_table(run, "smt", _smt_test_file(tmp_path), refine=1, template_repair=True, eval_bs=2,
                             max_new_tokens=3, limit=2, log=logged.append)
    out = run / "eval"
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["table"] == metrics["table"]
    assert {"n", "acc_s1", "acc_s2", "acc_ensemble", "acc_oracle", "valid_s1", "valid_s2"} <= set(on_disk)
    assert on_disk["base"]["n"] == 2 and on_disk["table_config"]["oracle_feedback"] is False
    for g in ("s1", "s2", "ensemble"):
        assert list(metrics["table"][g]) == ["base", "distilled", "template_repair", "refine"]
        assert set(metrics["table"][g]["refine"]["vs_base"]) == {"valid", "correct"}
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 2 and all({"s1", "s2"} <= set(p["base"]) and "repair" in p["s2"] for p in preds)
    assert (out / "table.png").read_bytes()[:4] == b"\x89PNG" and (out / "table.txt").is_file()
    assert "ensemble (n=2)" in logged[-1]


def _position_scripted_gpt2(path, segments):
    """A tiny GPT-2 whose greedy output depends only on the position (as in :func:`_scripted_gpt2`):
    ``segments`` = ``[(prompt_len, token_ids), ...]``; after a prompt of ``prompt_len`` tokens it emits
    ``token_ids`` (each step ~certain). Segments must not overlap in positions."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path)
    d, vocab = model.config.n_embd, model.config.vocab_size
    steps = [(n - 1 + i, t) for n, ids in segments for i, t in enumerate(ids)]
    assert len(steps) < d and len({p for p, _ in steps}) == len(steps)
    with torch.no_grad():
        for block in model.transformer.h:
            for lin in (block.attn.c_proj, block.mlp.c_proj):
                lin.weight.zero_()
                lin.bias.zero_()
        model.config.tie_word_embeddings = False
        model.transformer.wte = torch.nn.Embedding(vocab, d)
        model.transformer.wte.weight.zero_()
        model.transformer.ln_f.weight.fill_(1.0)
        model.transformer.ln_f.bias.zero_()
        basis = torch.randn(d, len(steps), generator=torch.Generator().manual_seed(0))
        basis, _ = torch.linalg.qr(basis - basis.mean(dim=0, keepdim=True))
        model.transformer.wpe.weight.zero_()
        head = torch.zeros(vocab, d)
        for i, (pos, target) in enumerate(steps):
            model.transformer.wpe.weight[pos] = 10.0 * basis[:, i]
            h = model.transformer.ln_f(model.transformer.wpe.weight[pos])
            head[target] += 30.0 * h / h.dot(h)
        model.lm_head = torch.nn.Linear(d, vocab, bias=False)
        model.lm_head.weight.copy_(head)
    return model.eval()


def test_refinement_with_a_real_model_fixes_its_program_after_the_solvers_message(tmp_path):
    """A real GPT-2 (hand-set weights) answers an undeclared-constant program, is shown Z3's message in
    the same conversation, and answers the fixed program: refinement makes it valid and correct, and
    template repair (which declares the constant) does too; the distilled row stays invalid."""
    from distill.models.tiny import make_tiny_student
    from distill.students.data import chat_prompt, question_text
    from distill.students.evaluate import evaluate
    from distill.students.generate import render_conversation
    from distill.students.refine import feedback_message, validity_check
    from distill.students.tokenizer import load_tokenizer

    path = make_tiny_student(tmp_path / "gpt2", "gpt2", vocab_size=1024, hidden=128, max_positions=1024)
    tok = load_tokenizer(path)
    row = {"id": "smt-0", "question": "Find an integer x greater than 2.",
           "gold_answer": "(declare-const x Int)\n(assert (> x 2))\n(check-sat)"}
    broken, fixed = "(assert (> x 2))\n(check-sat)", row["gold_answer"]
    question = question_text("smt", row)

    def n_tokens(text):
        return len(tok(text, add_special_tokens=False)["input_ids"])

    conv = [{"role": "user", "content": question}, {"role": "assistant", "content": broken},
            {"role": "user", "content": feedback_message(validity_check("smt", [None])(0, broken))}]
    script = [(n_tokens(chat_prompt(tok, question)), tok(broken, add_special_tokens=False)["input_ids"]),
              (n_tokens(render_conversation(tok, conv)), tok(fixed, add_special_tokens=False)["input_ids"])]
    model = _position_scripted_gpt2(path, [(n, ids + [tok.eos_token_id]) for n, ids in script])
    preds, metrics = evaluate([(model, tok)], [row], "smt", eval_bs=1, max_new_tokens=60, refine=2,
                              template_repair=True, progress=False)
    s = preds[0]["s1"]
    assert s["text"] == broken and s["valid"] is False and "unknown constant x" in s["diagnostic"]
    assert (s["initial_valid"], s["final_valid"], s["final_correct"], s["iterations"], s["refine_stop"]) == \
        (False, True, True, 1, "ok")
    assert [t["text"] for t in s["trail"]] == [broken, fixed]
    assert s["repair"] == {"changed": True, "valid": True, "correct": True, "timed_out": False}
    t = metrics["table"]["s1"]
    assert (t["distilled"]["valid"], t["refine"]["valid"], t["refine"]["correct"], t["refine"]["repair_rate"]) == \
        (0.0, 1.0, 1.0, 1.0)
    assert t["template_repair"]["correct"] == 1.0 and metrics["acc_s1"] == 0.0
