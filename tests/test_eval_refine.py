"""Solver-in-the-loop refinement (distill.students.refine) with a scripted generator and the real Z3:
known trails, stop on no change, best-so-far kept, the K bound, the context stop, and that no
prompt ever holds the reference program."""

from __future__ import annotations

import pytest

from distill.students.refine import FEEDBACK, Check, feedback_message, oracle_check, refine_loop, validity_check

VALID = "(declare-const x Int)\n(assert (> x 2))\n(check-sat)"          # valid, not the reference
BROKEN = "(declare-const x Int)\n(assert (> x 2)\n(check-sat)"          # a ')' missing
UNDECLARED = "(assert (> y 2))\n(check-sat)"                             # unknown constant y
REFERENCE = "(declare-const x Int)\n(assert (= x 3))\n(check-sat) ; REF-MARKER"
CORRECT = "(declare-const x Int)\n(assert (= x 3))\n(check-sat)"


def fence(program: str) -> str:
    return f"Here is the model.\n```smt2\n{program}\n```"


class Scripted:
    """``generate(conversations)``: item ``q`` (its first user turn) answers ``script[q][r]`` in round ``r``
    (the number of assistant turns so far); every conversation it is given is kept in ``seen``."""

    def __init__(self, script: dict[str, list[str | None]]):
        self.script, self.seen, self.calls = script, [], 0

    def __call__(self, conversations):
        self.calls += 1
        self.seen.extend(conversations)
        out = []
        for conv in conversations:
            r = sum(1 for m in conv if m["role"] == "assistant")
            answers = self.script[conv[0]["content"]]
            out.append(answers[r])
        return out


def _run(script, rounds, check=None):
    gen = Scripted(script)
    questions = list(script)
    check = check or validity_check("smt", [None] * len(questions))
    outcomes = refine_loop([[{"role": "user", "content": q}] for q in questions], gen, check, rounds=rounds)
    return outcomes, gen


def test_an_invalid_program_is_sent_back_with_the_solvers_message_until_it_is_valid():
    outs, gen = _run({"q0": [fence(BROKEN), fence(VALID), fence(CORRECT)], "q1": [fence(VALID)]}, rounds=3)
    o0, o1 = outs
    assert [s["valid"] for s in o0.trail] == [False, True] and o0.stop == "ok" and o0.iterations == 1
    assert o0.best == 1 and VALID in o0.best_text
    assert o1.iterations == 0 and o1.stop == "ok" and len(o1.trail) == 1
    assert gen.calls == 2  # the first answers, then one round for q0 only
    round1 = gen.seen[-1]
    assert [m["role"] for m in round1] == ["user", "assistant", "user"] and round1[1]["content"] == fence(BROKEN)
    diag = o0.trail[0]["diagnostic"]
    assert "')' expected" in diag
    assert round1[2]["content"] == FEEDBACK.format(diagnostic=diag.rstrip("."))


def test_refinement_stops_when_the_program_no_longer_changes():
    # the student repeats its broken program (in other words): the loop stops, it does not spend K rounds
    outs, gen = _run({"q0": [fence(BROKEN), "Sorry!\n" + fence(BROKEN), fence(VALID), fence(VALID)]}, rounds=3)
    assert outs[0].stop == "unchanged" and outs[0].iterations == 1 and gen.calls == 2
    assert not any(s["valid"] for s in outs[0].trail)


def test_at_most_k_rounds():
    programs = [fence(f"(assert (> y{i} 2))\n(check-sat)") for i in range(6)]  # always a new invalid program
    outs, gen = _run({"q0": programs}, rounds=2)
    assert outs[0].iterations == 2 and outs[0].stop == "rounds" and gen.calls == 3
    assert [s["round"] for s in outs[0].trail] == [0, 1, 2]
    none, _ = _run({"q0": programs}, rounds=0)
    assert none[0].iterations == 0 and none[0].stop == "rounds"


def test_the_best_program_so_far_is_kept_valid_beats_invalid():
    """``--refine-on wrong``: round 1 is valid but wrong, round 2 is invalid: the valid one is kept."""
    from distill.verify import score

    rows = [{"id": "a", "question": "q0", "gold_answer": REFERENCE}]
    outs, gen = _run({"q0": [fence(BROKEN), fence(VALID), fence(UNDECLARED)]}, rounds=2,
                     check=oracle_check("smt", rows, score))
    o = outs[0]
    assert [(s["valid"], s["ok"]) for s in o.trail] == [(False, False), (True, False), (False, False)]
    assert o.best == 1 and o.stop == "rounds" and VALID in o.best_text
    assert gen.seen[-1][-1]["content"] == feedback_message(Check(VALID, True, False))  # valid-but-wrong feedback
    outs, _ = _run({"q0": [fence(VALID), fence(CORRECT)]}, rounds=2, check=oracle_check("smt", rows, score))
    assert outs[0].stop == "ok" and outs[0].trail[-1]["ok"] and outs[0].best == 1


def test_ties_keep_the_earlier_program_and_a_full_context_stops():
    outs, gen = _run({"q0": [fence(BROKEN), fence(UNDECLARED), None]}, rounds=3)
    assert outs[0].best == 0 and outs[0].stop == "context" and outs[0].iterations == 1


def test_no_prompt_ever_holds_the_reference(tmp_path):
    """Both modes through :func:`add_formal_fields` (what ``distill eval --refine`` runs): the reference
    program reaches the verifier after the loop, never a conversation."""
    from distill.students.formal_eval import add_formal_fields
    from distill.verify import score

    rows = [{"id": f"r{i}", "question": f"q{i}", "gold_answer": REFERENCE} for i in range(3)]
    script = {"q0": [fence(BROKEN), fence(VALID), fence(CORRECT)], "q1": [fence(UNDECLARED), fence(CORRECT)],
              "q2": [fence(VALID), fence(CORRECT)]}
    for mode in ("invalid", "wrong"):
        gen = Scripted(script)
        recs = []
        for row in rows:
            text = script[row["question"]][0]
            v = score("smt", text, row)
            recs.append({"text": text, "valid": v.valid, "correct": v.correct, "timed_out": v.timed_out})
        add_formal_fields("smt", recs, rows, questions=[r["question"] for r in rows], generate=gen, rounds=2,
                          refine_on=mode, template_repair=True, scorer=score)
        assert gen.seen, "the loop ran"
        assert not any("REF-MARKER" in m["content"] or ("(= x 3)" in m["content"] and m["role"] == "user")
                       for conv in gen.seen for m in conv)
        r0, r1, r2 = recs
        assert (r0["initial_valid"], r0["final_valid"], r1["final_valid"], r1["final_correct"]) == (False, True, True, True)
        if mode == "invalid":  # valid programs are not refined: q2 stays valid-but-wrong
            assert (r0["iterations"], r0["final_correct"], r2["iterations"], r2["final_correct"]) == (1, False, 0, False)
        else:  # oracle feedback: refined until correct
            assert (r0["iterations"], r0["final_correct"], r2["iterations"], r2["final_correct"]) == (2, True, 1, True)
        assert r0["trail"][0]["program"] == BROKEN and len(r0["trail"]) == r0["iterations"] + 1
        assert r0["repair"]["changed"] and r0["repair"]["valid"]  # template repair closes the parenthesis
        assert not r2["repair"]["changed"] and r2["repair"]["valid"]


def test_refine_options_are_checked_up_front():
    from distill.errors import ConfigError
    from distill.students.formal_eval import check_formal_options

    assert check_formal_options("smt", refine=2, refine_on="wrong", template_repair=True) is True
    assert check_formal_options("gsm8k", refine=0, refine_on="invalid", template_repair=False) is False
    for kw, msg in (({"refine": 1}, "--refine: only for the formal tasks"),
                    ({"template_repair": True}, "--template-repair: only for the formal tasks")):
        with pytest.raises(ConfigError, match=msg):
            check_formal_options("gsm8k", **{"refine": 0, "refine_on": "invalid", "template_repair": False, **kw})
    with pytest.raises(ConfigError, match="--refine-on 'sometimes'"):
        check_formal_options("smt", refine=1, refine_on="sometimes", template_repair=False)


def test_conversations_render_with_the_chat_template_or_as_plain_text(tiny_qwen2):
    from distill.students.data import chat_prompt
    from distill.students.generate import render_conversation
    from distill.students.tokenizer import load_tokenizer

    tok = load_tokenizer(tiny_qwen2)
    conv = [{"role": "user", "content": "Q?"}]
    assert render_conversation(tok, conv) == chat_prompt(tok, "Q?")  # round 0 is the evaluation prompt
    turns = conv + [{"role": "assistant", "content": "A1"}, {"role": "user", "content": "Fix it."}]
    assert render_conversation(tok, turns).endswith("<|im_start|>user\nFix it.<|im_end|>\n<|im_start|>assistant\n")
    tok.chat_template = None
    assert render_conversation(tok, conv) == chat_prompt(tok, "Q?")
    assert render_conversation(tok, turns) == f"{tok.bos_token or ''}Q?\nAnswer: A1{tok.eos_token}\nFix it.\nAnswer: "


def test_without_rounds_the_first_verdict_is_final_and_no_generation_runs():
    from distill.students.formal_eval import add_formal_fields
    from distill.verify import score

    row = {"id": "r", "question": "q0", "gold_answer": REFERENCE}
    v = score("smt", fence(BROKEN), row)
    rec = {"text": fence(BROKEN), "pred": v.pred, "valid": v.valid, "correct": v.correct,
           "diagnostic": v.diagnostic, "timed_out": v.timed_out}

    def no_generation(conversations):
        raise AssertionError("rounds=0 must not generate")

    add_formal_fields("smt", [rec], [row], questions=["q0"], generate=no_generation, rounds=0, refine_on="invalid",
                      template_repair=False, scorer=score)
    assert (rec["initial_valid"], rec["final_valid"], rec["iterations"], rec["refine_stop"]) == (False, False, 0, "off")
    assert rec["trail"][0]["program"] == BROKEN and "repair" not in rec
