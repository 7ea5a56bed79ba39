"""Answer extraction and verification for every task kind (math, mcq, yesno, nli; smt, asp, dot).

Public interface::

    from distill.verify import score, extract_answer, Verdict
    score(task, response, row) -> Verdict(pred, correct)      # row: gold_answer (+ choices for mcq)
    extract_answer(task, response, row=None) -> str           # "N/A" if nothing extractable
    from distill.verify.batch import score_batch               # worker processes, hard per-item timeout

``task`` is a name from :data:`distill.data.tasks.TASKS` (``gsm8k``, ``arith``, ...) or a kind.

Formal kinds (``smt``, ``asp``, ``dot``) are different: the answer is a program, ``pred`` is the
program (the last block fenced in its language, else the bare response), and the verdict also
carries ``valid`` (the solver accepts it; ``correct`` implies it) and ``diagnostic`` (the solver's
first error), from :mod:`distill.verify.formal`. The rest of this page is about the answer kinds.

How a prediction is chosen (same order for every kind):

1. an explicit final answer in the prose, outside code blocks: the last ``\\boxed{}`` (math; a
   trailing run of boxes joined by "and" / "," is a list: ``\\boxed{2} and \\boxed{-3}`` -> ``2, -3``),
   else the last "the answer is X" / "Answer: X" / ``#### X`` (X may be a number in words or
   scaled, "eleven", "2.5 thousand"; an option's text counts when it names exactly one option).
   A hedged answer ("the answer is A or D", "either (C) or (E)", "yes or no") is ``N/A`` at once;
2. else the value of the last solver block: ```smt2 (Z3: the ``get-value`` after ``sat``) or
   ```asp / ```lp (clingo: ``X`` of an ``answer(X)`` atom in the first model); all solver runs
   of one response share one budget (``solvers.RESPONSE_SOLVER_BUDGET_S``);
3. else a loose fallback, only for a response that ends like a finished text (one cut off
   mid-sentence by a token limit has not concluded): the math span that ends the text ("so the
   point is $(4, -1)$.") or the last number (math), the last ``(B)`` or a last line that is a
   label or an option's text (mcq), the last whole-word yes/no, or the last NLI word;
4. else ``"N/A"`` (never correct).

A ```dot block is a well-formedness check of the path: if Graphviz cannot parse it the path is
scored incorrect, whatever its answer. Math equivalence: exact for plain numbers and repeating
decimals (``0.\\overline{6}``), math-verify for LaTeX; an inequality in one variable is compared
as the interval it describes (``3 < x \\le 9`` = ``(3,9]``); numbers math-verify calls equal must
also agree exactly (rationals) or to a relative 1e-6, since its rounding is an absolute tolerance
(``1/3^{40}`` and ``1/3^{41}`` are not equal).
Imports here are light (no SymPy, no torch); math-verify loads on first LaTeX use.
"""

from distill.verify.core import extract_answer, score
from distill.verify.types import NA, Verdict

__all__ = ["score", "extract_answer", "Verdict", "NA"]
