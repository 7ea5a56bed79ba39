"""ASP verification with the real clingo binary: validity, diagnostics, projected answer-set
equality, optimisation, model cap, timeouts, split UTF-8, and checked alpha-renaming."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time

import clingo.ast
import pytest

from distill.verify.formal import FormalVerdict, validate_program, verify_program
from distill.verify.formal import asp
from distill.verify.formal import asp_rename
from distill.verify.formal.asp_rename import rename_checked, rename_variables, substitute

pytestmark = pytest.mark.skipif(shutil.which("clingo") is None, reason="needs the clingo binary (Debian gringo)")

COLOURING = """\
% nodes and edges
node(1..3). edge(1,2). edge(2,3).
% each node gets one colour
1 { colour(N,C) : col(C) } 1 :- node(N).
col(r;g).
% neighbours differ
:- edge(X,Y), colour(X,C), colour(Y,C).
#show colour/2.
"""


# ---------------------------------------------------------------- validity and diagnostics
def test_valid_program():
    v = asp.validate(COLOURING, timeout=5)
    assert v == FormalVerdict(True, False, None, "sat", False)
    assert validate_program("asp", "a :- not b. b :- not a. :- a, b.").status == "sat"
    assert asp.validate("a. :- a.").status == "unsat"  # unsat is still a valid program


@pytest.mark.parametrize("program, expected", [
    ("a.\nb :- {c.\n", "line 2 column 8: syntax error, unexpected ., expecting } or ;"),   # syntax error
    ("a.\nb", "line 3 column 1: syntax error, unexpected EOF"),                            # missing final period
    ("{{a}}.", "line 1 column 2: syntax error, unexpected {"),                             # { -> {{
    ("a. // a comment\n", "line 1 column 4: syntax error, unexpected /"),                   # % -> //
    ("a.\nshow a/0.", "line 2 column 6: syntax error, unexpected <IDENTIFIER>"),            # #show without #
])
def test_invalid_programs_carry_line_and_column(program, expected):
    v = asp.validate(program, timeout=5)
    assert not v.valid and not v.correct and v.status is None
    assert v.diagnostic == expected


def test_unsafe_variable_is_found_at_grounding_not_parsing():
    program = "p(X) :- q.\nq."
    clingo.ast.parse_string(program, lambda stmt: None)  # parses fine: only grounding sees it
    v = asp.validate(program, timeout=5)
    assert not v.valid
    assert v.diagnostic.startswith("line 1 column 1: unsafe variables in:")
    assert "line 1 column 3: note: 'X' is unsafe" in v.diagnostic


def test_non_ascii_identifier_split_utf8_gives_a_verdict_not_an_exception():
    program = "p(\u00e4).\nq :- \u00fc(X)."
    raw = subprocess.run(["clingo", "--outf=2"], input=program.encode(), capture_output=True, timeout=10)
    with pytest.raises(UnicodeDecodeError):  # clingo really prints half a UTF-8 sequence
        raw.stderr.decode("utf-8")
    v = asp.validate(program, timeout=5)
    assert not v.valid
    assert v.diagnostic.startswith("line 1 column 3: lexer error, unexpected")
    assert "\ufffd" in v.diagnostic
    w = verify_program("asp", program, "p(a).")
    assert not w.valid and not w.correct


def test_warning_and_info_messages_are_not_errors():
    program = "a :- b.\n#show c/0."
    raw = subprocess.run(["clingo", "--outf=2"], input=program.encode(), capture_output=True, timeout=10)
    assert b"info:" in raw.stderr  # clingo does complain ...
    v = asp.validate(program, timeout=5)
    assert v.valid and v.diagnostic is None  # ... but not at error level


def test_first_error_normalisation():
    err = ("<block>:1:6-7: info: atom does not occur in any rule head:\n  b\n\n"
           "<block>:2:13-14: error: syntax error, unexpected <IDENTIFIER>\n\n"
           "<block>:3:1-4:2: error: a later error\n\n*** ERROR: (clingo): parsing failed\n")
    assert asp.first_error(err) == "line 2 column 13: syntax error, unexpected <IDENTIFIER>"
    assert asp.first_error("*** ERROR: (clingo): out of memory\n") == "out of memory"
    assert asp.first_error("<block>:1:6-7: info: atom does not occur\n") is None


def test_refused_programs():
    assert asp.validate("#script (python)\nimport os\n#end.\np(1).").diagnostic.startswith("#script blocks")
    assert asp.validate("  % only a comment\n").diagnostic.startswith("empty program")
    assert not asp.verify("", "a.").valid


def test_solver_crash_is_an_invalid_verdict_not_an_exception(monkeypatch):
    crash = ("import os, signal, sys; sys.stdout.write('{\"Result\": \"SATISFIABLE\", \"Call\": [');"
             "sys.stdout.flush(); os.kill(os.getpid(), signal.SIGSEGV)")
    monkeypatch.setattr(asp, "_clingo_cmd", lambda: [sys.executable, "-c", crash])
    v = asp.verify("a.", "a.")
    assert not v.valid and not v.correct and "crashed" in v.diagnostic
    # a clean exit code with an answer is still required
    fake = "import json; print(json.dumps({'Result': 'SATISFIABLE', 'Call': [{'Witnesses': [{'Value': []}]}]}))"
    monkeypatch.setattr(asp, "_clingo_cmd", lambda: [sys.executable, "-c", fake])
    assert not asp.validate("a.").valid
    monkeypatch.setattr(asp, "_clingo_cmd", lambda: ["/nonexistent/clingo"])
    v = asp.validate("a.")
    assert not v.valid and "could not be started" in v.diagnostic


def test_errors_in_row_facts_are_located_in_the_facts():
    v = asp.verify("q(X) :- p(X).", "q(X) :- p(X).", {"facts": "p(1).\np(2)"})
    assert not v.valid and v.diagnostic.startswith("facts line ")


# ---------------------------------------------------------------- correctness
def test_same_program_and_reordering_are_correct():
    reordered = "#show colour/2.\ncol(g;r).\n:- colour(X,C), colour(Y,C), edge(X,Y).\n" \
                "node(1). node(2). node(3). edge(2,3). edge(1,2).\n{ colour(N,C) : col(C) } = 1 :- node(N).\n"
    assert verify_program("asp", COLOURING, COLOURING).correct
    v = verify_program("asp", reordered, COLOURING)
    assert v == FormalVerdict(True, True, None, "sat", False)


def test_different_answer_sets_are_wrong():
    wrong = COLOURING.replace("col(r;g).", "col(r;g;b).")  # more colours: other answer sets
    v = verify_program("asp", wrong, COLOURING)
    assert v.valid and not v.correct


def test_superset_of_models_is_wrong_though_the_first_model_may_agree():
    reference = "{a; b}.\n:- a, b."       # {}, {a}, {b}
    superset = "{a; b}."                  # {}, {a}, {b}, {a,b}
    assert verify_program("asp", superset, reference).valid
    assert not verify_program("asp", superset, reference).correct
    assert not verify_program("asp", reference, superset).correct  # subset
    assert verify_program("asp", "{a; b}.\n:- b, a.", reference).correct


def test_equal_projection_with_different_helper_predicates():
    reference = "n(1..4).\neven(X) :- n(X), X \\ 2 = 0.\n#show even/1."
    candidate = "n(1..4).\nodd(X) :- n(X), X \\ 2 = 1.\nhelper(X) :- n(X), not odd(X).\neven(X) :- helper(X)."
    assert verify_program("asp", candidate, reference).correct
    # what the candidate itself shows besides does not matter either: the projection is the reference's
    assert verify_program("asp", candidate + "\n#show helper/1. #show even/1.", reference).correct
    assert not verify_program("asp", candidate + "\neven(9).", reference).correct
    # without a #show in the reference, all its signatures count: the candidate's helper/1 does not,
    # but its n/1 does
    assert verify_program("asp", candidate, "n(1..4). even(2). even(4).").correct
    assert not verify_program("asp", candidate, "n(1..3). even(2). even(4).").correct
    # a reference predicate that is empty in every model still counts
    assert not verify_program("asp", "p(1). q(1).", "p(1). q(X) :- p(X), X > 5.").correct


def test_optimisation_compares_only_optimal_models():
    base = "{ in(1..4) }.\n:- not 2 { in(X) }.\n"
    reference = base + "#minimize { X : in(X) }."        # optimum: {in(1), in(2)}
    as_weak = base + ":~ in(X). [X@0, X]"                # the same optimisation, other syntax
    as_max = base + "#maximize { -X, X : in(X) }."
    no_opt = base                                        # every model with >= 2 elements
    assert verify_program("asp", as_weak, reference).correct
    assert verify_program("asp", as_max, reference).correct
    assert not verify_program("asp", no_opt, reference).correct
    assert verify_program("asp", "in(1). in(2).", reference).correct  # its only model is the optimum
    assert not verify_program("asp", base + "#minimize { -X, X : in(X) }.", reference).correct


def test_unsat_unsat_is_correct_and_unsat_sat_is_not():
    v = verify_program("asp", "a. :- a.", "p(1). :- p(X).")
    assert v == FormalVerdict(True, True, None, "unsat", False)
    assert not verify_program("asp", "a. :- a.", "a.").correct
    assert not verify_program("asp", "a.", "a. :- a.").correct


def test_model_cap_hit_is_incorrect():
    assert verify_program("asp", "{ a(1..9) }.", "{ a(1..9) }.").correct          # 512 models
    v = verify_program("asp", "{ a(1..10) }.", "{ a(1..10) }.")                    # 1024 > 1000
    assert v.valid and not v.correct and not v.timed_out
    assert not asp.verify("{ a(1..3) }.", "{ a(1..3) }.", model_cap=7).correct   # 8 > 7
    assert asp.verify("{ a(1..3) }.", "{ a(1..3) }.", model_cap=8).correct


def test_timeout_kills_a_grounding_blow_up():
    blow_up = "p(1..1000).\nq(X,Y,Z) :- p(X), p(Y), p(Z)."
    t0 = time.monotonic()
    v = asp.validate(blow_up, timeout=0.5)
    assert time.monotonic() - t0 < 3
    assert not v.valid and v.timed_out and "timed out" in v.diagnostic
    t0 = time.monotonic()
    w = verify_program("asp", blow_up, "p(1..3).", timeout=0.5)
    assert time.monotonic() - t0 < 3
    assert not w.correct and w.timed_out
    # all models take too long, the first one does not: valid, but incorrect (timed out)
    many = "{ a(1..60) }.\n:- #sum { X : a(X) } != 300."
    slow = asp.verify(many, many, timeout=0.5, model_cap=10 ** 9)
    assert slow.valid and not slow.correct and slow.timed_out
    ref_side = verify_program("asp", "p(1..3).", blow_up, timeout=0.5)
    assert ref_side.valid and not ref_side.correct and ref_side.timed_out


def test_clingo_child_cannot_outlive_a_killed_caller():
    """A caller killed mid-grounding (a batch worker at its deadline) leaves no clingo behind:
    clingo's own --time-limit (one second past ours) stops even grounding."""
    code = ("from distill.verify.formal import asp; "
            "asp.validate('p(1..2000).\\nq(X,Y,Z) :- p(X), p(Y), p(Z).', timeout=2)")
    caller = subprocess.Popen([sys.executable, "-c", code])
    children: list[int] = []
    deadline = time.monotonic() + 10
    while not children and time.monotonic() < deadline:
        time.sleep(0.05)
        with open(f"/proc/{caller.pid}/task/{caller.pid}/children") as fh:
            children = [int(p) for p in fh.read().split()]
    assert children, "the caller never started clingo"
    caller.kill()
    caller.wait()
    gone_by = time.monotonic() + 6  # time limit 3 s + slack
    while time.monotonic() < gone_by and _alive(children[0]):
        time.sleep(0.1)
    assert not _alive(children[0])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_row_facts_are_appended_to_both():
    reference = "q(X) :- p(X)."
    candidate = "q(X) :- p(X), X > 1."
    assert not verify_program("asp", candidate, reference, {"facts": "p(1). p(2)."}).correct
    assert verify_program("asp", candidate, reference, {"facts": "p(2). p(3)."}).correct
    assert verify_program("asp", candidate, reference, {"facts": ["p(2).", "p(3)."]}).correct


# ---------------------------------------------------------------- alpha-renaming
def _sequential(program: str, mapping: dict[str, str]) -> str:
    """The public pipeline's renaming: one variable after another (the bug)."""
    for old, new in mapping.items():
        program = re.sub(rf"\b{old}\b", new, program)
    return program


def test_renaming_bug_example_sequential_vs_simultaneous():
    rule = "q(X,Y) :- p(X,Y)."
    mapping = {"X": "Y", "Y": "V3"}
    assert _sequential(rule, mapping) == "q(V3,V3) :- p(V3,V3)."   # the research bug
    assert substitute(rule, mapping) == "q(Y,V3) :- p(Y,V3)."        # simultaneous
    facts = {"facts": "p(1,2). p(3,3)."}
    assert verify_program("asp", substitute(rule, mapping), rule, facts).correct
    assert not verify_program("asp", _sequential(rule, mapping), rule, facts).correct


def test_renaming_skips_strings_comments_anonymous_and_identifiers():
    program = ('% X is a node\nq(X,Y) :- p(X,Y,_), not r("X Y"), aX = aX.\n'
               "%* block Y *%\ns(Z) :- p(Z,_,_).")
    out = rename_variables(program, 0)
    assert out.startswith("% X is a node\n") and '"X Y"' in out and "%* block Y *%" in out
    assert "aX = aX" in out and out.count("_") == program.count("_")
    assert asp_rename.variables(out).isdisjoint({"X", "Y", "Z"})  # fresh names, never the old ones
    assert out.replace("\n", " ").count(".") == program.replace("\n", " ").count(".")


def test_renaming_is_per_rule_fresh_and_deterministic():
    program = "a(X,Y,Z) :- b(X), b(Y), b(Z).\nc(X) :- b(X).\n:~ a(X,Y,Z). [X@1, Y, Z]\nb(1..2)."
    out = rename_variables(program, 7)
    assert out == rename_variables(program, 7)
    assert rename_variables(program, 7) != rename_variables(program, 8)
    first, second, weak = out.splitlines()[:3]
    names = re.findall(r"\b[A-Z][A-Za-z0-9_']*", first)
    assert len(set(names)) == 3 and not set(names) & {"X", "Y", "Z"}
    w = re.findall(r"\b[A-Z][A-Za-z0-9_']*", weak)
    assert w[:3] == w[3:]  # the weak constraint's terms follow its body's renaming
    assert verify_program("asp", out, program).correct


def test_rename_checked_keeps_meaning_and_rejects_a_broken_renaming(monkeypatch):
    programs = [COLOURING,
                "path(X,Y) :- edge(X,Y).\npath(X,Z) :- path(X,Y), edge(Y,Z).\n#show path/2.",
                "{ in(X) : item(X,_) }.\n:- #sum { W,X : in(X), item(X,W) } > 5.\n"
                "#maximize { W,X : in(X), item(X,W) }.\n#show in/1."]
    facts = [None, "edge(1,2). edge(2,3). edge(3,1).", "item(a,2). item(b,3). item(c,4)."]
    for program, f in zip(programs, facts):
        for seed in range(3):
            renamed = rename_checked(program, seed, f)
            assert renamed is not None and renamed != program
    # the check has teeth: a renaming that merges variables is rejected
    monkeypatch.setattr(asp_rename, "rename_variables",
                        lambda p, s: _sequential(p, {"X": "Y", "Y": "V3"}))
    assert rename_checked("q(X,Y) :- p(X,Y).", 0, "p(1,2).") is None
