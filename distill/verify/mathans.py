"""Free-form math answers: extraction from a response and equivalence with the gold answer.

Why this shape:

- Extraction is ours (``\\boxed{}`` with nested braces, last one wins; then "the answer is",
  ``#### N``; then the last number), because the order of preference is a property of our
  prompts, and GSM8K-style answers often carry no box at all.
- Equivalence has a *fast path* for plain numbers (exact rational comparison, no SymPy):
  it is what makes batch scoring of GSM8K-style answers fast, and it is exact, so
  ``0.001`` vs ``0.005`` or ``1e-7`` vs ``2e-7`` can never be rounded together.
- Everything else goes to math-verify (``parse``/``verify``), which knows LaTeX fractions,
  roots, percentages, ``\\text{}`` units, intervals, tuples, sets and equations. We do not
  reimplement SymPy. math-verify is imported lazily so the plain-number path (and
  ``distill regen-correct --help``) never pays for the SymPy import.

The code lives in three modules, re-exported here: :mod:`distill.verify.mathnum` (plain numbers,
normalisation), :mod:`distill.verify.mathextract` (extraction, explicit then fallback) and
:mod:`distill.verify.mathequiv` (equivalence, math-verify).

math-verify's own timeouts use SIGALRM, which only works in the main thread; elsewhere we
call it without a timeout and rely on :func:`distill.verify.batch.score_batch` (worker
processes with a hard kill) for the bound.
"""

from __future__ import annotations

from distill.verify.mathequiv import (  # noqa: F401
    MV_FLOAT_ROUNDING,
    MV_LOG_MAX_CHARS,
    MV_MAX_CHARS,
    MV_TIMEOUT_S,
    REL_TOL,
    base_numeral,
    bound_math_verify_logs,
    choice_letters,
    equivalent,
    inequality_interval,
)
from distill.verify.mathextract import (  # noqa: F401
    anchored_answer,
    boxed_answer,
    extract_explicit,
    extract_fallback,
    final_math,
    find_boxed,
    last_number,
    looks_complete,
    strip_code_blocks,
)
from distill.verify.mathnum import as_number, normalize, words_value  # noqa: F401
