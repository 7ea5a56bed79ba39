"""Program-style paths scored with the real Z3, clingo and Graphviz."""

from __future__ import annotations

import shutil

import pytest

from distill.verify import score
from distill.verify.solvers import SolverResult, check_dot, code_blocks, run_asp, run_smt2, solver_prediction

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz 'dot' on PATH")

SMT_18 = "(declare-const x Int)\n(assert (= (* 2 x) 36))\n(check-sat)\n(get-value (x))"
# Grounding this takes ~1e15 atoms: clingo would never finish (and ignores signals while grounding).
ASP_BLOWUP = "n(1..100000).\np(X,Y,Z) :- n(X), n(Y), n(Z).\nanswer(1)."


def fence(lang: str, code: str) -> str:
    return f"```{lang}\n{code}\n```"


def test_smt2_values():
    assert run_smt2(SMT_18).value == "18"
    assert run_smt2("(declare-const y Real)(assert (= (* 2 y) (- 1)))(check-sat)(get-value (y))").value == "-1/2"
    assert run_smt2("(declare-const b Bool)(assert b)(check-sat)(get-value (b))").value == "true"
    two = run_smt2("(declare-const a Int)(declare-const b Int)(assert (= a 1))(assert (= b (+ a 1)))"
                   "(check-sat)(get-value (a b))")
    assert two.value == "(1, 2)"
    # no get-value: the model's constant named "answer", or its only constant; ambiguous -> no value
    named = run_smt2("(declare-const x Int)(declare-const answer Int)(assert (= x 5))(assert (= answer (* x 2)))"
                     "(check-sat)(get-model)")
    assert named.value == "10"
    assert run_smt2("(declare-const x Int)(assert (= x 5))(check-sat)(get-model)").value == "5"
    assert run_smt2("(declare-const x Int)(declare-const y Int)(assert (= x 5))(assert (= y 2))"
                    "(check-sat)(get-model)").value is None


def test_smt2_unsat_and_errors():
    unsat = run_smt2("(declare-const x Int)(assert (> x x))(check-sat)(get-value (x))")
    assert unsat.value is None
    bad = run_smt2("(declare-const x Int)(assert (= y 1))(check-sat)")
    assert not bad.ok and "unknown constant" in bad.error


def test_asp_answer_atom():
    assert run_asp("answer(X) :- X = 6*7.").value == "42"
    assert run_asp('answer("b").').value == "b"
    none = run_asp("p(1).")
    assert none.ok and none.value is None
    assert not run_asp("answer(X) :- .").ok  # syntax error


def test_asp_grounding_blowup_is_killed():
    res = run_asp(ASP_BLOWUP, timeout=1.0)
    # killed at our 1 s deadline (the TimeoutExpired path), not answered by clingo's --time-limit, which
    # grounding ignores, nor by the 3 s default; wall-clock: bench/bench_verify_timeout.py
    assert res == SolverResult(False, None, "clingo timed out after 1s")


@needs_dot
def test_dot_wellformedness():
    assert check_dot("digraph { a -> b; b -> c }").ok
    bad = check_dot("digraph { a -> }")
    assert not bad.ok and "syntax error" in bad.error


def test_code_blocks_and_solver_prediction_takes_last_block():
    text = "First try:\n" + fence("smt2", SMT_18) + "\nthen\n" + fence("asp", "answer(20).")
    assert [lang for lang, _ in code_blocks(text)] == ["smt2", "asp"]
    assert solver_prediction(text) == "20"


def test_solver_is_prediction_when_no_final_answer():
    resp = "Let x be the eggs; twice x is 36.\n" + fence("smt2", SMT_18)
    v = score("gsm8k", resp, {"gold_answer": "18"})
    assert v.pred == "18" and v.correct
    # the numbers inside the program (36, 2) are not a "last number" fallback
    assert not score("gsm8k", resp, {"gold_answer": "36"}).correct


def test_explicit_answer_beats_solver():
    resp = fence("smt2", SMT_18) + "\nThe answer is \\boxed{17}."
    v = score("gsm8k", resp, {"gold_answer": "18"})
    assert v.pred == "17" and not v.correct


def test_solver_values_in_closed_tasks():
    row = {"gold_answer": "C", "choices": {"label": list("ABCD"), "text": ["w", "x", "y", "z"]}}
    assert score("arc_challenge", fence("lp", "answer(c)."), row).correct
    assert not score("arc_challenge", fence("lp", "answer(a)."), row).correct
    yes = fence("smt2", "(declare-const ok Bool)(assert (= ok (> 3 2)))(check-sat)(get-value (ok))")
    assert score("strategy_qa", yes, {"gold_answer": "Yes"}).pred == "Yes"
    assert score("anli", fence("asp", "answer(neither)."), {"gold_answer": "neutral"}).correct


@needs_dot
def test_invalid_dot_makes_path_incorrect():
    good = "The answer is 18.\n" + fence("dot", "digraph { eggs -> sold }")
    bad = "The answer is 18.\n" + fence("dot", "digraph { eggs -> }")
    assert score("gsm8k", good, {"gold_answer": "18"}).correct
    v = score("gsm8k", bad, {"gold_answer": "18"})
    assert v.pred == "18" and not v.correct
