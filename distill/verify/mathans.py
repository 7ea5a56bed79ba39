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
    # units: a trailing \text{...} of letters, or trailing words after a number ("18 dollars")
    m = _UNIT_TEXT_RE.match(s)
    if m:
        s = m.group("head").strip()
    m = _UNIT_TAIL_RE.match(s)
    if m:
        s = m.group("head").strip()
    s = re.sub(r"^\\\$\s*|^\$\s*", "", s)  # leading currency sign
    return s


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
    g_num, p_num = as_number(gold), as_number(pred)
    if g_num is not None and p_num is not None:
        return g_num == p_num
    g, p = normalize(gold), normalize(pred)
    if g == p and g:
        return True
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
