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

math-verify's own timeouts use SIGALRM, which only works in the main thread; elsewhere we
call it without a timeout and rely on :func:`distill.verify.batch.score_batch` (worker
processes with a hard kill) for the bound.
"""

from __future__ import annotations

import re
import threading
from fractions import Fraction
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from distill.verify.types import NA

# math-verify per-call limits (seconds, ints because it uses signal.alarm).
MV_TIMEOUT_S = 2
# Decimal places math-verify rounds floats to when one side is a float. Its default (6)
# is kept: 0.001 vs 0.005 differ at 3 places; plain-number pairs never reach it anyway.
MV_FLOAT_ROUNDING = 6

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\b")
_CODE_BLOCK_RE = re.compile(r"```[^\n`]*\n.*?(?:```|\Z)", re.S)
_ANCHOR_RE = re.compile(
    r"(?:####|\b(?:final\s+answer|the\s+answer|answer)[*_]*\s*(?:is|:|=|would\s+be|will\s+be|should\s+be)"
    r"(?:\s*:)?[*_]*)[ \t]*(?P<rest>[^\n]*)",
    re.I,
)
# A number as written in text: thousands separators only in groups of three.
_NUM_TEXT_RE = re.compile(r"(?<![\w.])[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?(?![\w])|(?<![\w.])[-+−]?\.\d+")
_PLAIN_NUM_RE = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|[-+]?\.\d+")
_TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|mathrm|mbox|textrm)\s*\{([^{}]*)\}")
_UNIT_TAIL_RE = re.compile(r"^(?P<head>.*?[\d}])\s+(?:[A-Za-z]{2,}\.?\s*)+$", re.S)
_UNIT_TEXT_RE = re.compile(r"^(?P<head>.*[\d}])\s*\\(?:text|mbox|mathrm)\s*\{\s*[A-Za-z][A-Za-z .]*\}\s*$", re.S)
_WORD_RE = re.compile(r"(?:\\(?:text|textbf|mathrm|mbox)\s*\{)?\s*([A-Za-z][A-Za-z .'-]*?)\s*\}?")
_ASSIGN_RE = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?\s*=\s*(?P<rhs>[^=<>]+)$")
# One \text{} around the whole answer whose content starts like a number ("\text{5 cm}").
_NUM_IN_TEXT_RE = re.compile(r"^\\(?:text|textrm|mbox|mathrm)\s*\{\s*(?P<inner>[-+]?\\?\$?\s*\.?\d[^{}]*)\}$")
# An equation in standard form, "5x - 7y + 11z + 4 = 0": math-verify would compare its RHS (0).
_STD_FORM_EQ_RE = re.compile(r"^(?=[^=]*\d)(?=[^=]*[A-Za-z])[^=]*[^\s=(]\s*[+-][^=]*=\s*0$")
# A numeral with its base as a subscript ("40_9", "4210_{5}", "A2_{16}").
_BASE_NUM_RE = re.compile(r"(?P<digits>[0-9A-Za-z]+)_\{?(?P<base>\d+)\}?")
# Multiple-choice letters in any common dress: B, (B), \text{(B)}, \textbf{(B)}, (\text{B}), "A, C".
# Checked after the text wrappers are peeled off (:func:`choice_letters`).
_TEXT_WRAP_RE = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_CHOICE_ITEM = r"(?:\(\s*[A-Z]\s*\)|[A-Z])"
_CHOICE_RE = re.compile(rf"\s*{_CHOICE_ITEM}(?:\s*(?:,\s*(?:and\s+)?|and\s+){_CHOICE_ITEM})*\s*")


def find_boxed(text: str) -> str | None:
    """Contents of the last ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces) or ``\\boxed 5``."""
    for m in reversed(list(_BOX_RE.finditer(text))):
        i = m.end()
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            depth, j = 0, i
            while j < len(text):
                c = text[j]
                if c == "\\":
                    j += 2
                    continue
                if c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                    if depth == 0:
                        inner = text[i + 1 : j].strip()
                        if inner:
                            return inner
                        break
                j += 1
        else:
            tok = re.match(r"[^\s$]+", text[i:])
            if tok and i > m.end():  # "\boxed 5" needs the space; "\boxedx" is not a box
                return tok.group(0)
    return None


def strip_code_blocks(text: str) -> str:
    """The response without fenced code blocks (programs are scored by the solvers)."""
    return _CODE_BLOCK_RE.sub(" ", text)


def _clean_candidate(s: str) -> str:
    """Trim an anchored answer to the answer itself: its first $...$ span, else up to the sentence end."""
    s = s.strip().strip("*_ ")
    m = re.search(r"\$\$?(.+?)\$\$?", s)
    if m:
        inner = find_boxed(m.group(1)) or m.group(1)
        return inner.strip()
    m = re.search(r"\\\((.+?)\\\)|\\\[(.+?)\\\]", s)
    if m:
        return (m.group(1) or m.group(2)).strip()
    boxed = find_boxed(s)
    if boxed:
        return boxed
    # cut at a sentence end: ". " / "; " / ", so" etc., but not inside 3.5 or 1,000
    s = re.split(r"(?<=[^\s\d])\.(?:\s|$)|(?<=\d)\.(?:\s|$)|;\s|\s(?:because|since|so|which)\s", s, maxsplit=1)[0]
    return s.strip().rstrip(".").strip()


def anchored_answer(text: str) -> str | None:
    """The last "answer is X" / "Answer: X" / "#### X" with something math-like in X."""
    for m in reversed(list(_ANCHOR_RE.finditer(text))):
        cand = _clean_candidate(m.group("rest"))
        if cand and (re.search(r"[\d\\]", cand)):
            return cand
    return None


def last_number(text: str) -> str | None:
    """The last number in the text (GSM8K-style answers without any marker)."""
    nums = _NUM_TEXT_RE.findall(text)
    return nums[-1].replace(" ", "") if nums else None


def extract_explicit(response: str) -> str | None:
    """Boxed (last wins), else anchored answer; ``None`` when the text states no final answer."""
    prose = strip_code_blocks(response)
    return find_boxed(prose) or anchored_answer(prose)


def extract_fallback(response: str) -> str | None:
    """Last resort when neither an explicit answer nor a solver result exists."""
    return last_number(strip_code_blocks(response))


def normalize(ans: str) -> str:
    """Light, meaning-preserving clean-up shared by the fast path and math-verify input."""
    s = ans.strip()
    s = s.replace("−", "-").replace("\\!", "").replace("{,}", ",").replace("\\,", "").replace("\\;", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\left", "").replace("\\right", "")
    s = s.strip("$ ").rstrip(".").strip()
    # a number and its unit inside one \text{} ("\text{5 cm}"): unwrap, then the unit rules apply
    m = _NUM_IN_TEXT_RE.match(s)
    if m:
        s = m.group("inner").strip()
    # units: a trailing \text{...} of letters, or trailing words after a number ("18 dollars")
    m = _UNIT_TEXT_RE.match(s)
    if m:
        s = m.group("head").strip()
    m = _UNIT_TAIL_RE.match(s)
    if m:
        s = m.group("head").strip()
    s = re.sub(r"^\\\$\s*|^\$\s*", "", s)  # leading currency sign
    return s


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


def as_number(ans: str) -> Fraction | None:
    """Exact value of a plain number ("1,234.50", "x = 3", "\\$18", "18 dollars"); else ``None``."""
    s = normalize(ans)
    m = _ASSIGN_RE.match(s)
    if m:
        s = m.group("rhs").strip()
    s = s.replace(" ", "")
    if not _PLAIN_NUM_RE.fullmatch(s):
        return None
    try:
        return Fraction(Decimal(s.replace(",", "")))
    except (InvalidOperation, ValueError):
        return None


def _mv():
    import math_verify  # lazy: pulls in SymPy and the LaTeX parser

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
    parsed_g, parsed_p = _parse(g), _parse(p)
    if not parsed_g or not parsed_p:
        return False
    in_main = threading.current_thread() is threading.main_thread()
    return bool(_mv().verify(
        parsed_g, parsed_p,
        float_rounding=MV_FLOAT_ROUNDING,
        timeout_seconds=MV_TIMEOUT_S if in_main else None,
    ))
