"""Extraction of a free-form math answer from a response: explicit first, then a loose fallback.

Explicit (:func:`extract_explicit`): the last ``\\boxed{}`` (a trailing run of boxes is a list), else
the last "the answer is X" / "Answer: X" / ``#### X``. Fallback (:func:`extract_fallback`), only for a
response that :func:`looks_complete`: the math span that ends the text, else its last number.
"""

from __future__ import annotations

import re

from distill.verify.mathnum import _SCALED_RE, _WORDS_RE, _spell_out
from distill.verify.types import HEDGED
from distill.data.latex import BOX_RE as _BOX_RE, closing_brace, last_boxed

_CODE_BLOCK_RE = re.compile(r"```[^\n`]*\n.*?(?:```|\Z)", re.S)
_ANCHOR_RE = re.compile(
    r"(?:####|\b(?:final\s+answer|the\s+answer|answer)[*_]*\s*(?:is|:|=|would\s+be|will\s+be|should\s+be)"
    r"(?:\s*:)?[*_]*)[ \t]*(?P<rest>[^\n]*)",
    re.I,
)
# A number as written in text: thousands separators only in groups of three.
_NUM_TEXT_RE = re.compile(r"(?<![\w.])[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?(?![\w])|(?<![\w.])[-+−]?\.\d+")




find_boxed = last_boxed


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
        j = closing_brace(text, i)
        inner = text[i + 1 : j].strip() if j is not None else ""
        if inner:
            out.append((m.start(), j + 1, inner))
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
