"""Plain numbers and light normalisation of math answers: the exact fast path of equivalence.

Numbers in words ("twenty-five") or with a scale word ("2.5 thousand"), repeating decimals
(``0.\\overline{6}``), thousands separators, currency signs and trailing units: everything here is
exact (:class:`fractions.Fraction`) and needs no SymPy. Shared by extraction
(:mod:`distill.verify.mathextract`) and equivalence (:mod:`distill.verify.mathequiv`).
"""

from __future__ import annotations

import re
from fractions import Fraction
from decimal import Decimal, InvalidOperation

_PLAIN_NUM_RE = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|[-+]?\.\d+")
_TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|mathrm|mbox|textrm)\s*\{([^{}]*)\}")
_UNIT_TAIL_RE = re.compile(r"^(?P<head>.*?[\d}])\s+(?:[A-Za-z]{2,}\.?\s*)+$", re.S)
_UNIT_TEXT_RE = re.compile(r"^(?P<head>.*[\d}])\s*\\(?:text|mbox|mathrm)\s*\{\s*[A-Za-z][A-Za-z .]*\}\s*$", re.S)
_ASSIGN_RE = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?\s*=\s*(?P<rhs>[^=<>]+)$")
# One \text{} around the whole answer whose content starts like a number ("\text{5 cm}").
_NUM_IN_TEXT_RE = re.compile(r"^\\(?:text|textrm|mbox|mathrm)\s*\{\s*(?P<inner>[-+]?\\?\$?\s*\.?\d[^{}]*)\}$")


# Numbers in words ("eleven", "twenty-five", "one hundred and twelve") and scale words ("3 million").
_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_NUM_WORD = "|".join(sorted([*_UNITS, *_TENS, "hundred", *_SCALES], key=len, reverse=True))
_WORDS_RE = re.compile(rf"(?<![\w-])(?:{_NUM_WORD})(?:(?:[ -]|\s+and\s+)(?:{_NUM_WORD}))*(?![\w-])", re.I)
_SCALED_RE = re.compile(
    r"(?P<num>[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)\s*(?P<scale>thousand|million|billion|trillion)(?![\w])", re.I)
# A repeating decimal: 0.\overline{6}, 0.1\overline{7}, .\overline{28}, 0.\dot{3}
_REPEAT_RE = re.compile(
    r"(?P<sign>[-+]?)(?P<int>\d*)\.(?P<fix>\d*)\\(?:overline|dot)\s*(?:\{(?P<rep>\d+)\}|(?P<rep1>\d))")


def words_value(text: str) -> int | None:
    """The value of a number written in words ("twenty-five", "one hundred and two"); else ``None``."""
    total = current = 0
    seen = False
    for w in re.split(r"[\s-]+", text.casefold().strip()):
        if w == "and":
            continue
        if w in _UNITS:
            current += _UNITS[w]
        elif w in _TENS:
            current += _TENS[w]
        elif w == "hundred":
            current = (current or 1) * 100
        elif w in _SCALES:
            total += (current or 1) * _SCALES[w]
            current = 0
        else:
            return None
        seen = True
    return total + current if seen else None


def _spell_out(s: str) -> str:
    """Rewrite a leading number in words or a scaled number as digits ("2.5 thousand" -> "2500")."""
    m = _SCALED_RE.match(s)
    if m:
        v = Fraction(Decimal(m.group("num").replace(",", ""))) * _SCALES[m.group("scale").casefold()]
        return _fraction_str(v) + s[m.end():]
    m = _WORDS_RE.match(s)
    # only a number with at most a unit after it ("eleven", "seven DVDs"), not "one of the two options"
    if m and len(s[m.end():].split()) <= 2:
        v = words_value(m.group(0))
        if v is not None:
            return str(v) + s[m.end():]
    return s


def _fraction_str(v: Fraction) -> str:
    if v.denominator == 1:
        return str(v.numerator)
    return str(Decimal(v.numerator) / Decimal(v.denominator))


def _repeating_as_fraction(s: str) -> str:
    """``0.\\overline{6}`` -> ``\\frac{2}{3}`` (math-verify cannot read the overline); else ``s``."""
    v = _repeating_value(s)
    if v is None:
        return s
    sign = "-" if v < 0 else ""
    return f"{sign}\\frac{{{abs(v.numerator)}}}{{{v.denominator}}}"


def _repeating_value(s: str) -> Fraction | None:
    m = _REPEAT_RE.fullmatch(s.replace(" ", ""))
    if not m:
        return None
    whole, fix, rep = m.group("int") or "0", m.group("fix"), m.group("rep") or m.group("rep1")
    v = Fraction(int(whole)) + (Fraction(int(fix), 10 ** len(fix)) if fix else 0)
    v += Fraction(int(rep), (10 ** len(rep) - 1) * 10 ** len(fix))
    return -v if m.group("sign") == "-" else v


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
    # a number in words or with a scale word ("eleven", "2.5 thousand"): digits, before the unit rules
    # ("thousand" is not a unit to drop)
    s = _spell_out(re.sub(r"^\\\$\s*|^\$\s*", "", s))
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
    rep = _repeating_value(s)
    if rep is not None:
        return rep
    if not _PLAIN_NUM_RE.fullmatch(s):
        return None
    try:
        return Fraction(Decimal(s.replace(",", "")))
    except (InvalidOperation, ValueError):
        return None
