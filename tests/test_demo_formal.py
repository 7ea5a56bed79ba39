"""The formal-language demo (`distill demo --task smt|asp|dot`): generators, scripted teacher, repair
rows, config/flags, and (slow) the `--fast` smoke run end to end. Real Z3, clingo and Graphviz."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys

import pytest

from distill.demo import command as demo_cli
from distill.demo.formal_config import FormalDemoConfig, make_formal_config
from distill.demo.formal_gen import LANGUAGES, FormalGenConfig, generate, mutate, program
from distill.demo.formal_repairs import augment_rows, repair_conversation, teacher_rows
from distill.demo.formal_teacher import STYLE_TEMPLATES, formal_answer
from distill.demo.teacher import ScriptedBackend, ScriptedTeacherError, broken_rate_of, scripted_backend
from distill.errors import ConfigError
from distill.verify.formal import extract_program, validate_program, verify_program


@pytest.mark.parametrize("task", LANGUAGES)
def test_generated_references_and_their_commented_form_are_correct(task):
    train, test = generate(FormalGenConfig(task=task, n_train=25, n_test=5, seed=3))
    assert len(train) == 25 and len(test) == 5
    assert len({r["question"] for r in train + test}) == 30  # distinct problems, no leak across splits
    assert generate(FormalGenConfig(task=task, n_train=25, n_test=5, seed=3)) == (train, test)
    assert generate(FormalGenConfig(task=task, n_train=25, n_test=5, seed=4))[0] != train
    for row in train[:6]:
        assert verify_program(task, row["gold_answer"], row["gold_answer"], row).correct
        commented = program(task, row["spec"], comments=True)
        assert commented.count("\n") > row["gold_answer"].count("\n")  # one comment per part
        assert verify_program(task, commented, row["gold_answer"], row).correct


@pytest.mark.parametrize("task", LANGUAGES)
def test_mutations_are_valid_but_mostly_wrong(task):
    train, _ = generate(FormalGenConfig(task=task, n_train=12, n_test=1, seed=0))
    wrong = 0
    for row in train:
        mutated = program(task, mutate(task, row["spec"], random.Random(row["id"])))
        v = verify_program(task, mutated, row["gold_answer"], row)
        assert v.valid, (task, mutated, v.diagnostic)
        wrong += not v.correct
    assert wrong >= 9  # ASP: dropping an edge of an uncolourable graph can keep it unsat (still correct)


@pytest.mark.parametrize("task", LANGUAGES)
def test_teacher_styles_kinds_and_rates(task):
    train, _ = generate(FormalGenConfig(task=task, n_train=20, n_test=1, seed=1))
    row = train[0]
    bare, _ = formal_answer(task, row, "bare", random.Random(0), wrong_rate=0, broken_rate=0)
    steps, _ = formal_answer(task, row, "steps", random.Random(0), wrong_rate=0, broken_rate=0)
    explain, _ = formal_answer(task, row, "explain", random.Random(0), wrong_rate=0, broken_rate=0)
    assert bare.startswith("```") and bare.endswith("```")
    assert len(steps) > len(bare) and extract_program(task, steps) == program(task, row["spec"], comments=True)
    assert not explain.startswith("```") and not explain.endswith("```")
    assert extract_program(task, explain) == row["gold_answer"]
    kinds = {"correct": 0, "wrong": 0, "broken": 0}
    for r in train:
        for style in ("bare", "steps", "explain"):
            text, kind = formal_answer(task, r, style, random.Random(f"{r['id']}{style}"), wrong_rate=0.25,
                                       broken_rate=0.25)
            kinds[kind] += 1
            prog = extract_program(task, text)
            if kind == "broken":
                assert not validate_program(task, prog).valid, prog
            elif kind == "correct" and style == "bare":
                assert verify_program(task, prog, r["gold_answer"], r).correct
    assert 5 <= kinds["broken"] <= 27 and 5 <= kinds["wrong"] <= 27  # 60 answers, 25% each (~3 s.d.)


def test_scripted_backend_dispatches_formal_rows_and_parses_the_broken_rate():
    assert broken_rate_of("scripted") == 0.0 and broken_rate_of("scripted:broken=0.3") == 0.3
    with pytest.raises(ConfigError, match="broken"):
        broken_rate_of("scripted:noise=1")
    assert scripted_backend(model="scripted:broken=0.4", wrong_rate=0.1, seed=2).broken_rate == 0.4
    with pytest.raises(ConfigError, match="<= 1"):
        ScriptedBackend(wrong_rate=0.6, broken_rate=0.6)
    row = generate(FormalGenConfig(task="dot", n_train=2, n_test=1))[0][0]
    b = ScriptedBackend(wrong_rate=0.0, broken_rate=0.0, seed=5)
    assert b.answer(row, "bare", 0, "dot") == b.answer(row, "bare", 0, "dot")  # deterministic
    assert extract_program("dot", b.answer(row, "bare", 0, "dot")) == row["gold_answer"]
    always_broken = ScriptedBackend(wrong_rate=0.0, broken_rate=1.0)
    assert not validate_program("dot", extract_program("dot", always_broken.answer(row, "bare", 0, "dot"))).valid
    with pytest.raises(ScriptedTeacherError, match="spec"):
        b.answer({"id": 1, "question": "q", "gold_answer": "digraph {}"}, "bare", 0, "dot")
    with pytest.raises(ScriptedTeacherError, match="unknown style"):
        b.answer(row, "cot", 0, "dot")
    from distill.prompting.backend import Request

    done = asyncio.run(b.complete(Request(prompt="p", style="bare", row=row, task="dot", sample_index=0,
                                          temperature=0.0, max_tokens=10)))
    assert done.text == b.answer(row, "bare", 0, "dot")


def test_repair_rows_match_the_refinement_conversation(tmp_path):
    from distill.prompting.prompts import core_prompt
    from distill.students.refine import FEEDBACK

    row = generate(FormalGenConfig(task="smt", n_train=2, n_test=1))[0][0]
    conv = repair_conversation("smt", row, "```smt2\n(check-sat\n```", "line 1 column 11: unexpected end",
                               "(check-sat)")
    assert [m["role"] for m in conv] == ["user", "assistant", "user", "assistant"]
    assert conv[0]["content"] == core_prompt("smt", row)  # what the evaluation asks first
    assert conv[1]["weight"] == 0 and "weight" not in conv[3]  # the broken answer is context only
    assert conv[2]["content"] == FEEDBACK.format(diagnostic="line 1 column 11: unexpected end")
    assert extract_program("smt", conv[3]["content"]) == "(check-sat)"
    pairs = [{"id": "a/0/drop_paren", "question": row["question"], "broken": "(check-sat", "error": "e",
              "gold_answer": "(check-sat)"}]
    assert augment_rows("smt", pairs)[0]["messages"][1]["content"] == "```smt2\n(check-sat\n```"
    enriched = tmp_path / "train.enriched.jsonl"
    enriched.write_text(json.dumps({**row, "responses": ["```smt2\n(check-sat\n```", "ok"],
                                    "valid_flags": [False, True], "diagnostics": ["bad", None]}) + "\n")
    rows = teacher_rows("smt", enriched)
    assert len(rows) == 1 and rows[0]["gold_answer"] == row["gold_answer"]
    assert rows[0]["messages"][1]["content"] == "```smt2\n(check-sat\n```"


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_weight_zero_turn_is_context_not_labels(arch):
    """The broken turn of a repair row is not learned: no label inside it, the fixed turn fully labelled
    (each tiny student's own tokenizer and chat template)."""
    from distill.losses import IGNORE_INDEX
    from distill.models.tiny import train_tokenizer
    from distill.students.messages import check_messages, encode_messages

    row = generate(FormalGenConfig(task="smt", n_train=2, n_test=1))[0][0]
    conv = check_messages(repair_conversation("smt", row, "BROKEN (check-sat", "oops", "(check-sat)"), "f", 1)
    tok = train_tokenizer(arch, [m["content"] for m in conv] * 5, vocab_size=400)
    enc = encode_messages(tok, conv, 1024)
    learned = tok.decode([i for i, lab in zip(enc["input_ids"], enc["labels"]) if lab != IGNORE_INDEX])
    assert "BROKEN" not in learned and "(check-sat)" in learned
    plain = encode_messages(tok, [{k: v for k, v in m.items() if k != "weight"} for m in conv], 1024)
    assert "BROKEN" in tok.decode([i for i, lab in zip(plain["input_ids"], plain["labels"]) if lab != IGNORE_INDEX])


def test_flags_map_to_a_formal_config_and_refuse_what_does_not_apply(tmp_path):
    parser = argparse.ArgumentParser()
    demo_cli.add_arguments(parser)
    cfg = demo_cli.config_from_args(parser.parse_args(["--task", "asp", "--fast", "--outdir", str(tmp_path)]))
    assert isinstance(cfg, FormalDemoConfig) and cfg.task == "asp" and cfg.gen.task == "asp"
    assert cfg.train_overrides["epochs"] == 1 and cfg.refine == 1 and cfg.n_paths == 3
    assert cfg.train_config.endswith("demo_formal.yaml")
    full = demo_cli.config_from_args(parser.parse_args(["--task", "dot", "--broken_rate", "0.3", "--refine", "3"]))
    assert full.outdir == "runs/demo_dot" and full.broken_rate == 0.3 and full.refine == 3 and not full.train_overrides
    with pytest.raises(ConfigError, match="probe"):
        demo_cli.config_from_args(parser.parse_args(["--task", "smt", "--probe"]))
    with pytest.raises(ConfigError, match="formal"):
        demo_cli.config_from_args(parser.parse_args(["--broken_rate", "0.1"]))
    with pytest.raises(ConfigError, match="styles"):
        make_formal_config("smt", styles="cot")
    with pytest.raises(ConfigError, match="<= 1"):
        make_formal_config("smt", wrong_rate=0.7, broken_rate=0.5)
    assert STYLE_TEMPLATES.keys() == {"bare", "steps", "explain"}


@pytest.mark.slow  # every stage for real: prompt, augment, a 2-process training run, the eval table
def test_fast_smt_demo_runs_end_to_end_and_reports_the_table(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "distill.commands", "demo", "--task", "smt", "--fast",
                           "--outdir", str(out), "--no-plot"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    report = json.loads((out / "report.json").read_text())
    table = report["table"]
    assert set(table) == {"s1", "s2", "ensemble"}
    for g in table:
        assert list(table[g]) == ["base", "distilled", "template_repair", "refine"]
        assert table[g]["refine"]["n"] == 12 and table[g]["base"]["valid"] is not None
    assert report["repairs"]["augment"] > 0 and report["repairs"]["teacher"] > 0
    assert (out / "run" / "eval" / "table.png").stat().st_size > 0
    assert "distilled + refinement" in proc.stdout and "correct untrained -> distilled" in proc.stdout
    preds = [json.loads(line) for line in (out / "run" / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 12 and all("trail" in p["s1"] for p in preds)


def test_builtin_formal_train_config_is_a_valid_train_config():
    from distill.configs import find_config
    from distill.train.config import config_from_sources, load_yaml

    cfg = config_from_sources(load_yaml(find_config("demo_formal", "train")), {"model1": "a", "model2": "b",
                                                                               "task": "asp"})
    assert cfg.data.task == "asp" and cfg.router.routing == "learned"
    assert "embed_tokens" in cfg.lora.targets and "lm_head" in cfg.lora.targets
