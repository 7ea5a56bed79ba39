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

from distill.verify.types import HEDGED, NA

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


# Between two boxes of one list answer: a separator and at most "x =" ("$x=\\boxed{2}$ and $x=\\boxed{-3}$").
_BOX_SEP_RE = re.compile(r"\$?\s*(?:,\s*(?:and|or)?|and|or|;)\s*\$?\s*(?:[A-Za-z]\w*\s*=\s*)?")


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """Every non-empty ``\\boxed{...}`` as ``(start, end, inner)``."""
    out = []
    for m in _BOX_RE.finditer(text):
        i = m.end()
        while i < len(text) and text[i] == " ":
            i += 1
        if i >= len(text) or text[i] != "{":
            continue
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
                        out.append((m.start(), j + 1, inner))
                    break
            j += 1
    return out


def boxed_answer(text: str) -> str | None:
    """The last box, or the list its trailing run of boxes forms ("\\boxed{2} and \\boxed{-3}" -> "2, -3")."""
    last = find_boxed(text)
    boxes = _boxes(text)
    if not last or not boxes or boxes[-1][2] != last:
        return last
    group = [boxes[-1]]
    for prev in reversed(boxes[:-1]):
        if not _BOX_SEP_RE.fullmatch(text[prev[1] : group[0][0]]):
            break
        group.insert(0, prev)
    if len(group) == 1:
        return last
    return ", ".join(b[2] for b in group)


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


_HEDGE_RE = re.compile(r"^\$[^$]+\$\s*(?:,\s*)?or\s+\$[^$]+\$|^\S+\s+or\s+[-+]?\d")


def anchored_answer(text: str) -> str | None:
    """The last "answer is X" / "Answer: X" / "#### X" with something math-like (or a number word) in X.

    A hedge ("the answer is $3$ or $4$") is :data:`HEDGED`: two answers are never the answer.
    """
    for m in reversed(list(_ANCHOR_RE.finditer(text))):
        rest = m.group("rest").strip().strip("*_ ")
        if _HEDGE_RE.match(rest) or re.match(r"either\b", rest, re.I):
            return HEDGED
        cand = _clean_candidate(rest)
        if cand and (re.search(r"[\d\\]", cand) or _spell_out(cand) != cand):
            return cand
    return None


def last_number(text: str) -> str | None:
    """The last number in the text (GSM8K-style answers without any marker): digits, with a scale
    word ("3 million"), or in words ("eleven"; a lone "one" is too often a pronoun to count)."""
    found: list[tuple[int, str]] = []
    for m in _NUM_TEXT_RE.finditer(text):
        sm = _SCALED_RE.match(text, m.start())
        found.append((m.start(), sm.group(0) if sm else m.group(0).replace(" ", "")))
    for m in _WORDS_RE.finditer(text):
        # a number word counts as a result ("sold seven DVDs", "is eleven"), not as a reference to a
        # known quantity ("for the first two weeks", "each of the three"); a lone "one" never counts
        if (m.group(0).casefold() == "one" or _REFERENCE_BEFORE_RE.search(text, 0, m.start())
                or not _NEAR_END_RE.match(text, m.end())):
            continue
        found.append((m.start(), m.group(0)))
    return max(found)[1] if found else None


# At most a unit phrase of three words between a number word and the end ("seven DVDs.").
_NEAR_END_RE = re.compile(r"(?:[\s,]*[A-Za-z'-]+){0,3}[\s.!?*_]*\Z")
_REFERENCE_BEFORE_RE = re.compile(
    r"\b(?:the|first|next|last|these|those|all|both|each|of|every|per|other|only|same|its|their|his|her|"
    r"for|in|after|within|over|every|into|by|between|among)\s+\Z", re.I)


# The end of a finished response: a sentence end, a closing bracket, math or code fence.
_COMPLETE_END_RE = re.compile(r"(?:[.!?)\]}$\"'”’]|```|\\\]|\\\))[*_\s]*\Z")


# Words a finished sentence does not end on ("... and then if we", "... growth in"); or an operator.
_DANGLING_RE = re.compile(
    r"(?:\b(?:a|an|the|and|or|but|nor|so|then|if|of|to|in|on|at|by|for|with|from|into|than|as|is|are|was|"
    r"were|be|been|will|would|can|could|should|must|has|have|had|do|does|did|we|I|you|he|she|it|they|"
    r"this|that|these|those|which|who|whose|whether|unless|because|since|while|when|where|plus|minus|"
    r"divided|let|get|gets|per|its|their|our|his|her)|[=+\-*/×÷^_,;(\[{\\])[*_\s]*\Z", re.I)


# A sentence end inside a line: "so far. She has" (not "Mrs. Rylan", not "portions. 12/3 = 4").
_INNER_SENTENCE_END_RE = re.compile(
    r"[a-z0-9)%](?<!\bMr)(?<!\bMrs)(?<!\bMs)(?<!\bDr)(?<!\bSt)(?<!\bvs)[.!?][*_)\]]*\s+[A-Z]")


def looks_complete(response: str) -> bool:
    """Does the response end like a finished text (not cut off mid-sentence by a token limit)?

    Finished: it ends with a sentence end, a closing bracket, math or code fence; its last sentence
    is one or two words ("Thus: No", "...\n42"); or its last line is one unpunctuated result
    ("So he runs 9*60=540 meters", GSM8K's own style). Cut off: it ends
    on a word or operator no sentence ends on ("... and then if we"), or its last line holds full
    sentences and then stops without one ("... so 16 - 3 = 13 eggs. She has 20").
    """
    text = response.rstrip()
    if not text:
        return False
    if _COMPLETE_END_RE.search(text):
        return True
    if _DANGLING_RE.search(text):
        return False
    last = re.split(r"(?<=[.!?])\s+|\n", text)[-1].strip(" *_#=:")
    if len(last.split()) <= 2 and len(last) <= 24:  # a bare result on its own: "...\n42", "Thus: No"
        return True
    last_line = text.splitlines()[-1]
    return not _INNER_SENTENCE_END_RE.search(last_line)


_FINAL_MATH_RE = re.compile(r"(?:\$\$?|\\\(|\\\[)(?P<m>[^$]+?)(?:\$\$?|\\\)|\\\])[\s.!]*\Z")


_RELATION_RE = re.compile(r"\\(?:le|ge|leq|geq|lt|gt|neq|ne|equiv|approx|sim|pmod|in|subset)(?![A-Za-z])|[<>≤≥≠]")


def final_math(prose: str) -> str | None:
    """A plainly stated final answer: the math span that ends the text ("so the point is $(4, -1)$.")."""
    m = _FINAL_MATH_RE.search(prose.rstrip())
    if not m:
        return None
    inner = m.group("m").strip()
    if _RELATION_RE.search(inner):  # "x \\ge 0", "a \\equiv 4 \\pmod 7": not an answer, a condition
        return None
    # a chain "2\\cdot 5! = 240 = x": its last side with a digit (the result)
    sides = [x.strip() for x in re.split(r"=|\\Rightarrow|\\implies", inner)]
    inner = next((x for x in reversed(sides) if re.search(r"\d", x)), "")
    inner = re.sub(r"^\{([^{}]*)\}", r"\1", inner)  # "= {58,500}": a brace group is not part of the value
    if not inner or re.search(r"(?<![\\A-Za-z])[A-Za-z]{3,}", inner):
        return None
    return inner


def extract_explicit(response: str) -> str | None:
    """Boxed (last wins; a trailing run of boxes is a list), else anchored answer; ``None`` when the
    text states no final answer; :data:`HEDGED` for a hedged one."""
    prose = strip_code_blocks(response)
    return boxed_answer(prose) or anchored_answer(prose)


def extract_fallback(response: str) -> str | None:
    """Last resort when neither an explicit answer nor a solver result exists: the math that ends
    the text, else its last number; nothing for a response cut off before it concludes."""
    if not looks_complete(response):
        return None
    prose = strip_code_blocks(response)
    return final_math(prose) or last_number(prose)


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
    rep = _repeating_value(s)
    if rep is not None:
        return rep
    if not _PLAIN_NUM_RE.fullmatch(s):
        return None
    try:
        return Fraction(Decimal(s.replace(",", "")))
    except (InvalidOperation, ValueError):
        return None


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
