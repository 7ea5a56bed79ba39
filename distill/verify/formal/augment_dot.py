"""DOT corruption operators for :mod:`distill.verify.formal.augment` (a backticked graph name, ``--``
in a digraph, a missing ``}``, bare keyword ids, unquoted ids with spaces, mismatched HTML-label
tags).

Each operator is ``op(program, rng) -> str | None`` (``None``: it does not apply to this program),
deterministic for a seeded :class:`random.Random`.
"""

from __future__ import annotations

import random
import re

from distill.verify.formal.lexical import code_mask, code_positions

_DOT_HEADER = re.compile(r"^(\s*(?:strict\s+)?(di)?graph)\b\s*(\"(?:\\.|[^\"\\])*\"|[A-Za-z_0-9.]+)?\s*\{",
                         re.I | re.S)
_DOT_KEYWORDS = ("node", "edge", "graph", "subgraph", "strict", "digraph")


def _dot_ids_in_edges(program: str) -> list[str]:
    mask = code_mask("dot", program)
    ids = set()
    for m in re.finditer(r"([A-Za-z_][A-Za-z_0-9]*)\s*(?:->|--)\s*([A-Za-z_][A-Za-z_0-9]*)", program):
        for g in (1, 2):
            if all(mask[m.start(g):m.end(g)]) and m.group(g).lower() not in _DOT_KEYWORDS:
                ids.add(m.group(g))
    return sorted(ids)


def dot_backtick_name(program: str, rng: random.Random) -> str | None:
    """The graph name in backticks (a Markdown habit)."""
    m = _DOT_HEADER.match(program)
    if not m:
        return None
    name = (m.group(3) or "G").strip('"')
    return program[:m.end(1)] + f" `{name}` {{" + program[m.end():]


def dot_undirected_edge_in_digraph(program: str, rng: random.Random) -> str | None:
    """One ``->`` of a digraph written ``--``."""
    m = _DOT_HEADER.match(program)
    pos = code_positions("dot", program, "->")
    if not (m and m.group(2) and pos):
        return None
    i = rng.choice(pos)
    return program[:i] + "--" + program[i + 2:]


def dot_drop_closing_brace(program: str, rng: random.Random) -> str | None:
    """Drop the graph's closing ``}``."""
    pos = code_positions("dot", program, "}")
    if not pos:
        return None
    i = pos[-1]
    return program[:i] + program[i + 1:]


def dot_keyword_id(program: str, rng: random.Random) -> str | None:
    """A node named with a bare keyword (``node``, ``edge``, ``graph``, ...), every occurrence."""
    ids = _dot_ids_in_edges(program)
    if not ids:
        return None
    name, word = rng.choice(ids), rng.choice(_DOT_KEYWORDS)
    mask = code_mask("dot", program)
    pieces, last = [], 0
    for m in re.finditer(rf"(?<![A-Za-z_0-9.]){re.escape(name)}(?![A-Za-z_0-9.])", program):
        if all(mask[m.start():m.end()]) and not program[m.end():].lstrip().startswith("="):
            pieces += [program[last:m.start()], word]
            last = m.end()
    return "".join(pieces) + program[last:]


def dot_unquoted_space_id(program: str, rng: random.Random) -> str | None:
    """A quoted id with a space written without its quotes (``New York -> Boston``)."""
    mask = code_mask("dot", program)
    quoted = [m for m in re.finditer(r'"([^"\\\n ]+(?: [^"\\\n ]+)+)"', program)
              if (m.start() == 0 or mask[m.start() - 1]) and not program[:m.start()].rstrip().endswith("=")]
    if not quoted:
        return None
    m = rng.choice(quoted)
    return program[:m.start()] + m.group(1) + program[m.end():]


def dot_mismatched_html_tag(program: str, rng: random.Random) -> str | None:
    """An HTML label whose closing tag does not match its opening one; a quoted label is turned into
    ``<<b>text</i>>`` when the graph has no HTML label."""
    closing = list(re.finditer(r"</([A-Za-z]+)>", program))
    if closing:
        m = rng.choice(closing)
        other = "i" if m.group(1).lower() != "i" else "b"
        return program[:m.start()] + f"</{other}>" + program[m.end():]
    labels = [m for m in re.finditer(r'label\s*=\s*"((?:[^"\\<>&]|\\.)*)"', program)]
    if not labels:
        return None
    m = rng.choice(labels)
    return program[:m.start()] + f"label=<<b>{m.group(1)}</i>>" + program[m.end():]
