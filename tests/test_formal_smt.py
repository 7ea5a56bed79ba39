"""SMT-LIB2 verdicts (distill.verify.formal.smt) against the real Z3 binary: validity from Z3's own
output, semantic equivalence with the reference proved by Z3, fail-closed timeouts and crashes."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

from distill.verify.formal import FormalVerdict, verify_program
from distill.verify.formal import smt

pytestmark = pytest.mark.skipif(shutil.which("z3") is None, reason="needs the z3 binary (apt install z3)")

REF = """(declare-const x Int)
(declare-const y Int)
(assert (> x 0))
(assert (= (+ x y) 10))
(check-sat)
(get-value (x y))
"""
UNSAT = "(declare-const x Int)\n(assert (> x 2))\n(assert (< x 1))\n(check-sat)\n"
# x^3 = y^3 + 7 + 13xy with x > 1000: Z3 4.8 does not finish this in seconds
# Z3 answers unknown at once (exponentiation with a variable exponent)
UNKNOWN = "(declare-const x Real)\n(assert (= (^ 2.0 x) 3.0))\n(check-sat)\n"
HARD = ("(declare-const x Int)(declare-const y Int)\n"
        "(assert (= (* x x x) (+ (* y y y) 7 (* x y 13))))\n(assert (> x 1000))\n(check-sat)\n")


def raw_z3(program: str) -> str:
    return subprocess.run(["z3", "-in", "-smt2", "-T:5"], input=program, capture_output=True, text=True).stdout


# ---------------------------------------------------------------- valid


def test_valid_sat_and_unsat_programs():
    v = smt.validate(REF)
    assert v == FormalVerdict(True, False, None, "sat", False)
    u = smt.validate(UNSAT)
    assert u.valid and u.status == "unsat" and u.diagnostic is None


def test_last_check_sat_is_the_status():
    prog = "(declare-const x Int)\n(push 1)\n(assert (< x x))\n(check-sat)\n(pop 1)\n(check-sat)\n"
    assert smt.validate(prog).status == "sat"
    assert smt.validate(prog.replace("(pop 1)\n(check-sat)\n", "")).status == "unsat"


def test_ill_typed_literal_is_not_an_error_for_z3():
    # Z3 silently makes this unsat instead of rejecting it: the verdict must not assume an error
    prog = "(declare-const x Int)\n(assert (= x 1.5))\n(check-sat)\n"
    assert "(error" not in raw_z3(prog)
    v = smt.validate(prog)
    assert v.valid and v.status == "unsat"


# ---------------------------------------------------------------- invalid


@pytest.mark.parametrize("name,program,expect", [
    ("unbalanced", "(declare-const x Int)\n(assert (> x 0)\n(check-sat)\n",
     "line 3 column 0: invalid assert command, ')' expected"),
    ("undeclared", "(declare-const x Int)\n(assert (> y 0))\n(check-sat)\n", "line 2 column 11: unknown constant y"),
    ("non-bool assert", "(declare-const x Int)\n(assert (+ x 1))\n(check-sat)\n",
     "line 2 column 15: invalid assert command, term is not Boolean"),
    ("get-value first", "(declare-const x Int)\n(get-value (x))\n(assert (> x 0))\n(check-sat)\n",
     "line 2 column 14: model is not available"),
    ("fence inside", "```smt2\n(declare-const x Int)\n(check-sat)\n```\n", "line 1 column 1: unexpected character"),
    ("non-ascii id", "(declare-const \u00e9t\u00e9 Int)\n(check-sat)\n", "unexpected character"),
    ("unterminated string", '(declare-const x String)\n(assert (= x "abc))\n(check-sat)\n', "end of string"),
])
def test_invalid_programs_carry_z3s_first_error(name, program, expect):
    v = smt.validate(program)
    assert not v.valid and not v.correct and v.status is None
    assert expect in v.diagnostic, (name, v.diagnostic)


def test_undeclared_symbol_still_prints_sat_but_is_invalid():
    prog = "(declare-const x Int)\n(assert (> y 0))\n(check-sat)\n"
    assert raw_z3(prog).strip().endswith("sat")  # why the exit line is no evidence
    assert not smt.validate(prog).valid
    assert not smt.verify(prog, REF).valid


def test_positions_match_z3_on_the_original_program():
    # markers are inserted after each command on the same line; positions are mapped back
    prog = '(declare-const x Int)(echo "abc")(assert (> y 0))(check-sat)\n(assert (and x true))(check-sat)'
    first = raw_z3(prog).split("\n")[1]
    assert first.startswith("(error")
    assert smt.validate(prog).diagnostic == first[len('(error "'):-2] == "line 1 column 45: unknown constant y"


@pytest.mark.parametrize("program", [
    "(declare-const x Int)\n(assert (> x 0))\n(exit)\n(check-sat)\n",
    "(declare-const x Int)\n(assert (> x 0))\n; (check-sat)\n",
    "(declare-const x Int)\n(assert (> x 0))\n",
    "",
    "   \n\t",
    "; only a comment\n",
])
def test_no_check_sat_result_is_invalid(program):
    v = smt.validate(program)
    assert not v.valid and v.diagnostic
    assert "error" not in raw_z3(program)  # Z3 itself reports nothing wrong


def test_output_channel_option_is_refused():
    prog = '(set-option :regular-output-channel "out.txt")\n(check-sat)\n'
    v = smt.validate(prog)
    assert not v.valid and "output channels" in v.diagnostic


# ---------------------------------------------------------------- correct / wrong answers


@pytest.mark.parametrize("name,candidate", [
    ("reordered", "(declare-const y Int)(declare-const x Int)\n(assert (= (+ y x) 10))\n(assert (< 0 x))\n(check-sat)"),
    ("and split/merged", "(declare-const x Int)(declare-const y Int)\n"
                         "(assert (and (> x 0) (= (+ x y) 10)))\n(check-sat)"),
    ("helper constant", "(declare-const x Int)(declare-const y Int)(declare-const total Int)\n"
                        "(assert (= total (+ x y)))(assert (= total 10))(assert (>= x 1))\n(check-sat)"),
    ("helper define-fun", "(declare-const x Int)(declare-const y Int)\n(define-fun s () Int (+ x y))\n"
                          "(assert (= s 10))(assert (not (<= x 0)))\n(check-sat)"),
    ("push/pop scratch", "(declare-const x Int)(declare-const y Int)\n(push 1)(assert (< x 0))(check-sat)(pop 1)\n"
                         "(assert (> x 0))(assert (= y (- 10 x)))\n(check-sat)\n(get-model)"),
    ("let and quantifier", "(declare-const x Int)(declare-const y Int)\n"
                           "(assert (let ((x (+ x y))) (= x 10)))\n"
                           "(assert (forall ((y Int)) (=> (<= y 0) (distinct x y))))\n(check-sat)"),
    ("harmful-looking option", "(set-option :smt.arith.solver 2)\n(declare-const x Int)(declare-const y Int)\n"
                               "(assert (> x 0))(assert (= (+ x y) 10))\n(check-sat)"),
])
def test_equivalent_but_different_programs_are_correct(name, candidate):
    v = smt.verify(candidate, REF, {})
    assert v == FormalVerdict(True, True, None, "sat", False), name


@pytest.mark.parametrize("name,candidate", [
    ("stronger", "(declare-const x Int)(declare-const y Int)(assert (> x 1))(assert (= (+ x y) 10))(check-sat)"),
    ("weaker", "(declare-const x Int)(declare-const y Int)(assert (>= x 0))(assert (= (+ x y) 10))(check-sat)"),
    ("other constraint", "(declare-const x Int)(declare-const y Int)(assert (> x 0))(assert (= (- x y) 10))"
                         "(check-sat)"),
    ("sat vs unsat", "(declare-const x Int)(declare-const y Int)(assert (> x 0))(assert (< x 0))(check-sat)"),
    ("missing constraint on y", "(declare-const x Int)(assert (> x 0))(check-sat)"),
    ("helper hides a constant", "(declare-const x Int)(declare-const h Int)(assert (> x 0))(assert (= (+ x h) 10))"
                                "(check-sat)"),
])
def test_wrong_answers_are_valid_but_incorrect(name, candidate):
    v = smt.verify(candidate, REF)
    assert v.valid and not v.correct and v.diagnostic is None, name


def test_unsat_unsat_is_correct_and_sat_vs_unsat_is_not():
    other_unsat = "(declare-const b Bool)\n(assert (and b (not b)))\n(check-sat)\n"
    assert smt.verify(other_unsat, UNSAT).correct
    v = smt.verify(REF, UNSAT)
    assert v.valid and not v.correct and v.status == "sat"


def test_sort_mismatch_on_a_reference_constant_is_incorrect():
    cand = "(declare-const x Real)(declare-const y Int)\n(assert (> x 0))\n(assert (= (+ x y) 10))\n(check-sat)\n"
    v = smt.verify(cand, REF)
    assert v.valid and v.status == "sat" and not v.correct  # Z3 mixes Int and Real without a word
    same = cand.replace("x Real", "x Int")
    assert smt.verify(same, REF).correct


def test_datatypes_are_shared_by_name():
    ref = ("(declare-datatypes ((Color 0)) (((red) (green) (blue))))\n(declare-const c Color)\n"
           "(assert (not (= c red)))\n(assert (not (= c green)))\n(check-sat)\n")
    cand = ("(declare-datatypes ((Color 0)) (((red) (green) (blue))))\n(declare-const c Color)\n"
            "(assert (= c blue))\n(check-sat)\n")
    assert smt.verify(cand, ref).correct
    assert not smt.verify(cand.replace("(= c blue)", "(= c red)"), ref).correct
    other = cand.replace("(blue)", "(blue) (black)")  # another sort under the same name
    v = smt.verify(other, ref)
    assert v.valid and not v.correct


def test_uninterpreted_functions_shared_with_the_reference():
    ref = "(declare-fun f (Int) Int)\n(assert (= (f 1) 2))\n(assert (> (f 2) (f 1)))\n(check-sat)\n"
    same = "(declare-fun f (Int) Int)\n(assert (and (< (f 1) (f 2)) (= 2 (f 1))))\n(check-sat)\n"
    assert smt.verify(same, ref).correct
    assert not smt.verify(same.replace("(< (f 1) (f 2))", "(<= (f 1) (f 2))"), ref).correct
    # a candidate-only function would need a second-order exists: fail closed
    helper = same.replace("(check-sat)", "(declare-fun g (Int) Int)(assert (= (g 0) 0))(check-sat)")
    v = smt.verify(helper, ref)
    assert v.valid and v.status == "sat" and not v.correct


def test_check_sat_assuming_literals_count():
    ref = "(declare-const a Bool)(declare-const b Bool)\n(assert (or a b))\n(check-sat-assuming ((not a)))\n"
    assert smt.verify("(declare-const a Bool)(declare-const b Bool)(assert (and b (not a)))(check-sat)", ref).correct
    assert not smt.verify("(declare-const a Bool)(declare-const b Bool)(assert b)(check-sat)", ref).correct


def test_invalid_or_unknown_reference_makes_everything_incorrect():
    v = smt.verify(REF, "(assert (> y 0))(check-sat)")
    assert v.valid and not v.correct
    v = smt.verify(UNKNOWN.replace("3.0", "3.5"), UNKNOWN)
    assert v.valid and v.status == "unknown" and not v.correct


def test_dispatch_through_the_shared_interface():
    assert verify_program("smt", REF, REF).correct
    assert not verify_program("smt", "(check-sat", REF).valid


# ---------------------------------------------------------------- timeouts, crashes, odd bytes


def test_hard_non_linear_times_out_incorrect_and_counted():
    v = smt.verify(HARD, HARD, timeout=0.5)
    assert not v.correct and v.timed_out
    assert "timeout" in v.diagnostic
    assert (HARD, 0.5, smt._z3_binary()) not in smt._REF_CACHE  # a timeout may be the machine: not cached


def test_equivalence_check_timeout_is_incorrect_and_counted():
    # both sat at once (x = y = 0), but "reference => candidate" asks Z3 to refute the hard branch
    ref = ("(declare-const x Int)(declare-const y Int)\n(assert (or (and (= x 0) (= y 0)) (and (> x 1000) "
           "(= (* x x x) (+ (* y y y) 7 (* x y 13))))))\n(check-sat)\n")
    cand = "(declare-const x Int)(declare-const y Int)\n(assert (and (= x 0) (= y 0)))\n(check-sat)\n"
    assert smt.validate(ref, timeout=2.0).status == "sat"
    v = smt.verify(cand, ref, timeout=2.0)
    assert v.valid and v.status == "sat" and not v.correct and v.timed_out


def test_huge_problem_with_tiny_timeout():
    decls = "".join(f"(declare-const x{i} Int)" for i in range(3000))
    asserts = "".join(f"(assert (> (* x{i} x{i + 1}) (+ x{i + 2} {i})))" for i in range(2997))
    v = smt.validate(decls + asserts + "(check-sat)", timeout=0.2)
    assert not v.valid and v.timed_out


def test_unknown_is_valid_but_never_correct_even_against_itself():
    v = smt.verify(UNKNOWN, UNKNOWN)
    assert v.valid and v.status == "unknown" and not v.correct and not v.timed_out


def test_non_utf8_output_is_decoded_with_replacement():
    # a lone surrogate stands for the raw byte 0xff: Z3 echoes a byte that is not UTF-8
    prog = '(echo "caf\udcff")\n(declare-const x Int)\n(check-sat)\n'
    v = smt.validate(prog)
    assert v.valid and v.status == "sat"
    out = smt._run_z3(prog.replace("\n(check-sat)", ""), 3.0).out
    assert "\ufffd" in out


def _fake_z3(tmp_path, body: str) -> str:
    exe = tmp_path / "z3"
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe)


def test_crashing_solver_is_an_invalid_verdict_not_an_exception(tmp_path, monkeypatch):
    # reads a little, prints a plausible "sat" and dies by SIGSEGV, like a solver crash mid-run
    monkeypatch.setenv(smt.Z3_ENV, _fake_z3(tmp_path, 'head -c 1 >/dev/null; echo sat; kill -SEGV $$'))
    v = smt.verify(REF + "\n", REF + " ")
    assert not v.valid and not v.correct
    assert v.diagnostic == "z3 crashed (signal 11)"


def test_missing_solver_binary_is_an_invalid_verdict(tmp_path, monkeypatch):
    monkeypatch.setenv(smt.Z3_ENV, str(tmp_path / "no-such-z3"))
    v = smt.validate(REF)
    assert not v.valid and "cannot start z3" in v.diagnostic


def test_hard_kill_when_the_solver_ignores_its_own_timeout(tmp_path, monkeypatch):
    monkeypatch.setenv(smt.Z3_ENV, _fake_z3(tmp_path, "exec sleep 30"))
    import time
    t = time.monotonic()
    v = smt.validate(REF, timeout=0.5)
    assert time.monotonic() - t < 5
    assert not v.valid and v.timed_out


def test_z3_never_writes_into_the_callers_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    smt.validate('(set-option :diagnostic-output-channel "diag.txt")\n(assert (> y 0))\n(check-sat)\n')
    smt.validate("(declare-const x Int)(check-sat)")
    assert os.listdir(tmp_path) == []


def test_a_reused_z3_process_gives_the_same_verdicts():
    # pooled Z3 processes count lines across scripts and keep some options after (reset)
    prog = "(declare-const x Int)\n(assert (> x 0))(assert (> y 0))\n(check-sat)\n"
    first = [smt.validate(prog) for _ in range(3)]
    assert all(v.diagnostic == "line 2 column 27: unknown constant y" for v in first), first
    assert smt._POOL, "the pool keeps a finished process"
    noisy = "(set-option :print-success true)\n(declare-const x Int)\n(assert (< x x))\n(check-sat)\n"
    assert smt.validate(noisy).status == "unsat"
    assert smt.validate(REF) == FormalVerdict(True, False, None, "sat", False)
    assert smt.validate(prog).diagnostic == "line 2 column 27: unknown constant y"


def test_a_forked_worker_does_not_share_the_parents_z3_processes():
    smt.validate(REF)
    assert smt._POOL
    parent = {z.proc.pid for z in smt._POOL}
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: its pool starts empty, and its verdicts come from its own Z3
        try:
            ok = not smt._POOL and smt.validate(REF).status == "sat" and \
                not parent & {z.proc.pid for z in smt._POOL}
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    assert os.read(r, 1) == b"1"
    assert {z.proc.pid for z in smt._POOL} == parent and smt.validate(REF).status == "sat"


def test_a_candidate_timeout_option_does_not_leak_into_the_checks():
    # a 1 ms soft timeout set after the candidate's check-sat must not make the checks "unknown"
    cand = REF + "(set-option :timeout 1)\n"
    v = smt.verify(cand, REF)
    assert v.valid and v.status == "sat" and v.correct
