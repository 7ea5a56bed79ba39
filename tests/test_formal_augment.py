"""Repair pairs, template repair and ``distill augment`` with the real z3, clingo and dot binaries.

Every kept pair must carry the solver's own diagnostic for its broken program and a valid gold
program; a corruption the solver accepts must not be kept; template repair must make valid what
it changes and leave valid programs alone."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys

import pytest

from distill.verify.formal import extract_program, validate_program
from distill.verify.formal.augment import OPERATORS, make_repair_pairs, make_rename_rows
from distill.verify.formal.repair import fix_rate, infer_sort, template_repair

SOLVER = {"smt": "z3", "asp": "clingo", "dot": "dot"}


def needs(language):
    return pytest.mark.skipif(shutil.which(SOLVER[language]) is None, reason=f"needs the {SOLVER[language]} binary")


SMT = [
    {"id": "s1", "question": "An even x between 1 and 5.",
     "gold_answer": "(declare-const x Int)\n(assert (> x 1))\n(assert (< x 5))\n(assert (= (mod x 2) 0))\n"
                    "(check-sat)\n(get-value (x))"},
    {"id": "s2", "question": "p holds and q does not.",
     "gold_answer": "; two booleans\n(declare-const p Bool)\n(declare-const q Bool)\n(assert (and p (not q)))\n"
                    "(check-sat)\n(get-model)"},
    {"id": "s3", "question": "Two reals summing to 2.5, r > s.",
     "gold_answer": "(set-logic QF_LRA)\n(declare-fun r () Real)\n(declare-const s Real)\n"
                    "(assert (= (+ r s) 2.5))\n(assert (> r s))\n(check-sat)"},
    {"id": "s4", "question": "a > 3 and a < 2.",
     "gold_answer": "(declare-const a Int)\n(assert (and (> a 3) (< a 2)))\n(check-sat)"},
    {"id": "s5", "question": "f(k) = 3 with k nonzero.",
     "gold_answer": "(declare-fun f (Int) Int)\n(declare-const k Int)\n(assert (= (f k) 3))\n"
                    "(assert (distinct k 0))\n(check-sat)\n(get-model)"},
    {"id": "s6", "question": "The largest x up to 10.",
     "gold_answer": "(declare-const x Int)\n(assert (<= x 10))\n(maximize x)\n(check-sat)\n(get-objectives)"},
    {"id": "s7", "question": "A colour that is not red.",
     "gold_answer": "(declare-datatypes ((Color 0)) (((red) (green))))\n(declare-const c Color)\n"
                    "(assert (not (= c red)))\n(check-sat)\n(get-value (c))"},
    {"id": "s8", "question": "Double z is 8.",
     "gold_answer": "(define-fun double ((y Int)) Int (* 2 y))\n(declare-const z Int)\n"
                    "(assert (= (double z) 8))\n(check-sat)\n(get-value (z))"},
]
ASP = [
    {"id": "a1", "question": "Colour a path of three nodes with two colours.",
     "gold_answer": "% nodes\nnode(1..3). edge(1,2). edge(2,3).\ncol(r;g).\n% choose one colour per node\n"
                    "{ color(N,C) : col(C) } = 1 :- node(N).\n:- edge(X,Y), color(X,C), color(Y,C).\n#show color/2."},
    {"id": "a2", "question": "Who likes whom.",
     "gold_answer": "person(\"Ann Lee\"). person(\"Bob\").\nlikes(X,Y) :- person(X), person(Y), X != Y.\n"
                    "#show likes/2."},
    {"id": "a3", "question": "Cheapest pick.",
     "gold_answer": "item(a;b;c). cost(a,3). cost(b,1). cost(c,2).\n{ pick(I) : item(I) }.\n"
                    ":- not pick(a), not pick(b).\n#minimize { C,I : pick(I), cost(I,C) }.\n#show pick/1."},
    {"id": "a4", "question": "Reachability.",
     "gold_answer": "e(1,2). e(2,3).\nr(X,Y) :- e(X,Y).\nr(X,Z) :- r(X,Y), e(Y,Z).\nname(\"x\")."},
    {"id": "a5", "question": "Rooks on a 3x3 board.",
     "gold_answer": "#const n=3.\nq(1..n).\n1 { rook(X,Y) : q(Y) } 1 :- q(X).\n"
                    ":- rook(X1,Y), rook(X2,Y), X1 < X2.\n#show rook/2."},
    {"id": "a6", "question": "Prefer b.",
     "gold_answer": "opt(a;b).\n1 { sel(O) : opt(O) } 1.\n:~ sel(a). [2@1]\n:~ sel(b). [1@1]\n#show sel/1."},
    {"id": "a7", "question": "Neighbours.",
     "gold_answer": "% people\nlives(\"Ann\", \"Oslo\").\nlives(\"Bo\", \"Oslo\").\n% same city\n"
                    "neighbour(X,Y) :- lives(X,C), lives(Y,C), X < Y."},
    {"id": "a8", "question": "Odd numbers up to 4.",
     "gold_answer": "%* numbers *%\nn(1..4).\neven(X) :- n(X), X \\ 2 = 0.\nodd(X) :- n(X), not even(X).\n"
                    "#show odd/1."},
]
DOT = [
    {"id": "d1", "question": "a to b to c.", "gold_answer": "digraph G {\n  a -> b;\n  b -> c [label=\"next\"];\n}"},
    {"id": "d2", "question": "Cities.",
     "gold_answer": "graph Cities {\n  \"New York\" -- Boston;\n  Boston -- \"Los Angeles\";\n}"},
    {"id": "d3", "question": "Start to stop.",
     "gold_answer": "digraph {\n  start [label=<<b>Start</b>>];\n  start -> stop;\n}"},
    {"id": "d4", "question": "A flow.",
     "gold_answer": "digraph flow {\n  rankdir=LR;\n  in -> proc -> out;\n  proc [label=\"Process step\"];\n}"},
    {"id": "d5", "question": "A strict path.", "gold_answer": "strict graph {\n  a -- b;\n  a -- b;\n  b -- c\n}"},
    {"id": "d6", "question": "A cluster.",
     "gold_answer": "digraph G {\n  subgraph cluster_0 { label=\"Group A\"; x; y; }\n  x -> y -> z;\n}"},
    {"id": "d7", "question": "Cities again.",
     "gold_answer": "digraph {\n  node [shape=box];\n  \"St. Louis\" -> Denver;\n}"},
    {"id": "d8", "question": "A table node.",
     "gold_answer": "digraph T {\n  t [label=<<table><tr><td>A</td></tr></table>>];\n  t -> u;\n}"},
]
ROWS = {"smt": SMT, "asp": ASP, "dot": DOT}


@pytest.fixture(scope="module")
def pairs():
    """language -> (pairs, report), built once (every solver call is real)."""
    out = {}
    for lang, rows in ROWS.items():
        if shutil.which(SOLVER[lang]):
            out[lang] = make_repair_pairs(lang, rows, seed=0)
    return out


@pytest.mark.parametrize("language", ["smt", "asp", "dot"])
def test_kept_pairs_carry_the_real_diagnostic_and_a_valid_gold(language, pairs):
    if language not in pairs:
        pytest.skip(f"needs the {SOLVER[language]} binary")
    rows, report = pairs[language]
    print("\n" + report.format())
    assert rows, "no pair kept"
    assert {r["operator"] for r in rows} == set(OPERATORS[language])  # every operator yields real errors
    golds = {r["gold_answer"] for r in ROWS[language]}
    for r in rows:
        broken = validate_program(language, r["broken"])
        assert not broken.valid and r["error"] == broken.diagnostic, r
        assert r["gold_answer"] in golds and validate_program(language, r["gold_answer"]).valid
        assert r["broken"] != r["gold_answer"]
        system, user, assistant = r["messages"]
        assert [system["role"], user["role"], assistant["role"]] == ["system", "user", "assistant"]
        assert r["question"] in user["content"] and r["broken"].strip() in user["content"]
        assert r["error"] in user["content"]
        assert extract_program(language, assistant["content"]) == r["gold_answer"].strip()
    assert sum(report.kept.values()) == len(rows)
    assert all(report.kept[op] <= report.tried[op] for op in report.tried)


def test_pairs_are_deterministic_for_a_seed():
    if not shutil.which("clingo"):
        pytest.skip("needs the clingo binary")
    a, _ = make_repair_pairs("asp", ASP[:2], seed=3)
    b, _ = make_repair_pairs("asp", ASP[:2], seed=3)
    assert a == b


@needs("asp")
def test_a_corruption_clingo_accepts_is_not_kept():
    """``"x"`` -> ``'x'``: clingo reads ``name('x')`` as a valid program, so no pair is made."""
    row = {"id": "q", "question": "A name.", "gold_answer": 'name("x").'}
    assert validate_program("asp", "name('x').").valid  # the premise, checked against the real clingo
    rows, report = make_repair_pairs("asp", [row], seed=0, operators=["single_quotes"])
    assert report.tried["single_quotes"] == 1 and report.kept["single_quotes"] == 0 and rows == []
    # ... while a quoted word that reads as a variable is an error, and is kept with clingo's message
    rows, report = make_repair_pairs("asp", [{"id": "v", "question": "B.", "gold_answer": 'p("Bob").'}], seed=0,
                                     operators=["single_quotes"])
    assert report.kept["single_quotes"] == 1 and "unsafe" in rows[0]["error"]


@needs("dot")
def test_a_corruption_graphviz_accepts_is_not_kept():
    """Unquoting ``"New York"`` gives ``New York -- Boston``: two statements Graphviz accepts."""
    rows, report = make_repair_pairs("dot", [DOT[1]], seed=0, operators=["unquoted_space_id"])
    assert report.tried["unquoted_space_id"] == 1 and report.kept["unquoted_space_id"] == 0 and rows == []


@needs("asp")
def test_an_invalid_source_program_is_skipped():
    rows, report = make_repair_pairs("asp", [{"id": "bad", "question": "?", "gold_answer": "p(X)."}], seed=0)
    assert rows == [] and report.skipped == 1 and report.sources == 0


@pytest.mark.parametrize("language", ["smt", "asp", "dot"])
def test_template_repair_fixes_what_it_changes_and_leaves_valid_programs(language, pairs):
    if language not in pairs:
        pytest.skip(f"needs the {SOLVER[language]} binary")
    rows, _ = pairs[language]
    for src in ROWS[language]:
        assert template_repair(language, src["gold_answer"]) == src["gold_answer"]
    changed = 0
    for r in rows:
        fixed = template_repair(language, r["broken"])
        if fixed != r["broken"]:
            changed += 1
            assert validate_program(language, fixed).valid, (r["operator"], fixed)
    assert (changed, len(rows)) == fix_rate(language, rows)
    print(f"\n{language}: template repair fixes {changed} / {len(rows)}")
    assert changed > 0


@needs("smt")
def test_template_repair_smt_rules():
    ok = "(declare-const x Int)\n(assert (> x 1))\n(check-sat)"
    # a dropped paren is closed where the next command starts, giving back the original
    assert template_repair("smt", "(declare-const x Int)\n(assert (> x 1)\n(check-sat)") == ok
    # prose and fences around the program
    assert template_repair("smt", f"Here is the model:\n```smt2\n{ok}\n```\nIt is sat.") == ok
    # a missing check-sat
    assert template_repair("smt", "(declare-const x Int)\n(assert (> x 1))") == ok
    # an undeclared constant, declared with the sort its context implies
    out = template_repair("smt", "(declare-const p Bool)\n(assert (and p q))\n(check-sat)")
    assert "(declare-const q Bool)" in out and validate_program("smt", out).valid
    out = template_repair("smt", "(declare-const r Real)\n(assert (> r s))\n(check-sat)")
    assert "(declare-const s Real)" in out and validate_program("smt", out).valid
    out = template_repair("smt", "(assert (> (+ y 1) 3))\n(check-sat)")
    assert "(declare-const y Int)" in out and validate_program("smt", out).valid
    assert infer_sort("(assert (> (/ z 2) 1))", "z") == "Real"
    # nothing applies: unchanged (never an unrelated template)
    hopeless = "(declare-const x Int)\n(assert (+ x 1))\n(check-sat)"
    assert template_repair("smt", hopeless) == hopeless


@needs("asp")
def test_template_repair_asp_rules():
    assert template_repair("asp", "a. b :- a") == "a. b :- a."
    assert template_repair("asp", "{{ p(1..2) }} 1.") == "{ p(1..2) } 1."
    assert template_repair("asp", "```asp\na.\n```") == "a."
    assert template_repair("asp", "p(X).") == "p(X)."  # unsafe: no rule applies


@needs("dot")
def test_template_repair_dot_rules():
    assert template_repair("dot", "digraph G { a -- b; }") == "digraph G { a -> b; }"
    assert template_repair("dot", "digraph G {\n a -> b;") == "digraph G {\n a -> b;\n}"
    assert template_repair("dot", "Sure:\ndigraph G { a -> b; }\nDone.") == "digraph G { a -> b; }"
    assert template_repair("dot", 'graph G { a -- "x -- y"; }') == 'graph G { a -- "x -- y"; }'  # valid: unchanged


@needs("asp")
def test_rename_rows_keep_the_answer_sets():
    rows, report = make_rename_rows(ASP, seed=0)
    assert report.kept["rename"] == len(rows) > 0
    from distill.verify.formal import verify_program
    for r in rows:
        assert r["gold_answer"] != r["original"]
        assert verify_program("asp", r["gold_answer"], r["original"]).correct


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "distill.commands", "augment", *args], capture_output=True,
                          text=True, cwd=cwd)


@needs("dot")
def test_command_end_to_end(tmp_path):
    src = tmp_path / "dot.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in DOT))
    out = tmp_path / "pairs.jsonl"
    res = _cli("--task", "dot", "--input", str(src), "--out", str(out), "--seed", "1", "--template-baseline",
               "--progress")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and f"wrote {len(rows)} rows" in res.stdout
    assert "drop_closing_brace" in res.stdout and "template repair fixes" in res.stdout
    for r in rows:
        assert validate_program("dot", r["broken"]).diagnostic == r["error"]

    # a correct file: its rows carry no question; the source rows give it
    correct = tmp_path / "dot.correct.jsonl"
    correct.write_text(json.dumps({"id": "d1", "gold_answer": DOT[0]["gold_answer"],
                                   "responses": ["```dot\ndigraph H { x -> y; }\n```"]}) + "\n")
    res = _cli("--task", "dot", "--input", str(correct), "--out", str(out))
    assert res.returncode == 2 and f"{correct}:1:" in res.stderr and "--source" in res.stderr
    assert res.stderr.count("\n") == 1
    res = _cli("--task", "dot", "--input", str(correct), "--source", str(src), "--out", str(out))
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["gold_answer"] for r in rows} == {DOT[0]["gold_answer"], "digraph H { x -> y; }"}
    assert all(r["question"] == DOT[0]["question"] for r in rows)


def test_command_bad_input_is_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(DOT[0]) + "\n{not json\n")
    out = tmp_path / "out.jsonl"
    res = _cli("--task", "dot", "--input", str(bad), "--out", str(out))
    assert res.returncode == 2 and f"{bad}:2:" in res.stderr and res.stderr.count("\n") == 1
    assert not out.exists()
    res = _cli("--task", "dot", "--kind", "rename", "--input", str(bad), "--out", str(out))
    assert res.returncode == 2 and "rename" in res.stderr and res.stderr.count("\n") == 1
    res = _cli("--task", "gsm8k", "--input", str(bad), "--out", str(out))
    assert res.returncode == 2 and "not a formal-language task" in res.stderr


@needs("asp")
def test_command_rename(tmp_path):
    src = tmp_path / "asp.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in ASP))
    out = tmp_path / "renamed.jsonl"
    res = _cli("--task", "asp", "--kind", "rename", "--input", str(src), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "rename" in res.stdout and len(out.read_text().splitlines()) >= 1


def test_operators_do_not_touch_comments_or_strings():
    """An operator edits code only: the ``.`` in a comment and the ``{`` in a string stay."""
    from distill.verify.formal.augment import asp_double_brace, asp_drop_final_period
    prog = 'a.\n% ends here.\nb("{").'
    assert asp_drop_final_period(prog, random.Random(0)) == 'a.\n% ends here.\nb("{")'
    assert asp_double_brace(prog, random.Random(0)) is None


def test_smt_operators_skip_strings_and_quoted_symbols():
    from distill.verify.formal.augment import smt_drop_paren, smt_undeclared_symbol
    prog = '(declare-const s String)\n(assert (= s ")"))\n(declare-const |a b| Int)\n(assert (> |a b| 2))\n(check-sat)'
    for seed in range(30):
        assert '")"' in smt_drop_paren(prog, random.Random(seed))
    renamed = smt_undeclared_symbol(prog, random.Random(0))
    assert renamed.count("(declare-const s String)") == 1 and "s_1" in renamed


@needs("dot")
def test_dot_operators_and_repair_skip_comments_and_strings():
    from distill.verify.formal.augment import dot_drop_closing_brace, dot_undirected_edge_in_digraph
    prog = 'digraph G {\n  a -> b; // } not this\n  /* { */ c -> "x}";\n}'
    broken = dot_drop_closing_brace(prog, random.Random(0))
    assert broken == prog[:-1] and not validate_program("dot", broken).valid
    assert template_repair("dot", broken) == prog[:-1].rstrip() + "\n}"
    broken = dot_undirected_edge_in_digraph(prog, random.Random(1))
    assert template_repair("dot", broken) == prog


@pytest.mark.parametrize("language", ["smt", "asp", "dot"])
def test_template_repair_never_turns_prose_into_a_program(language):
    """``hello world`` must not come back as ``(check-sat)`` / ``hello world.``: valid, but unrelated."""
    if shutil.which(SOLVER[language]) is None:
        pytest.skip(f"needs the {SOLVER[language]} binary")
    for prose in ("hello world", "I cannot solve this problem", "The answer is 42"):
        assert template_repair(language, prose) == prose
