"""Tone paraphrases (``distill augment --kind paraphrase``): the real openai client against a local
server; a paraphrase that loses a number, a name or a variable is rejected, and a rerun pays nothing."""

from __future__ import annotations

import json

from fake_openai_server import FakeTeacherServer

from distill.commands import main
from distill.prompting.paraphrase import fact_tokens, missing_facts

ROWS = [{"id": "s1", "question": "Alice has x apples, with x > 2.5 and x < 10. Is there such an Int x?",
         "gold_answer": "(declare-const x Int)\n(assert (> x 2.5))\n(assert (< x 10))\n(check-sat)"},
        {"id": "s2", "question": "By day_3, Bob needs 1,000 units of \"steel\".",
         "gold_answer": "(declare-const u Int)\n(assert (= u 1000))\n(check-sat)"}]


def responder(prompt: str, model: str) -> str:
    problem = prompt.split("Problem:\n", 1)[1]
    if "formal" in prompt:
        return "Problem: " + problem.replace("has", "possesses").replace("needs", "requires")
    if "casual" in prompt:  # loses a number (and a name on the second row)
        return problem.replace("10", "ten").replace("Bob", "He")
    return '"' + problem.replace("Is there such", "Find an") + '"'  # terse: wrapped in quotes, facts kept


def test_fact_tokens():
    facts = fact_tokens(ROWS[0]["question"])
    assert {"#2.5", "#10", "x"} <= facts and "Alice" not in facts  # a sentence's first word is not a name
    assert {"Int"} <= facts and "Is" not in facts
    assert {"#1000", '"steel"', "day_3", "Bob"} - fact_tokens(ROWS[1]["question"]) == set()
    assert missing_facts("Take 2.50 from 1,000.", "take 2.5 away from 1000") == []
    assert missing_facts("x plus y is 3", "x plus z is 3") == ["y"]


def test_paraphrase_keeps_only_faithful_rewrites_and_never_pays_twice(tmp_path, capsys):
    src = tmp_path / "smt.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    out = tmp_path / "para.jsonl"
    with FakeTeacherServer(responder=responder) as srv:
        args = ["augment", "--task", "smt", "--input", str(src), "--out", str(out), "--kind", "paraphrase",
                "--base-url", srv.url, "--model", "para-m", "--no-progress"]
        assert main(args) == 0
        assert srv.requests == 6
        text = capsys.readouterr().out
        assert "6 asked, 4 kept, 2 rejected" in text and "s1 casual: lost ['#10']" in text and "s2 casual: lost ['Bob']" in text
        rows = [json.loads(x) for x in out.read_text().splitlines()]
        assert sorted(r["id"] for r in rows) == ["s1/tone-formal", "s1/tone-terse", "s2/tone-formal", "s2/tone-terse"]
        formal = next(r for r in rows if r["id"] == "s1/tone-formal")
        assert formal["question"].startswith("Alice possesses x apples") and formal["gold_answer"] == ROWS[0]["gold_answer"]
        assert formal["original_question"] == ROWS[0]["question"] and formal["tone"] == "formal"
        terse = next(r for r in rows if r["id"] == "s1/tone-terse")
        assert not terse["question"].startswith('"')
        assert main(args) == 0 and srv.requests == 6  # everything from the cache


def test_unknown_tone_is_one_line_before_any_request(tmp_path, capsys):
    src = tmp_path / "smt.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    with FakeTeacherServer(responder=responder) as srv:
        rc = main(["augment", "--task", "smt", "--input", str(src), "--out", str(tmp_path / "o.jsonl"), "--kind",
                   "paraphrase", "--tones", "formal,pirate", "--base-url", srv.url, "--no-progress"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and "pirate" in err[0] and srv.requests == 0
