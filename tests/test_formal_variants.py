"""``distill augment --kind equiv|noise|steps``: variants verified by the real z3 / dot / clingo.

Each variant is kept only when the verifier finds it equivalent to its original; wrong variants
(the negative controls below) must be dropped, so the check can fail."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys

import pytest
from test_formal_augment import ASP, DOT, SMT

from distill.verify.formal import validate_program, verify_program
from distill.verify.formal.augment_equiv import (dot_rename_ids, dot_shuffle_statements, smt_bridge,
                                                 smt_rename_constants, smt_rename_map, smt_shuffle_asserts,
                                                 smt_split_and)
from distill.verify.formal.augment_variants import (asp_steps, instruction_noise, make_equiv_rows, make_noise_rows,
                                                    make_step_rows)

needs_z3 = pytest.mark.skipif(shutil.which("z3") is None, reason="needs the z3 binary")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs the dot binary (graphviz)")
needs_clingo = pytest.mark.skipif(shutil.which("clingo") is None, reason="needs the clingo binary")


def test_smt_operators_by_hand():
    prog = "(declare-const x Int)\n(declare-const y Int)\n(assert (and (> x 1) (< y (+ x 2))))\n(assert (= y 3))\n(check-sat)"
    rng = random.Random(0)
    renamed = smt_rename_constants(prog, rng)
    assert "x" not in renamed.replace("(check-sat)", "") and renamed.count("(declare-const v") == 2
    split = smt_split_and(prog, random.Random(0))
    assert "(assert (> x 1))\n(assert (< y (+ x 2)))" in split and "and" not in split
    shuffled = smt_shuffle_asserts(prog, random.Random(0))
    assert shuffled.index("(assert (= y 3))") < shuffled.index("(assert (and")
    assert smt_shuffle_asserts("(declare-const x Int)\n(assert x)\n(check-sat)", rng) is None  # one assert: n/a
    # a symbol inside a comment or a string is never renamed
    commented = "; x is the answer\n(declare-const x Int)\n(assert (= x 2))\n(check-sat)"
    assert smt_rename_constants(commented, random.Random(1)).startswith("; x is the answer")


def test_dot_operators_by_hand():
    prog = 'digraph G {\n  a -> b;\n  b -> c [label="next"];\n  c [label="C!"];\n}'
    renamed = dot_rename_ids(prog, random.Random(0))
    assert '[label="a"]' in renamed and '[label="b"]' in renamed and '[label="c"]' not in renamed
    assert "a ->" not in renamed and 'label="next"' in renamed and 'label="C!"' in renamed
    shuffled = dot_shuffle_statements(prog, random.Random(0))
    assert shuffled.index("b -> c") < shuffled.index("a -> b")
    assert dot_shuffle_statements("digraph { subgraph cluster_0 { a } a -> b; b -> c }", random.Random(0)) is None


@needs_z3
def test_smt_variants_are_verified_equivalent():
    items, report = make_equiv_rows("smt", SMT, 0)
    assert report.kept == report.tried and report.tried["rename_constants"] == 8
    assert report.tried["shuffle_asserts"] >= 2 and report.tried["split_and"] >= 2
    for it in items:
        assert validate_program("smt", it["gold_answer"]).valid
        assert it["messages"][-1]["content"].startswith("```smt2\n") and it["gold_answer"] in it["messages"][-1]["content"]


@needs_z3
def test_a_renaming_that_changes_the_meaning_is_rejected_by_the_bridge():
    prog = SMT[1]["gold_answer"]  # p holds and q does not
    mapping = smt_rename_map(prog, random.Random(0))
    good = prog.replace("p", mapping["p"]).replace("q", mapping["q"])
    swapped = prog.replace("p", mapping["q"]).replace("q", mapping["p"])  # wrong: declarations ok, meaning swapped
    swapped = swapped.replace(f"(declare-const {mapping['q']} Bool)\n(declare-const {mapping['p']} Bool)",
                              f"(declare-const {mapping['p']} Bool)\n(declare-const {mapping['q']} Bool)")
    assert validate_program("smt", swapped).valid
    assert verify_program("smt", smt_bridge(prog, good, mapping), prog).correct
    assert not verify_program("smt", smt_bridge(prog, swapped, mapping), prog).correct


@needs_z3
def test_a_wrong_variant_is_not_kept():
    def weaken(prog, rng):  # drops the first assertion: valid, but not equivalent
        i = prog.find("(assert")
        j = prog.find("\n", i)
        return prog[:i] + prog[j + 1:] if i >= 0 and j > i else None

    items, report = make_equiv_rows("smt", SMT[:1], 0, operators={"weaken": weaken})
    assert report.tried == {"weaken": 1} and report.kept == {"weaken": 0} and items == []


@needs_dot
def test_dot_variants_are_verified_equivalent_and_a_dropped_label_is_not():
    items, report = make_equiv_rows("dot", DOT, 0)
    assert report.kept == report.tried and report.tried["rename_ids"] >= 3 and report.tried["shuffle_statements"] >= 2

    def rename_without_labels(prog, rng):
        out = dot_rename_ids(prog, rng)
        return None if out is None else "\n".join(ln for ln in out.splitlines() if "[label=\"" not in ln
                                                  or "->" in ln or "--" in ln)

    _, bad = make_equiv_rows("dot", DOT[:1], 0, operators={"rename_without_labels": rename_without_labels})
    assert bad.tried == {"rename_without_labels": 1} and bad.kept == {"rename_without_labels": 0}


def test_instruction_noise_keeps_numbers_code_and_operators():
    text = "Find x, with x > 2.5 and y = -3; write `(assert (> x 1))` first!\n```smt2\n(check-sat)\n```"
    noisy = instruction_noise(text)
    assert noisy.startswith("find x with x > 2.5 and y = -3 write `(assert (> x 1))` first")
    assert "```smt2\n(check-sat)\n```" in noisy and "," not in noisy.split("`")[0]
    rows, report = make_noise_rows("smt", SMT[:2])
    assert [r["id"] for r in rows] == ["s1/noise", "s2/noise"] and report.kept == {"noise": 2}
    assert rows[0]["gold_answer"] == SMT[0]["gold_answer"]  # the program is never touched
    assert rows[0]["messages"][1]["content"] == rows[0]["question"] == "an even x between 1 and 5"
    assert SMT[0]["gold_answer"] in rows[0]["messages"][2]["content"]


def test_asp_steps_follow_the_comments():
    prog = "% the nodes\nnode(1..3).\n% each node gets\n% one colour\n{ c(N,K) : k(K) } = 1 :- node(N).\nk(r;g)."
    assert asp_steps(prog) == [("the nodes", "node(1..3)."),
                               ("each node gets one colour", "{ c(N,K) : k(K) } = 1 :- node(N).\nk(r;g).")]
    assert asp_steps("node(1).\n% late comment\nq.") == []  # a rule before the first comment
    assert asp_steps("%* block *%\nq.") == [] and asp_steps("% c\nq.\n% trailing") == []


@needs_clingo
def test_step_rows_split_whole_problems():
    rows = [{**ASP[0], "id": f"a1-{i}"} for i in range(20)] + [{**ASP[6], "id": f"a7-{i}"} for i in range(20)]
    split, report = make_step_rows(rows, 0, test_share=0.3)
    train_ids = {r["id"].split("/")[0] for r in split["train"]}
    test_ids = {r["id"].split("/")[0] for r in split["test"]}
    assert not train_ids & test_ids and len(train_ids) + len(test_ids) == 40 and 4 <= len(test_ids) <= 20
    msgs = split["train"][0]["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant"]
    assert "Problem:\n" in msgs[0]["content"] and msgs[2]["content"].startswith(("node(", "lives("))
    again, _ = make_step_rows(rows, 0, test_share=0.3)
    assert again == split  # deterministic for a seed
    assert report.tried["steps"] == 40 and report.kept["steps"] == 40


@needs_clingo
def test_command_steps_and_equiv(tmp_path):
    src = tmp_path / "asp.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in ASP))
    out, held = tmp_path / "steps.jsonl", tmp_path / "steps.test.jsonl"
    cmd = [sys.executable, "-m", "distill.commands", "augment", "--task", "asp", "--input", str(src), "--out", str(out),
           "--kind", "steps"]
    proc = subprocess.run(cmd + ["--test-share", "0.5"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("error:") == 1 and "--test-out" in proc.stderr
    proc = subprocess.run(cmd + ["--test-share", "0.5", "--test-out", str(held)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert len(out.read_text().splitlines()) + len(held.read_text().splitlines()) == 2
    proc = subprocess.run(cmd[:-1] + ["equiv"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--kind rename" in proc.stderr
