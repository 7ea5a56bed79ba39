"""LaTeX text helpers shared by the data importers and the math verifier (lowest layer that needs them)."""

from __future__ import annotations

import re

BOX_RE = re.compile(r"\\(?:boxed|fbox)\b")


def closing_brace(text: str, i: int) -> int | None:
    """Index of the ``}`` that closes the ``{`` at ``text[i]`` (nested braces; a backslash escapes the
    next character), or ``None`` when it is never closed."""
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
                return j
        j += 1
    return None


def last_boxed(text: str | None) -> str | None:
    """Contents of the last non-empty ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces) or ``\\boxed 5``."""
    if not text:
        return None
    for m in reversed(list(BOX_RE.finditer(text))):
        i = m.end()
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            j = closing_brace(text, i)
            inner = text[i + 1 : j].strip() if j is not None else ""
            if inner:
                return inner
        else:
            tok = re.match(r"[^\s$]+", text[i:])
            if tok and i > m.end():  # "\boxed 5" needs the space; "\boxedx" is not a box
                return tok.group(0)
    return None
