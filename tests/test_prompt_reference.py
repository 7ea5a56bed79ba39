"""``distill prompt --backend reference``: the dataset's own solution as a verified ``reference`` path.

The rows are real GSM8K / MATH-500 test rows in our schema (copied from ../shared/datasets, where
``solution`` keeps GSM8K's ``<<a*b=c>>`` notes and ``#### N`` line), so the run needs no data folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.commands import main
from distill.prompting.backends.reference import reference_text

GSM8K = [
    {"id": "gsm8k-test-00000", "question": "Janet\u2019s ducks lay 16 eggs per day. She eats three for breakfast every "
     "morning and bakes muffins for her friends every day with four. She sells the remainder at the farmers' market "
     "daily for $2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?",
     "gold_answer": "18", "solution": "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = "
     "$<<9*2=18>>18 every day at the farmer\u2019s market.\n#### 18"},
    {"id": "gsm8k-test-00002", "question": "Josh decides to try flipping a house.  He buys a house for $80,000 and then "
     "puts in $50,000 in repairs.  This increased the value of the house by 150%.  How much profit did he make?",
     "gold_answer": "70000", "solution": "The cost of the house and repairs came out to 80,000+50,000=$<<80000+50000="
     "130000>>130,000\nHe increased the value of the house by 80,000*1.5=<<80000*1.5=120000>>120,000\nSo the new "
     "value of the house is 120,000+80,000=$<<120000+80000=200000>>200,000\nSo he made a profit of "
     "200,000-130,000=$<<200000-130000=70000>>70,000\n#### 70000"},
    {"id": "gsm8k-no-solution", "question": "What is 3 plus 4?", "gold_answer": "7"},  # e.g. a user's own rows
]
MATH = [
    {"id": "test/algebra/1255.json", "question": "Evaluate $\\log_264$.", "gold_answer": "6", "level": 2,
     "type": "Algebra", "solution": "We have $2^6=64$, so $\\log_2 64 = \\boxed{6}$."},
    {"id": "test/prealgebra/1924.json", "question": "Simplify $(-k + 4) + (-2 + 3k)$.", "gold_answer": "2k+2",
     "level": 2, "type": "Prealgebra",
     "solution": "We have $(-k+4) + (-2+3k) = -k + 4 -2 + 3k = \\boxed{2k+2}$."},
]
REF = ["--backend", "reference", "--model", "reference", "--styles", "reference", "--n", "1", "--no-progress"]


def write(root: Path, task: str, rows) -> Path:
    path = root / task / "test.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_reference_text_strips_calculator_notes_and_boxes_the_final_line():
    assert reference_text(GSM8K[0]["solution"]) == ("Janet sells 16 - 3 - 4 = 9 duck eggs a day.\nShe makes 9 * 2 = "
                                                    "$18 every day at the farmer\u2019s market.\n"
                                                    "The answer is \\boxed{18}.")
    assert reference_text("#### 1,234") == "The answer is \\boxed{1234}."
    assert reference_text(MATH[0]["solution"]) == MATH[0]["solution"]  # already boxed: kept as it is


def test_reference_paths_are_verified_like_any_teacher(tmp_path, capsys):
    g, m = write(tmp_path, "gsm8k", GSM8K), write(tmp_path, "math", MATH)
    summary = tmp_path / "s.json"
    rc = main(["prompt", "--root", str(tmp_path), "--dataset", "gsm8k,math", *REF, "--summary-json", str(summary)])
    out = capsys.readouterr().out
    assert rc == 1, out  # the row without a solution is a failed path, reported
    assert "gsm8k-no-solution#0 (reference): rejected: no reference solution" in out
    rows = read(g.with_name("test.enriched.jsonl")) + read(m.with_name("test.enriched.jsonl"))
    assert [r["styles"] for r in rows] == [["reference"]] * 5
    assert [r["correct_flags"] for r in rows] == [[True], [True], [False], [True], [True]]
    assert [r["preds"][0] for r in rows[:2]] == ["18", "70000"]
    assert rows[1]["responses"][0].endswith("70,000\nThe answer is \\boxed{70000}.")
    assert "<<" not in rows[1]["responses"][0]
    assert rows[3]["responses"] == [MATH[0]["solution"]] and rows[3]["level"] == 2  # source fields kept
    assert rows[2]["failed"] == [True]
    correct = read(g.with_name("test.correct.jsonl"))
    assert [r["id"] for r in correct] == ["gsm8k-test-00000", "gsm8k-test-00002"]
    s = json.loads(summary.read_text())
    assert s["prompt_tokens"] == s["completion_tokens"] == 0  # zero cost
    assert s["correct_per_style"] == {"reference": [4, 5]}


@pytest.mark.parametrize("flags, needle", [
    (["--n", "2", "--styles", "reference"], "one solution per question"),
    (["--n", "1", "--styles", "cot"], "answers only style 'reference'"),
])
def test_reference_with_other_styles_or_samples_is_one_line(tmp_path, capsys, flags, needle):
    write(tmp_path, "gsm8k", GSM8K[:1])
    rc = main(["prompt", "--root", str(tmp_path), "--dataset", "gsm8k", "--backend", "reference", *flags,
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and needle in err and "--styles reference --n 1" in err


def test_reference_backend_picks_its_style_and_one_path_itself_and_costs_zero(tmp_path, capsys):
    g = write(tmp_path, "gsm8k", GSM8K[:2])
    summary = tmp_path / "s.json"
    rc = main(["prompt", "--root", str(tmp_path), "--dataset", "gsm8k", "--backend", "reference", "--no-progress",
               "--max-spend", "0.01", "--summary-json", str(summary)])  # no --styles, no --n, no price flags
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = read(g.with_name("test.enriched.jsonl"))
    assert [r["styles"] for r in rows] == [["reference"]] * 2 and [r["correct_flags"] for r in rows] == [[True]] * 2
    assert "cost: $0 (no price needed" in out and "unknown" not in out
    s = json.loads(summary.read_text())
    assert s["usage"]["this_run"]["cost_usd"] == 0 and s["prices"]["input_per_mtok"] == 0


@pytest.mark.parametrize("flags, needle", [
    (["--n", "3"], "not --n 3"),
    (["--styles", "cot,reference"], "not cot,reference"),
])
def test_reference_with_explicit_other_values_fails_before_anything_is_written(tmp_path, capsys, flags, needle):
    g = write(tmp_path, "gsm8k", GSM8K[:1])
    rc = main(["prompt", "--root", str(tmp_path), "--dataset", "gsm8k", "--backend", "reference", *flags,
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and needle in err and "--styles reference --n 1" in err
    assert sorted(p.name for p in g.parent.iterdir()) == ["test.jsonl"]
