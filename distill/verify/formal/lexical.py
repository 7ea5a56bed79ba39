"""Where the *code* of a formal program is: everything outside comments, strings and quoted symbols.

Why: the corruption operators (:mod:`distill.verify.formal.augment`) and the template repair
(:mod:`distill.verify.formal.repair`) edit programs as text. A ``)`` inside an SMT string, a ``.``
inside an ASP comment or a ``--`` inside a DOT label is not syntax, and editing it would either do
nothing or break a different thing than the operator claims. One scan per language marks each
character as code or not; the editors only touch code characters.
"""

from __future__ import annotations

import re

# per language: the spans that are *not* code (comments, strings, quoted symbols)
_NOT_CODE: dict[str, re.Pattern[str]] = {
    "smt": re.compile(r';[^\n]*|"(?:[^"]|"")*(?:"|\Z)|\|[^|]*(?:\||\Z)', re.S),
    "asp": re.compile(r'%\*.*?(?:\*%|\Z)|%[^\n]*|"(?:\\.|[^"\\\n])*(?:"|$)', re.S | re.M),
    "dot": re.compile(r'/\*.*?(?:\*/|\Z)|//[^\n]*|^[ \t]*#[^\n]*|"(?:\\.|[^"\\])*(?:"|\Z)', re.S | re.M),
}


def _html_spans(text: str, mask: list[bool]) -> None:
    """DOT HTML labels ``<...>`` (nested angle brackets) after ``=`` are not code."""
    i = 0
    while i < len(text):
        if mask[i] and text[i] == "<" and text[:i].rstrip().endswith("="):
            depth, j = 0, i
            while j < len(text):
                if text[j] == "<":
                    depth += 1
                elif text[j] == ">":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            for k in range(i, min(j + 1, len(text))):
                mask[k] = False
            i = j + 1
        else:
            i += 1


def code_mask(language: str, text: str) -> list[bool]:
    """``mask[i]`` is True when ``text[i]`` is program code (not in a comment, string or quoted symbol)."""
    mask = [True] * len(text)
    for m in _NOT_CODE[language].finditer(text):
        for k in range(m.start(), m.end()):
            mask[k] = False
    if language == "dot":
        _html_spans(text, mask)
    return mask


def code_positions(language: str, text: str, token: str) -> list[int]:
    """Start offsets of ``token`` where every one of its characters is code."""
    mask = code_mask(language, text)
    return [m.start() for m in re.finditer(re.escape(token), text)
            if all(mask[m.start():m.end()])]


def non_code_spans(language: str, text: str) -> list[re.Match[str]]:
    """The comment, string and quoted-symbol matches of ``text``, in order (DOT HTML labels not included)."""
    return list(_NOT_CODE[language].finditer(text))
