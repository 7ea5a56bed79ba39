"""Formal-language tasks (``smt``, ``asp``, ``dot``) through the whole data engine: the registry, the row
validator, the core prompt, ``distill prompt`` against a real local OpenAI-compatible server, the
verifier worker processes and ``distill regen-correct``.

The verdicts are the real ones of :mod:`distill.verify.formal` (Z3, clingo and Graphviz), here and in
the verifier worker processes; their own cases live in the per-language tests. These tests check that
the verdicts (valid, diagnostic, time-outs) reach every output unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_openai_server import FakeTeacherServer

from distill.commands import main
from distill.data.tasks import FORMAL_KINDS, TASKS, task_names
from distill.verify import batch, formal, score
from distill.verify.types import NA, Verdict

#: language -> (reference, a correct copy, valid but wrong, invalid, extra row fields)
PROGRAMS = {
    "smt": ("(declare-const x Int)\n(assert (= x 3))\n(check-sat)\n",
            "(declare-const x Int)\n(assert (= x 3))\n(check-sat)",
            "(declare-const x Int)\n(assert (= x 4))\n(check-sat)",
            "(declare-const x Int)\n(assert (= x 3)\n(check-sat)", {}),
    # the facts matter: without them the reference and the wrong program both have one empty answer set
    "asp": ("q(X) :- p(X), X > 1.\n#show q/1.\n",
            "q(X) :- p(X), X > 1.\n#show q/1.",
            "q(X) :- p(X).\n#show q/1.",
            "q(X) :- p(X), X > 1\n#show q/1.", {"facts": "p(1). p(2). p(3)."}),
    "dot": ("digraph G {\n  a -> b;\n  b -> c;\n}\n",
            "digraph G {\n  a -> b;\n  b -> c;\n}",
            "digraph G {\n  a -> b;\n  c -> b;\n}",
            "digraph G {\n  a -> b;\n  b -> c;", {}),
}
FENCE = {"smt": "smt2", "asp": "asp", "dot": "dot"}
#: clingo cannot ground this within any test's limit (27 billion atoms)
BLOWUP = "n(1..3000).\np(X,Y,Z) :- n(X), n(Y), n(Z).\n"


def fenced(lang: str, program: str, prose: str = "Here is the program.") -> str:
    return f"{prose}\n\n```{FENCE[lang]}\n{program}\n```\n"


def rows_for(lang: str) -> list[dict]:
    ref, *_, extra = PROGRAMS[lang]
    return [{"id": f"{lang}-1", "question": f"Model problem one in {lang}.", "gold_answer": ref, **extra},
            {"id": f"{lang}-2", "question": f"Model problem two in {lang}.", "gold_answer": ref, **extra}]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---------------------------------------------------------------------------------- registry, rows, prompt
def test_formal_tasks_are_registered_with_their_kinds():
    for name in ("smt", "asp", "dot"):
        assert name in TASKS and name in task_names()
        assert TASKS[name].kind == name and TASKS[name].required == ("id", "question", "gold_answer")
    assert FORMAL_KINDS == ("smt", "asp", "dot")


@pytest.mark.parametrize("bad,field,needle", [
    ({"gold_answer": ""}, "gold_answer", "missing required field"),
    ({"gold_answer": "   \n"}, "gold_answer", "non-empty string"),
    ({"gold_answer": 42}, "gold_answer", "got an integer"),
    ({"gold_answer": ["(check-sat)"]}, "gold_answer", "got a list"),
    ({"facts": 7}, "facts", "got an integer"),
    ({"facts": ["p(1)."]}, "facts", "got a list"),
], ids=["empty", "blank", "number", "list", "facts-number", "facts-list"])
def test_bad_formal_rows_are_one_line_naming_file_line_and_field(tmp_path, capsys, bad, field, needle):
    task = "asp" if field == "facts" else "smt"
    good = rows_for(task)
    src = write_jsonl(tmp_path / task / "test.jsonl", [good[0], {**good[1], **bad}])
    rc = main(["prompt", "--root", str(tmp_path), "--dataset", task, "--backend", "scripted", "--model", "s",
               "--n", "1", "--styles", "plain", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    if needle == "missing required field":
        assert f"{src}:2: missing required field 'gold_answer'" in err
    else:
        assert f"{src}:2: field {field!r}" in err and needle in err, err
    assert not (tmp_path / task / "test.enriched.jsonl").exists()
    # the same validator guards regen-correct's enriched input
    enriched = write_jsonl(tmp_path / "r" / task / "x.enriched.jsonl",
                           [{**r, "prompts": ["p"], "styles": ["plain"], "responses": [""]}
                            for r in (good[0], {**good[1], **bad})])
    rc = main(["regen-correct", "--input", str(enriched), "--dataset", task, "--workers", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and f"{enriched}:2:" in err and repr(field) in err, err


def test_core_prompt_asks_for_a_fenced_program_and_shows_asp_facts():
    from distill.prompting.prompts import build_prompt, core_prompt
    from distill.prompting.styles import get_style

    for lang in ("smt", "asp", "dot"):
        row = rows_for(lang)[0]
        core = core_prompt(lang, row)
        assert core.startswith(f"Problem: {row['question']}")
        assert core.rsplit("\n\n", 1)[1].count(f"```{FENCE[lang]}") == 2  # the format line comes last
        assert PROGRAMS[lang][0] not in core  # the reference program is never shown
    asp = core_prompt("asp", rows_for("asp")[0])
    assert "```asp\np(1). p(2). p(3).\n```" in asp and "together with the instance's facts" in asp
    styled = build_prompt("smt", rows_for("smt")[0], get_style("cot"))
    assert styled.index("step by step") < styled.index("```smt2")


# ------------------------------------------------------------------------------------------------ scoring
@pytest.mark.parametrize("lang", ["smt", "asp", "dot"])
def test_score_takes_the_program_and_carries_validity_and_diagnostic(lang):
    ref, same, wrong, broken, extra = PROGRAMS[lang]
    row = {"gold_answer": ref, **extra}
    ok = score(lang, fenced(lang, broken, prose="A first try:") + fenced(lang, same, prose="Fixed:"), row)  # last wins
    assert ok == Verdict(same, True, valid=True, diagnostic=ok.diagnostic) and not ok.timed_out
    bad = score(lang, fenced(lang, wrong), row)
    assert bad.pred == wrong and bad.valid is True and bad.correct is False
    inv = score(lang, fenced(lang, broken), row)
    assert inv.pred == broken and inv.valid is False and inv.correct is False
    assert isinstance(inv.diagnostic, str) and inv.diagnostic.strip()
    bare = score(lang, same, row)  # no fence at all: the bare response is the program
    assert bare.correct and bare.valid
    other = score(lang, "```python\nprint(3)\n```", row)  # fenced, but in another language only
    assert other == Verdict(NA, False, valid=False, diagnostic=other.diagnostic) and "block" in other.diagnostic
    assert score(lang, "", row).valid is False


def test_batch_workers_carry_valid_diagnostic_and_count_timeouts():
    items, expect = [], []
    for lang in ("smt", "asp", "dot"):
        ref, same, wrong, broken, extra = PROGRAMS[lang]
        row = {"id": "r", "question": "q", "gold_answer": ref, "unused": "x" * 100, **extra}
        lang_items = [(fenced(lang, p), row) for p in (same, wrong, broken)] + [("no program here", row)]
        res = batch.score_batch(lang, lang_items, workers=2)
        local = [score(lang, resp, r) for resp, r in lang_items]
        assert res.verdicts == local, lang  # the worker protocol loses nothing (pred, correct, valid, diagnostic)
        assert [v.valid for v in res.verdicts] == [True, True, False, False]
        assert [v.correct for v in res.verdicts] == [True, False, False, False]
        assert res.invalid == 2 and res.timeouts == 0 and res.errors == 0
        items += lang_items
        expect += local
    # a grounding blow-up: the solver's own limit (fit inside the hard timeout) or the hard kill; counted
    row = {"gold_answer": PROGRAMS["asp"][0], **PROGRAMS["asp"][4]}
    res = batch.score_batch("asp", [(fenced("asp", BLOWUP), row), (fenced("asp", PROGRAMS["asp"][1]), row)],
                            workers=1, timeout=3.0)
    slow, fine = res.verdicts
    assert slow.timed_out and not slow.correct and slow.valid is False and slow.diagnostic
    assert res.solver_timeouts + res.timeouts == 1
    assert fine.correct and not fine.timed_out  # the next item of the chunk is scored normally


def test_formal_solver_calls_fit_inside_the_hard_timeout():
    assert batch.formal_solver_timeout(batch.FORMAL_ITEM_TIMEOUT_S) == formal.FORMAL_TIMEOUT_S
    assert batch.formal_solver_timeout(5.0) * batch.FORMAL_CALLS < 5.0
    assert batch.formal_solver_timeout(0.1) == 0.2


# ---------------------------------------------------------------------------------- distill prompt, regen
def responder_for(lang: str):
    """cot: a correct copy of the reference after some prose; program: valid but wrong; plain: broken.
    Problem two only ever gets broken programs (no verified path: not in the correct file)."""
    ref, same, wrong, broken, _ = PROGRAMS[lang]

    def respond(prompt: str, model: str) -> str:
        if "problem two" in prompt:
            return fenced(lang, broken)
        if "step by step" in prompt:
            return fenced(lang, same, prose="Step 1: declare. Step 2: constrain. The program:")
        if "Python program" in prompt:
            return fenced(lang, wrong)
        return fenced(lang, broken)

    return respond


@pytest.mark.parametrize("lang", ["smt", "asp", "dot"])
def test_prompt_writes_valid_flags_and_diagnostics_and_only_verified_rows(tmp_path, capsys, lang):
    src = write_jsonl(tmp_path / lang / "test.jsonl", rows_for(lang))
    summary = tmp_path / "summary.json"
    with FakeTeacherServer(responder=responder_for(lang)) as server:
        rc = main(["prompt", "--root", str(tmp_path), "--dataset", lang, "--n", "3", "--styles", "cot,program,plain",
                   "--base-url", server.url, "--model", "teacher", "--no-progress", "--summary-json", str(summary)])
    out = capsys.readouterr().out
    assert rc == 0, out
    enriched = read_jsonl(src.with_name("test.enriched.jsonl"))
    one, two = enriched
    assert one["styles"] == ["cot", "program", "plain"]
    assert one["correct_flags"] == [True, False, False] and one["valid_flags"] == [True, True, False]
    assert two["correct_flags"] == [False] * 3 and two["valid_flags"] == [False] * 3
    for row in enriched:
        assert len(row["valid_flags"]) == len(row["diagnostics"]) == len(row["responses"])
        assert all(v for c, v in zip(row["correct_flags"], row["valid_flags"]) if c)  # correct implies valid
        for valid, diag in zip(row["valid_flags"], row["diagnostics"]):
            assert valid or (isinstance(diag, str) and diag.strip())  # every invalid program says why
    ref, same, wrong, broken, _ = PROGRAMS[lang]
    assert one["preds"] == [same, wrong, broken]
    correct = read_jsonl(src.with_name("test.correct.jsonl"))
    assert [c["id"] for c in correct] == [f"{lang}-1"]  # problem two has no verified path
    assert correct[0]["styles"] == ["cot"] and correct[0]["path_idx"] == [0]
    assert correct[0]["valid_flags"] == [True] and correct[0]["preds"] == [same]
    if lang == "asp":
        assert correct[0]["facts"] == PROGRAMS["asp"][4]["facts"]
    s = json.loads(summary.read_text())
    assert s["correct_per_style"] == {"cot": [1, 2], "program": [0, 2], "plain": [0, 2]}
    assert s["valid_per_style"] == {"cot": [1, 2], "program": [1, 2], "plain": [0, 2]}
    assert s["verify_timeouts"] == 0
    assert "valid programs per style (the solver accepts them): cot 1/2, program 1/2, plain 0/2" in out


def test_scripted_teacher_refuses_formal_rows_it_did_not_generate(tmp_path, capsys):
    """The demo's scripted teacher answers only the formal problems its own generators made (rows with a
    ``spec``); any other smt row is one line, exit 2, and nothing is left behind (not even a cache)."""
    write_jsonl(tmp_path / "smt" / "test.jsonl", rows_for("smt"))
    rc = main(["prompt", "--root", str(tmp_path), "--dataset", "smt", "--backend", "scripted", "--model", "s",
               "--n", "1", "--styles", "plain", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "has no 'spec'" in err[0] and "distill demo --task smt" in err[0], err
    assert sorted(p.name for p in (tmp_path / "smt").iterdir()) == ["test.jsonl"]


def test_regen_correct_rescores_a_formal_enriched_file(tmp_path, capsys):
    ref, same, wrong, broken, _ = PROGRAMS["smt"]
    responses = [fenced("smt", same), fenced("smt", wrong), fenced("smt", broken), fenced("smt", same)]
    n = len(responses)
    row = {**rows_for("smt")[0], "prompts": ["p"] * n, "styles": ["cot", "program", "plain", "cot"],
           "responses": responses, "preds": ["stale"] * n, "correct_flags": [True] * n,  # stale: all "correct"
           "valid_flags": [True] * n, "diagnostics": [None] * n, "finish_reasons": ["stop"] * 3 + ["length"]}
    other = {**rows_for("smt")[1], "prompts": ["p"], "styles": ["cot"], "responses": [fenced("smt", broken)]}
    path = write_jsonl(tmp_path / "smt" / "run1" / "test.enriched.jsonl", [row, other])
    rc = main(["regen-correct", "--root", str(tmp_path), "--dataset", "smt", "--workers", "2"])
    out = capsys.readouterr().out
    assert rc == 0, out
    a, b = read_jsonl(path)
    assert a["preds"] == [same, wrong, broken, same]
    # the last path was cut at the token limit: valid, never correct
    assert a["correct_flags"] == [True, False, False, False] and a["valid_flags"] == [True, True, False, True]
    assert isinstance(a["diagnostics"][2], str) and a["diagnostics"][2].strip()
    assert b["valid_flags"] == [False] and b["correct_flags"] == [False] and len(b["diagnostics"]) == 1
    correct = read_jsonl(path.with_name("test.correct.jsonl"))
    assert [c["id"] for c in correct] == ["smt-1"] and correct[0]["path_idx"] == [0]
    assert correct[0]["valid_flags"] == [True] and correct[0]["diagnostics"] == [a["diagnostics"][0]]
    assert "formal programs: 3 valid, 0 solver time-outs" in out
    assert "5 paths, 1 correct" in out


def test_student_evaluation_reports_validity_for_formal_tasks():
    from distill.students.evaluate import _score

    pred, ok, extra = _score(lambda t, x, r: Verdict("(check-sat)", False, valid=False, diagnostic="1:1: bad"),
                             "smt", "text", {})
    assert (pred, ok, extra) == ("(check-sat)", False, {"valid": False, "diagnostic": "1:1: bad", "timed_out": False})
    assert _score(lambda t, x, r: Verdict("3", True), "gsm8k", "text", {})[2] == {}
