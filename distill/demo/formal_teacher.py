"""The scripted teacher's answers for the demo's formal tasks (``smt``, ``asp``, ``dot``).

:class:`distill.demo.teacher.ScriptedBackend` sends a formal task's request here. Three styles of
clearly different shape (the router has something to tell apart):

- ``bare``: the program only, fenced;
- ``steps``: the program written step by step, one comment (in the language's own comment syntax)
  before each part;
- ``explain``: one sentence on the modelling, the fenced program, one sentence on what the solver does.

Each answer is, with probability ``broken_rate``, *broken*: the program corrupted by one of
``distill augment``'s operators (the teacher mistakes those model: a dropped ``)``, a missing final
``.``, ``--`` in a digraph, ...), so the solver rejects it; else with probability ``wrong_rate``
*valid but wrong*: the program of a slightly changed problem (:func:`distill.demo.formal_gen.mutate`);
else correct. Verification, not this module, decides what ends up in the correct file (a corruption
the solver happens to accept, or a mutation that means the same, is scored as what it is).
Deterministic per ``(row id, style, sample_index, seed)`` like the ``arith`` teacher.
"""

from __future__ import annotations

import random
from typing import Any

from distill.demo.formal_gen import LANGUAGES, mutate, program

FORMAL_STYLES: tuple[str, ...] = ("bare", "steps", "explain")
#: The style templates ``distill demo --task`` registers with ``distill prompt --styles-file``.
STYLE_TEMPLATES: dict[str, str] = {
    "bare": "{core}\n\nReply with the program only.",
    "steps": "{core}\n\nWrite the program step by step, with a comment before each part.",
    "explain": "{core}\n\nSay in one sentence how you model the problem, write the program, then say what "
               "the solver will do with it.",
}
#: The operators of :mod:`distill.verify.formal.augment` the teacher breaks programs with (not the
#: stray-fence one: inside the answer's own fence it would change what is extracted, not the program).
BREAKERS: dict[str, tuple[str, ...]] = {
    "smt": ("drop_paren", "undeclared_symbol", "non_bool_assert", "get_value_before_check_sat"),
    "asp": ("drop_final_period", "double_brace", "drop_body", "if_for_neck", "slash_comment",
            "hashless_directive"),
    "dot": ("undirected_edge_in_digraph", "drop_closing_brace", "keyword_id", "backtick_name"),
}
_FENCE = {"smt": "smt2", "asp": "asp", "dot": "dot"}
_INTRO = {"smt": "Each unknown is an integer constant and each condition one assertion.",
          "asp": "Nodes, edges and colours are facts; a choice rule gives each node one colour and a "
                 "constraint forbids equal colours on an edge.",
          "dot": "Each transition or dependency is one directed edge."}
_OUTRO = {"smt": "Z3 checks that all the assertions can hold together.",
          "asp": "clingo lists every valid colouring as an answer set.",
          "dot": "Graphviz reads the edges and builds the graph."}


def _break(task: str, text: str, rng: random.Random) -> str:
    """``text`` corrupted by the first operator (in a seeded order) whose output the real solver rejects:
    as in ``distill augment``, some corruptions are valid programs (e.g. ``:-`` -> `` if `` after a comment
    line joins the rule to the comment), and a "broken" answer must be one the solver refuses."""
    from distill.verify.formal import validate_program
    from distill.verify.formal.augment import OPERATORS

    names = list(BREAKERS[task])
    rng.shuffle(names)
    for name in names:
        broken = OPERATORS[task][name](text, rng)
        if broken is not None and broken.strip() != text.strip() and not validate_program(task, broken).valid:
            return broken
    return text[: max(1, len(text) // 2)]  # no operator applies: a cut-off program


def formal_answer(task: str, row: dict[str, Any], style: str, rng: random.Random, *,
                  wrong_rate: float, broken_rate: float) -> tuple[str, str]:
    """``(answer text, kind)`` with kind ``correct``, ``wrong`` or ``broken`` (what the teacher meant
    to write; the verifier has the last word)."""
    if task not in LANGUAGES:
        raise ValueError(f"not a formal demo task: {task!r}")
    if style not in FORMAL_STYLES:
        raise ValueError(f"unknown style {style!r} for task {task!r}; the scripted teacher knows "
                         f"{', '.join(FORMAL_STYLES)}")
    spec = row["spec"]
    u = rng.random()
    kind = "broken" if u < broken_rate else "wrong" if u < broken_rate + wrong_rate else "correct"
    if kind == "wrong":
        spec = mutate(task, spec, rng)
    text = program(task, spec, comments=(style == "steps"))
    if kind == "broken":
        text = _break(task, text, rng)
    block = f"```{_FENCE[task]}\n{text}\n```"
    if style == "explain":
        return f"{_INTRO[task]}\n{block}\n{_OUTRO[task]}", kind
    return block, kind
