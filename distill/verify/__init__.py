"""Answer extraction and verification for every task kind (math, mcq, yesno, nli).

Public interface::

    from distill.verify import score, extract_answer, Verdict
    score(task, response, row) -> Verdict(pred, correct)      # row: gold_answer (+ choices for mcq)
    extract_answer(task, response, row=None) -> str           # "N/A" if nothing extractable
    from distill.verify.batch import score_batch               # worker processes, hard per-item timeout

``task`` is a name from :data:`distill.data.tasks.TASKS` (``gsm8k``, ``arith``, ...) or a kind.

How a prediction is chosen (same order for every kind):

1. an explicit final answer in the prose, outside code blocks: the last ``\\boxed{}`` (math),
   else the last "the answer is X" / "Answer: X" / ``#### X``;
2. else the value of the last solver block: ```smt2 (Z3: the ``get-value`` after ``sat``) or
   ```asp / ```lp (clingo: ``X`` of an ``answer(X)`` atom in the first model);
3. else a loose fallback: the last number (math), the last ``(B)`` or a last line that is a
   label or an option's text (mcq), the last whole-word yes/no, or the last NLI word;
4. else ``"N/A"`` (never correct).

A ```dot block is a well-formedness check of the path: if Graphviz cannot parse it the path is
scored incorrect, whatever its answer. Math equivalence: exact for plain numbers, math-verify
for LaTeX. Imports here are light (no SymPy, no torch); math-verify loads on first LaTeX use.
"""

from distill.verify.core import extract_answer, score
from distill.verify.types import NA, Verdict

__all__ = ["score", "extract_answer", "Verdict", "NA"]
