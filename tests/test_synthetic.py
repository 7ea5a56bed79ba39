"""The built-in arith task generator: seeded, disjoint, valid, and invertible."""

from __future__ import annotations

import pytest

from distill.data.jsonl import read_rows
from distill.demo.synthetic import ArithConfig, generate, parse_question, problem_from_row, write_splits
from distill.errors import ConfigError


def test_same_seed_same_rows_other_seed_other_rows():
    a = generate(ArithConfig(n_train=50, n_test=20, seed=3))
    b = generate(ArithConfig(n_train=50, n_test=20, seed=3))
    c = generate(ArithConfig(n_train=50, n_test=20, seed=4))
    assert a == b
    assert [r["question"] for r in a[0]] != [r["question"] for r in c[0]]


def test_splits_are_disjoint_and_sized():
    train, test = generate(ArithConfig(n_train=300, n_test=100, seed=1))
    assert len(train) == 300 and len(test) == 100
    assert not {r["question"] for r in train} & {r["question"] for r in test}
    assert len({r["id"] for r in train + test}) == 400


def test_values_stay_in_range_and_gold_is_the_result():
    cfg = ArithConfig(n_train=400, n_test=100, max_value=15, max_operand=4, max_start=9, seed=2)
    train, test = generate(cfg)
    for row in train + test:
        p = problem_from_row(row)
        vals = p.values()
        assert all(0 <= v <= 15 for v in vals), row
        assert cfg.min_steps <= len(p.steps) <= cfg.max_steps
        assert str(vals[-1]) == row["gold_answer"]
        # The question text alone determines the same problem (the teacher relies on it).
        parsed = parse_question(row["question"])
        assert parsed.start == p.start and parsed.steps == p.steps and parsed.answer == p.answer


def test_write_splits_layout_reads_back_as_arith(tmp_path):
    paths = write_splits(tmp_path, ArithConfig(n_train=30, n_test=10))
    assert paths["train"] == tmp_path / "arith" / "train" / "train.jsonl"
    assert paths["test"] == tmp_path / "arith" / "test" / "test.jsonl"
    assert len(read_rows(paths["train"], "arith")) == 30
    assert len(read_rows(paths["test"], "arith")) == 10


def test_parse_rejects_foreign_text():
    with pytest.raises(ValueError):
        parse_question("What is the capital of France? Paris is a city. Answer?")


@pytest.mark.parametrize("kw", [dict(n_train=0), dict(min_steps=3, max_steps=2), dict(max_value=5)])
def test_bad_config_says_what_to_change(kw):
    with pytest.raises(ConfigError):
        ArithConfig(**kw)


def test_impossible_request_fails_instead_of_looping():
    with pytest.raises(ConfigError, match="distinct"):
        generate(ArithConfig(n_train=5000, n_test=10, min_steps=1, max_steps=1, max_operand=1,
                             max_start=1, max_value=2, allow_mul=False))


def test_distractors_are_irrelevant_facts_the_parser_skips():
    train, _ = generate(ArithConfig(n_train=100, n_test=1, distractors=3, seed=5))
    for row in train:
        assert row["question"].count(" also has ") == 3
        p = parse_question(row["question"])
        assert str(p.answer) == row["gold_answer"] and len(p.steps) == row["n_steps"]
