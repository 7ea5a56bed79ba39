"""The scripted teacher: deterministic, style shapes differ, wrong share as configured, verifiable."""

from __future__ import annotations

import asyncio
import re
import statistics

import pytest

from distill.demo.synthetic import ArithConfig, generate
from distill.demo.teacher import STYLES, ScriptedBackend, ScriptedTeacherError
from distill.errors import ConfigError
from distill.prompting.backend import Backend, Request

ROWS = generate(ArithConfig(n_train=300, n_test=1, seed=7))[0]
BOXED = re.compile(r"\\boxed\{([^}]*)\}")


def boxed(text: str) -> str:
    found = BOXED.findall(text)
    assert found, text
    return found[-1]


def test_implements_backend_protocol_and_async_complete():
    b = ScriptedBackend(wrong_rate=0.0, seed=1)
    assert isinstance(b, Backend)
    req = Request(prompt="Q", style="cot", row=ROWS[0], task="arith", sample_index=0, temperature=0.7, max_tokens=256)
    comp = asyncio.run(b.complete(req))
    assert boxed(comp.text) == ROWS[0]["gold_answer"]
    assert comp.completion_tokens == len(comp.text.split()) > 0
    asyncio.run(b.aclose())


def test_deterministic_per_row_style_sample_seed():
    a, b = ScriptedBackend(0.5, seed=0), ScriptedBackend(0.5, seed=0)
    for row in ROWS[:30]:
        for style in STYLES:
            assert a.answer(row, style, 2) == b.answer(row, style, 2)
    # Different seeds / sample indices change which answers are wrong.
    c = ScriptedBackend(0.5, seed=1)
    diff_seed = sum(a.answer(r, "cot") != c.answer(r, "cot") for r in ROWS[:60])
    diff_sample = sum(a.answer(r, "cot", 0) != a.answer(r, "cot", 1) for r in ROWS[:60])
    assert diff_seed > 5 and diff_sample > 5


def test_zero_wrong_rate_is_always_correct_and_one_is_always_wrong():
    good, bad = ScriptedBackend(0.0), ScriptedBackend(1.0)
    for row in ROWS[:80]:
        for style in STYLES:
            assert boxed(good.answer(row, style)) == row["gold_answer"]
            assert boxed(bad.answer(row, style)) != row["gold_answer"]


def test_wrong_share_matches_configuration():
    b = ScriptedBackend(wrong_rate=0.25, seed=3)
    n = wrong = 0
    for row in ROWS:
        for style in STYLES:
            n += 1
            wrong += boxed(b.answer(row, style)) != row["gold_answer"]
    assert abs(wrong / n - 0.25) < 0.04, wrong / n


def test_styles_have_clearly_different_shape_and_length():
    b = ScriptedBackend(0.0)
    lengths = {s: statistics.mean(len(b.answer(r, s).split()) for r in ROWS[:50]) for s in STYLES}
    assert lengths["plain"] < 8
    assert lengths["tot"] > 2.5 * max(lengths[s] for s in STYLES if s != "tot")
    assert lengths["plain"] < lengths["cot"] < lengths["tot"]
    row = ROWS[0]
    assert b.answer(row, "program").startswith("```python")
    assert "Forward:" in b.answer(row, "fwd_bwd") and "Backward:" in b.answer(row, "fwd_bwd")
    assert b.answer(row, "knowledge").startswith("Facts:")
    assert "Branch 1:" in b.answer(row, "tot")
    assert len({b.answer(row, s) for s in STYLES}) == len(STYLES)


def test_wrong_paths_show_an_arithmetic_slip():
    b = ScriptedBackend(1.0, seed=5)
    row = ROWS[1]
    text = b.answer(row, "cot")
    eqs = re.findall(r"(\d+) ([-+*]) (\d+) = (\d+)", text)
    assert eqs
    ok = [eval(f"{x}{op}{y}") == int(z) for x, op, y, z in eqs]
    assert not all(ok), text  # at least one step is miscomputed


def test_refuses_what_it_cannot_answer():
    b = ScriptedBackend()
    with pytest.raises(ScriptedTeacherError, match="arith"):
        b.answer(ROWS[0], "cot", task="gsm8k")
    with pytest.raises(ScriptedTeacherError, match="unknown style"):
        b.answer(ROWS[0], "haiku")
    with pytest.raises(ScriptedTeacherError):
        b.answer({"id": "x", "question": "Who wrote Hamlet?", "gold_answer": "x"}, "cot")
    with pytest.raises(ConfigError):
        ScriptedBackend(wrong_rate=1.5)


def test_answers_from_question_text_alone():
    b = ScriptedBackend(0.0)
    row = ROWS[2]
    bare = {"id": row["id"], "question": row["question"], "gold_answer": row["gold_answer"]}
    assert b.answer(bare, "program") == b.answer(row, "program")


def test_style_of_names_the_style_of_every_rendered_answer():
    from distill.demo.teacher import style_of

    b = ScriptedBackend(0.3, seed=2)
    for row in ROWS[:30]:
        for style in STYLES:
            assert style_of(b.answer(row, style)) == style, (style, b.answer(row, style))
    assert style_of("12 apples") == "other"
