"""Equivalence of a predicted math answer with the gold answer.

Plain numbers (and numerals in a base, option letters, word answers) are compared exactly without
SymPy; everything else goes to math-verify, imported lazily, whose log records are kept short.

math-verify's own timeouts use SIGALRM, which only works in the main thread; elsewhere we
call it without a timeout and rely on :func:`distill.verify.batch.score_batch` (worker
processes with a hard kill) for the bound.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

from distill.verify.mathnum import _repeating_as_fraction, as_number, normalize
from distill.verify.types import NA

# math-verify per-call limits (seconds, ints because it uses signal.alarm).
MV_TIMEOUT_S = 2
# Decimal places math-verify rounds floats to when one side is a float. Its default (6)
# is kept: 0.001 vs 0.005 differ at 3 places; plain-number pairs never reach it anyway.
MV_FLOAT_ROUNDING = 6
# Answers longer than this never reach math-verify (no real final answer is that long; parsing a
# megabyte of LaTeX only times out): such a prediction is correct only when it equals the gold.
MV_MAX_CHARS = 2000
# math-verify logs its whole input on a timeout or parse error: log records are cut to this length.
MV_LOG_MAX_CHARS = 300

_WORD_RE = re.compile(r"(?:\\(?:text|textbf|mathrm|mbox)\s*\{)?\s*([A-Za-z][A-Za-z .'-]*?)\s*\}?")
# An equation in standard form, "5x - 7y + 11z + 4 = 0": math-verify would compare its RHS (0).
_STD_FORM_EQ_RE = re.compile(r"^(?=[^=]*\d)(?=[^=]*[A-Za-z])[^=]*[^\s=(]\s*[+-][^=]*=\s*0$")
# A numeral with its base as a subscript ("40_9", "4210_{5}", "A2_{16}").
_BASE_NUM_RE = re.compile(r"(?P<digits>[0-9A-Za-z]+)_\{?(?P<base>\d+)\}?")
# Multiple-choice letters in any common dress: B, (B), \text{(B)}, \textbf{(B)}, (\text{B}), "A, C".
# Checked after the text wrappers are peeled off (:func:`choice_letters`).
_TEXT_WRAP_RE = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_CHOICE_ITEM = r"(?:\(\s*[A-Z]\s*\)|[A-Z])"
_CHOICE_RE = re.compile(rf"\s*{_CHOICE_ITEM}(?:\s*(?:,\s*(?:and\s+)?|and\s+){_CHOICE_ITEM})*\s*")


_INEQ_OP_RE = re.compile(r"\\(?:leqslant|leq|le|geqslant|geq|ge)(?![A-Za-z])|≤|≥|<=|>=|<|>")
_INEQ_CANON = {"≤": "<=", "≥": ">=", "<=": "<=", ">=": ">=", "<": "<", ">": ">"}
_VAR = r"(?:[A-Za-z]|\\(?!infty)[A-Za-z]+)"


def inequality_interval(s: str) -> str | None:
    """``3 < x \\le 9`` -> ``(3,9]``, ``x \\ge -1`` -> ``[-1,\\infty)``; ``None`` if not one such inequality."""
    t = s.strip()
    m = re.fullmatch(rf"{_VAR}\s*\\in\s*(?P<iv>[\[(].*[\])])", t)
    if m:
        return m.group("iv")
    def canon(m: re.Match) -> str:
        op = m.group(0)
        return f" {_INEQ_CANON.get(op) or ('<=' if op.startswith(chr(92) + 'l') else '>=')} "

    t = _INEQ_OP_RE.sub(canon, t)
    parts = re.split(r"\s(<=|>=|<|>)\s", t)
    parts = [x.strip() for x in parts]
    is_var = [bool(re.fullmatch(_VAR, x)) for x in parts]
    if any(not x for x in parts) or sum(is_var) != 1:
        return None
    inf = r"\infty"
    if len(parts) == 3:
        if is_var[0]:
            var, op, b = parts
            if op in ("<", "<="):
                return f"(-{inf},{b}{')' if op == '<' else ']'}"
            return f"{'(' if op == '>' else '['}{b},{inf})"
        if is_var[2]:
            a, op, _ = parts
            if op in ("<", "<="):
                return f"{'(' if op == '<' else '['}{a},{inf})"
            return f"(-{inf},{a}{')' if op == '>' else ']'}"
        return None
    if len(parts) == 5 and is_var[2]:
        a, op1, _, op2, b = parts
        if op1 in ("<", "<=") and op2 in ("<", "<="):
            return f"{'(' if op1 == '<' else '['}{a},{b}{')' if op2 == '<' else ']'}"
        if op1 in (">", ">=") and op2 in (">", ">="):
            return f"{'(' if op2 == '>' else '['}{b},{a}{')' if op1 == '>' else ']'}"
    return None


def choice_letters(ans: str) -> tuple[str, ...] | None:
    """The option letters of a multiple-choice answer ("\\text{(B)}", "(B)", "B", "A, C"); else ``None``.

    MATH has "which option..." problems whose gold is ``\\text{(C)}``; models box the same
    choice as ``C``, ``(C)`` or ``\\textbf{(C)}``. Comparing letters keeps these right and keeps
    ``(B)`` vs ``(C)`` (or ``B`` vs ``A, B``) wrong without asking SymPy about symbols. Only
    capital letters count, so a lone variable such as ``x`` is never taken for a choice.
    """
    s = ans
    for _ in range(3):  # \text{(\textbf{B})} etc.: peel nested wrappers
        s = _TEXT_WRAP_RE.sub(r"\1", s)
    s = s.strip().rstrip(".").strip()
    if not _CHOICE_RE.fullmatch(s):
        return None
    return tuple(sorted(set(re.findall(r"[A-Z]", s))))


def base_numeral(ans: str) -> tuple[str, int | None] | None:
    """``("40", 9)`` for ``40_9``, ``("40", None)`` for a bare integer numeral; else ``None``."""
    s = ans.replace(" ", "")
    m = _BASE_NUM_RE.fullmatch(s)
    if m:  # only a valid numeral in its base: "x_1" is a variable, not x in base 1
        digits, base = m.group("digits").upper().lstrip("0") or "0", int(m.group("base"))
        try:
            int(digits, base)
        except ValueError:
            return None
        return digits, base
    if re.fullmatch(r"\d+", s):
        return s.lstrip("0") or "0", None
    return None


def _base_equivalent(g: tuple[str, int | None], p: tuple[str, int | None]) -> bool:
    """Numerals in a base (MATH's "express in base 9"): SymPy drops the subscript, so 40_9 == 40_8 there.

    Two subscripted numerals are equal when their values are; a bare numeral against a
    subscripted one is the same answer written without the subscript, so digits must match.
    """
    (gd, gb), (pd, pb) = g, p
    if gb is not None and pb is not None:
        return int(gd, gb) == int(pd, pb)
    return gd == pd


class _TruncateLog:
    """Logging filter: cut a record's message to :data:`MV_LOG_MAX_CHARS` characters.

    math-verify's "Timeout during parsing: {input}" (and its debug twins) would otherwise copy a
    whole, possibly megabyte-long, response into the log of every worker.
    """

    def filter(self, record) -> bool:
        msg = record.getMessage()
        if len(msg) > MV_LOG_MAX_CHARS:
            record.msg = f"{msg[:MV_LOG_MAX_CHARS]}... [{len(msg) - MV_LOG_MAX_CHARS} more characters cut]"
            record.args = None
        return True


_LOG_FILTER = _TruncateLog()


def bound_math_verify_logs() -> None:
    """Install the truncating filter on math-verify's loggers (idempotent)."""
    import logging

    for name in ("math_verify", "math_verify.parser", "math_verify.grader", "math_verify.metric",
                 "math_verify.utils", "math_verify.tasks"):
        logger = logging.getLogger(name)
        if _LOG_FILTER not in logger.filters:
            logger.addFilter(_LOG_FILTER)


def _mv():
    import math_verify  # lazy: pulls in SymPy and the LaTeX parser

    bound_math_verify_logs()
    return math_verify


@lru_cache(maxsize=4096)
def _parse(latex: str):
    mv = _mv()
    in_main = threading.current_thread() is threading.main_thread()
    text = latex if "\\boxed" in latex else f"${latex}$"
    return mv.parse(
        text,
        extraction_config=[mv.LatexExtractionConfig(), mv.ExprExtractionConfig()],
        parsing_timeout=MV_TIMEOUT_S if in_main else None,
    )


def equivalent(gold: str, pred: str) -> bool:
    """Is ``pred`` the same mathematical answer as ``gold``? Plain numbers exactly; the rest via math-verify."""
    if not pred or pred == NA:
        return False
    g_base, p_base = base_numeral(normalize(gold)), base_numeral(normalize(pred))
    if g_base and p_base and (g_base[1] is not None or p_base[1] is not None):
        return _base_equivalent(g_base, p_base)
    g_num, p_num = as_number(gold), as_number(pred)
    if g_num is not None and p_num is not None:
        return g_num == p_num
    g, p = normalize(gold), normalize(pred)
    if g == p and g:
        return True
    g, p = _repeating_as_fraction(g), _repeating_as_fraction(p)
    if "=" not in g and _STD_FORM_EQ_RE.match(p):  # an equation (plane, line) is not the value 0
        return False
    g_choice = choice_letters(g)
    if g_choice is not None:
        p_choice = choice_letters(p)
        if p_choice is not None:
            return g_choice == p_choice
    g_word = _WORD_RE.fullmatch(g)
    if g_word:  # a word answer ("\text{Evelyn}", "east"): compare the words, not SymPy symbols
        p_word = _WORD_RE.fullmatch(p)
        return bool(p_word) and g_word.group(1).casefold() == p_word.group(1).casefold()
    if len(g) > MV_MAX_CHARS or len(p) > MV_MAX_CHARS:
        return False
    g_iv, p_iv = inequality_interval(g), inequality_interval(p)
    if (g_iv is None) != (p_iv is None):  # an inequality against an interval: compare intervals
        g, p = g_iv or g, p_iv or p
        if not (_INTERVAL_RE.fullmatch(g.replace(" ", "")) and _INTERVAL_RE.fullmatch(p.replace(" ", ""))):
            return False
    parsed_g, parsed_p = _parse(g), _parse(p)
    if not parsed_g or not parsed_p:
        return False
    in_main = threading.current_thread() is threading.main_thread()
    same = bool(_mv().verify(
        parsed_g, parsed_p,
        float_rounding=MV_FLOAT_ROUNDING,
        timeout_seconds=MV_TIMEOUT_S if in_main else None,
    ))
    return same and _relatively_close(parsed_g[0], parsed_p[0])


_INTERVAL_RE = re.compile(r"[\[(][^,]+,[^,]+[\])]")
#: Two numbers math-verify calls equal must also agree to this relative tolerance: its comparison
#: rounds to MV_FLOAT_ROUNDING decimal places, an *absolute* tolerance under which 1/3^40 and
#: 1/3^41 (both ~0) are "equal".
REL_TOL = 1e-6


def _relatively_close(g, p) -> bool:
    """False when both sides are numbers that differ: exactly for rationals, relatively otherwise."""
    try:
        import sympy

        if not (isinstance(g, sympy.Basic) and isinstance(p, sympy.Basic)):
            return True
        if not (g.is_number and p.is_number) or g.free_symbols or p.free_symbols:
            return True
        if g.is_Rational and p.is_Rational:
            return g == p
        gv, pv = complex(sympy.N(g, 30)), complex(sympy.N(p, 30))
    except (TypeError, ValueError, AttributeError, ArithmeticError):
        return True  # not a plain number (a set, a matrix, ...): math-verify's verdict stands
    scale = max(abs(gv), abs(pv))
    return scale == 0 or abs(gv - pv) <= REL_TOL * scale
