"""``--backend reference``: the dataset's own worked solution as a teacher path, at zero cost.

GSM8K rows carry the human rationale in ``solution`` (with ``<<a*b=c>>`` calculator notes and a
closing ``#### N`` line) and MATH rows their worked ``solution`` (ending in ``\\boxed{}``). This backend
answers each question with that text, so the path goes through the same cache, verification and
enriched/correct files as an API teacher's: a zero-cost baseline, and a way to train without an API.

How it fits the styles: the path is labelled with the style ``reference`` (a built-in style whose
prompt is the plain core prompt, never in the default rotation), and there is one reference
solution per question, so the run must be ``--styles reference --n 1``. Any other style or a second
sample is a fault that would hit every request (:class:`FatalBackendError`: one line, exit 2), not a
path to record. A row with no usable ``solution`` is that one path rejected (``no reference
solution``), listed in the summary's failed paths; the other rows go on.

What the text becomes: GSM8K notes ``<<...>>`` are removed and a closing ``#### N`` line becomes
``The answer is \\boxed{N}.`` (the format every teacher is asked for); other solutions are kept as
they are. No tokens are counted: nothing is paid.
"""

from __future__ import annotations

import re
from typing import Any

from distill.prompting.backend import Completion, FatalBackendError, Request, RequestRejected

#: The style a reference path carries (registered in :mod:`distill.prompting.styles`).
REFERENCE_STYLE = "reference"
SOLUTION_FIELD = "solution"

_CALC_NOTE = re.compile(r"<<[^<>]*>>")
_FINAL_LINE = re.compile(r"(?:^|\n)[ \t]*####[ \t]*([^\n]*?)[ \t]*$")


def reference_text(solution: str) -> str:
    """A dataset solution as a teacher answer: GSM8K calculator notes stripped, ``#### N`` boxed."""
    text = _CALC_NOTE.sub("", solution).strip()
    m = _FINAL_LINE.search(text)
    if m and m.group(1):
        body = text[:m.start()].rstrip()
        final = f"The answer is \\boxed{{{m.group(1).replace(',', '')}}}."
        text = f"{body}\n{final}" if body else final
    return text


class ReferenceBackend:
    """Answers style ``reference``, sample 0, from ``request.row['solution']``."""

    name = "reference"

    def __init__(self, **_: Any):
        pass

    async def complete(self, request: Request) -> Completion:
        if request.style != REFERENCE_STYLE:
            raise FatalBackendError(
                f"--backend reference answers only style {REFERENCE_STYLE!r} (the dataset's own solution), "
                f"not {request.style!r}; run it with --styles {REFERENCE_STYLE} --n 1")
        if request.sample_index != 0:
            raise FatalBackendError("--backend reference has one solution per question; run it with "
                                    f"--styles {REFERENCE_STYLE} --n 1")
        solution = request.row.get(SOLUTION_FIELD)
        if not isinstance(solution, str) or not solution.strip():
            what = "is missing" if solution is None else "is empty" if isinstance(solution, str) else \
                f"is {type(solution).__name__}, not text"
            raise RequestRejected(f"no reference solution: row {request.row.get('id')!r} field "
                                  f"{SOLUTION_FIELD!r} {what}")
        return Completion(reference_text(solution), finish_reason="stop")

    async def aclose(self) -> None:
        return None
