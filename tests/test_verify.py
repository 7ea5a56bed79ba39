"""Answer extraction and equivalence for every task kind, incl. the near-misses that must be False."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from distill.data.tasks import UnknownTaskError
from distill.verify import NA, Verdict, extract_answer, score
from distill.verify.mathextract import find_boxed
from distill.verify.mathnum import as_number

DATA = Path("/work/shared/datasets")
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="needs /work/shared/datasets (real benchmark rows)")


def rows(task: str, n: int, split: str = "test") -> list[dict]:
    out = []
    with open(DATA / task / f"{split}.jsonl", encoding="utf-8") as fh:
        for line in fh:
            out.append(json.loads(line))
            if len(out) == n:
                break
    return out


def m(gold: str, response: str) -> Verdict:
    return score("math", response, {"gold_answer": gold})


# ------------------------------------------------------------------ math: equivalent answers
@pytest.mark.parametrize("gold,response", [
    (r"\frac{1}{2}", r"So $x = \boxed{\dfrac12}$."),
    (r"\frac12", r"The answer is $0.5$."),
    ("0.5", r"\boxed{\frac{1}{2}}"),
    (r"2\sqrt{2}", r"\boxed{\sqrt{8}}"),
    (r"50\%", r"\boxed{50\%}"),
    ("10", r"\boxed{10\text{ cm}}"),
    ("18", "The answer is 18 dollars."),
    ("18", r"The answer is \$18."),
    ("1000", "The answer is 1,000."),
    ("1234567", r"\boxed{1,234,567}"),
    ("1000", r"\boxed{1{,}000}"),
    ("3", r"\boxed{x=3}"),
    ("x=3", r"\boxed{3}"),
    ("[1,2)", r"\boxed{[1,2)}"),
    (r"(-\infty, 0]", r"\boxed{(-\infty,0]}"),
    (r"\{1,2\}", r"\boxed{\{2, 1\}}"),
    ("(1,2)", r"\boxed{(1, 2)}"),
    (r"\left( 3, \frac{\pi}{2} \right)", r"so $\boxed{\left(3,\frac{\pi}{2}\right)}$"),
    ("5", r"first \boxed{4}, corrected: \boxed{\frac{10}{2}}"),  # last box wins
    ("4", r"\boxed{\frac{8}{\sqrt{4}}}"),  # nested braces
    ("42", "blah 3 apples\n#### 42"),
    ("42", "She had 40 and found 2, so 42 are left."),
    ("-3", "The final answer: -3"),
    ("2.5", "**Answer:** 2.50"),
    (r"\text{Evelyn}", r"The winner is $\boxed{\text{Evelyn}}$."),
    ("5", r"\boxed{\text{5 cm}}"),  # number and unit inside one \text{}
    (r"5.4 \text{ cents}", r"\boxed{\text{5.4 cents}}"),
    (r"\text{(B)}", r"\boxed{\text{(B)}}"),  # multiple-choice letters in any dress
    ("B", r"\boxed{\text{(B)}}"),
    (r"\text{(B)}", r"\boxed{B}"),
    (r"\text{(B)}", r"\boxed{(B)}"),
    (r"\text{(B)}", r"\boxed{\textbf{(B)}}"),
    ("(C)", r"The answer is $\text{(C)}$."),
    (r"\text{A, C}", r"\boxed{(C), (A)}"),
    ("40_9", r"\boxed{40_{9}}"),  # numerals in a base
    ("4210_{5}", r"\boxed{4210}"),  # subscript left off: same numeral
    ("11_2", r"\boxed{3_{10}}"),  # same value
    ("2x - y + 3z + 8 = 0", r"\boxed{2x-y+3z+8=0}"),
    ("-3", r"\boxed{x = -3}"),
    ("5", r"\boxed{a+b=5}"),
])
def test_math_equivalent(gold, response):
    v = m(gold, response)
    assert v.correct, v


# ------------------------------------------------------------------ math: near-misses are False
@pytest.mark.parametrize("gold,response", [
    ("(1,2)", r"\boxed{(3,2)}"),
    ("0.001", r"\boxed{0.005}"),
    ("0.0000001", r"\boxed{0.0000002}"),  # math-verify's 6-place rounding would call these equal
    ("3", r"\boxed{3x}"),
    ("(1,2)", r"\boxed{1}"),  # a tuple vs one of its members
    ("(1,2)", r"\boxed{2}"),
    ("1", r"\boxed{(1,2)}"),
    ("[1,2)", r"\boxed{(1,2)}"),
    ("5", r"\boxed{4} then I rechecked: \boxed{6}"),  # last box wins, even when an earlier one was right
    ("1000", "The answer is 100."),
    (r"\frac{1}{3}", r"\boxed{0.333}"),
    (r"\text{east}", r"\boxed{\text{west}}"),
    ("18", "I could not solve it."),
    ("18", ""),
    ("6", r"\boxed{\text{5 cm}}"),
    ("C", r"\boxed{\text{(B)}}"),
    (r"\text{(B)}", r"\boxed{\text{(C)}}"),
    (r"\text{(B)}", r"\boxed{(C)}"),
    ("B", r"\boxed{A, B}"),  # one option vs a set of options
    ("40_9", r"\boxed{40_8}"),  # SymPy drops the base subscript; we must not
    ("1011_2", r"\boxed{1011_3}"),
    ("40_9", r"\boxed{41_9}"),
    ("0", r"\boxed{5x - 7y + 11z + 4 = 0}"),  # math-verify compares an equation's RHS
])
def test_math_near_miss_false(gold, response):
    v = m(gold, response)
    assert not v.correct, v


def test_math_extraction_order_and_na():
    assert extract_answer("gsm8k", r"I think 3. The answer is \boxed{7}. Later 9") == "7"
    assert extract_answer("gsm8k", "12 eggs... The answer is 15. We had 20 before.") == "15"
    assert extract_answer("gsm8k", "so #### 1,200") == "1,200"
    assert extract_answer("gsm8k", "no digits at all") == NA
    assert find_boxed(r"\boxed{\frac{a}{b}} and \boxed{\{1,\{2\}\}}") == r"\{1,\{2\}\}"
    assert find_boxed(r"\boxed 5 apples") == "5"
    assert as_number("x = 3") == 3 and as_number("3x") is None and as_number("1,00") is None


def test_score_off_the_main_thread():
    # math-verify's SIGALRM timeout only works in the main thread; off it we must still score
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as ex:
        got = list(ex.map(lambda g: m(g, r"\boxed{\dfrac{6}{4}}").correct, [r"\frac32", "1.5", "(1,2)"]))
    assert got == [True, True, False]


def test_unknown_task_raises():
    with pytest.raises(UnknownTaskError, match="valid tasks"):
        score("nope", "42", {"gold_answer": "42"})


# ------------------------------------------------------------------ multiple choice
CSQA = {"gold_answer": "B", "choices": {"label": list("ABCDE"),
                                         "text": ["bank", "library", "department store", "mall", "new york"]}}


@pytest.mark.parametrize("response,pred,correct", [
    ("Reasoning... The best answer is (B).", "B", True),
    ("Answer: b", "B", True),
    ("Finally, the answer is library.", "B", True),  # option text instead of the letter
    ("The answer is a library", "B", True),  # lowercase "a" followed by words is an article, not option A
    (r"\boxed{B}", "B", True),
    ("A bank keeps money safe. So the answer is (A)", "A", False),
    ("Finally, we conclude.", NA, False),  # capital F of "Finally" is not option F/answer
    ("Option (A) is wrong, (C) is wrong, and the answer is B because libraries lend books.", "B", True),
    ("I compared them.\nB", "B", True),
    ("Both (A) and (B) are possible but (D) fits best", "D", False),
])
def test_mcq(response, pred, correct):
    v = score("commonsense_qa", response, CSQA)
    assert v == Verdict(pred, correct)


# ------------------------------------------------------------------ yes/no and NLI
@pytest.mark.parametrize("response,gold,pred", [
    ("I know the answer. So the answer is yes.", "Yes", "Yes"),
    ("I know this well.", "No", NA),  # "know" is not "no"
    ("Nobody knows for sure. Thus: No", "No", "No"),
    ("Yes, it was. But the answer is no.", "No", "No"),
    (r"\boxed{\text{Yes}}", "Yes", "Yes"),
    ("The answer is: True", "Yes", "Yes"),
])
def test_yesno(response, gold, pred):
    v = score("strategy_qa", response, {"gold_answer": gold})
    assert v.pred == pred and v.correct == (pred == gold)


@pytest.mark.parametrize("response,gold,correct", [
    ("The answer is Neither.", "neutral", True),
    ("Answer: False", "contradiction", True),
    ("Answer: True", "entailment", True),
    ("Answer: True", "contradiction", False),
    ("The premise clearly entails it. Final answer: entailment", "entailment", True),
    ("It is not false that... the answer is neutral", "neutral", True),
])
def test_nli(response, gold, correct):
    assert score("anli", response, {"gold_answer": gold}).correct is correct


# ------------------------------------------------------------------ real benchmark rows
@needs_data
def test_gsm8k_real_solutions():
    for r in rows("gsm8k", 40):
        sol = re.sub(r"<<[^>]*>>", "", r["solution"])
        right = re.sub(r"####\s*(.+)$", r"The answer is \\boxed{\1}.", sol.strip())
        raw = sol  # the original "#### N" ending, no box
        wrong = re.sub(r"####\s*(.+)$", lambda mm: f"The answer is {int(r['gold_answer']) + 1}.", sol.strip())
        assert score("gsm8k", right, r).correct, r["id"]
        assert score("gsm8k", raw, r).correct, r["id"]
        assert not score("gsm8k", wrong, r).correct, r["id"]


@needs_data
def test_math500_real_solutions():
    data = rows("math", 30)
    golds = [r["gold_answer"] for r in data]
    for i, r in enumerate(data):
        assert score("math", r["solution"], r).correct, (r["id"], r["gold_answer"])
        other = golds[(i + 7) % len(golds)]
        if other != r["gold_answer"]:
            assert not score("math", rf"The answer is $\boxed{{{other}}}$.", r).correct, (r["gold_answer"], other)


@needs_data
def test_math500_letter_choice_golds():
    # MATH-500 golds such as "\text{(C)}": the same choice boxed in another form is right, others wrong
    with open(DATA / "math" / "test.jsonl", encoding="utf-8") as fh:
        data = [json.loads(line) for line in fh]
    letter_rows = [r for r in data if re.fullmatch(r"\\text\{\([A-Z]\)\}", r["gold_answer"])]
    assert len(letter_rows) >= 3
    for r in letter_rows:
        letter = r["gold_answer"][7]
        other = "A" if letter != "A" else "B"
        for form in (letter, f"({letter})", rf"\text{{({letter})}}", rf"\textbf{{({letter})}}", rf"\text{{{letter}}}"):
            assert score("math", rf"So the answer is $\boxed{{{form}}}$.", r).correct, (r["id"], form)
        for form in (other, f"({other})", rf"\text{{({other})}}"):
            assert not score("math", rf"So the answer is $\boxed{{{form}}}$.", r).correct, (r["id"], form)


@needs_data
def test_math500_every_gold_boxed_is_correct():
    with open(DATA / "math" / "test.jsonl", encoding="utf-8") as fh:
        data = [json.loads(line) for line in fh]
    bad = [r["gold_answer"] for r in data
           if not score("math", rf"Work... so the answer is $\boxed{{{r['gold_answer']}}}$.", r).correct]
    assert bad == []


@needs_data
@pytest.mark.parametrize("task", ["arc_challenge", "commonsense_qa", "date"])
def test_mcq_real_rows(task):
    for r in rows(task, 20):
        labels, texts = r["choices"]["label"], r["choices"]["text"]
        gold_text = texts[labels.index(r["gold_answer"])]
        wrong = next(lab for lab in labels if lab != r["gold_answer"])
        assert score(task, f"Finally, the best answer is ({r['gold_answer']}).", r).correct
        assert score(task, f"Answer: {r['gold_answer'].lower()}", r).correct
        assert score(task, f"So the answer is {gold_text}.", r).correct, (r["id"], gold_text)
        assert not score(task, f"The best answer is ({wrong}).", r).correct


@needs_data
def test_yesno_nli_tabmwp_real_rows():
    for r in rows("strategy_qa", 20):
        other = "No" if r["gold_answer"] == "Yes" else "Yes"
        assert score("strategy_qa", f"Thinking it through... So the answer is {r['gold_answer'].lower()}.", r).correct
        assert not score("strategy_qa", f"So the answer is {other}.", r).correct
    words = {"entailment": "True", "neutral": "Neither", "contradiction": "False"}
    for r in rows("anli", 20):
        assert score("anli", f"Answer: {words[r['gold_answer']]}", r).correct
        assert score("anli", f"The answer is {r['gold_answer']}.", r).correct
        wrong = next(w for g, w in words.items() if g != r["gold_answer"])
        assert not score("anli", f"Answer: {wrong}", r).correct
    tab = [r for r in rows("table_mwp", 200) if r["choices"]][:15]
    for r in tab:
        wrong = next(c for c in r["choices"] if c != r["gold_answer"])
        assert score("table_mwp", f"So the answer is {r['gold_answer']}.", r).correct, r["id"]
        assert not score("table_mwp", f"So the answer is {wrong}.", r).correct, r["id"]
