"""LaTeX text helpers shared by the data importers and the math verifier (lowest layer that needs them)."""

from __future__ import annotations


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
