"""The task registry: which fields a task's rows carry and how its answers are checked.

One table, so the prompting, verification, training and evaluation stages agree on
what a "gsm8k row" is. ``kind`` selects the verifier family:

- ``math``:  free-form mathematical answer (LaTeX-aware equivalence).
- ``mcq``:   a letter among ``choices["label"]``.
- ``yesno``: ``Yes`` / ``No``.
- ``nli``:   ``entailment`` / ``neutral`` / ``contradiction`` (prompted as True/Neither/False).
"""

from __future__ import annotations

from dataclasses import dataclass

from distill.errors import DistillError


@dataclass(frozen=True)
class TaskSpec:
    """What rows of a task must contain and which verifier family scores them."""

    name: str
    kind: str  # math | mcq | yesno | nli
    required: tuple[str, ...]


TASKS: dict[str, TaskSpec] = {
    "gsm8k": TaskSpec("gsm8k", "math", ("id", "question", "gold_answer")),
    "math": TaskSpec("math", "math", ("id", "question", "gold_answer")),
    "table_mwp": TaskSpec("table_mwp", "math", ("id", "question", "table", "gold_answer")),
    "arc_challenge": TaskSpec("arc_challenge", "mcq", ("id", "question", "choices", "gold_answer")),
    "commonsense_qa": TaskSpec("commonsense_qa", "mcq", ("id", "question", "choices", "gold_answer")),
    "date": TaskSpec("date", "mcq", ("id", "question", "choices", "gold_answer")),
    "strategy_qa": TaskSpec("strategy_qa", "yesno", ("id", "question", "gold_answer")),
    "anli": TaskSpec("anli", "nli", ("id", "premise", "hypothesis", "gold_answer")),
    # The built-in offline task of the demo: seeded multi-step arithmetic word problems.
    "arith": TaskSpec("arith", "math", ("id", "question", "gold_answer")),
}

#: Fields an enriched row adds to its source row; parallel lists, one entry per path.
PATH_FIELDS: tuple[str, ...] = ("prompts", "styles", "responses", "preds", "correct_flags")


class UnknownTaskError(DistillError, ValueError):
    """Raised for a task name not in :data:`TASKS`; the message lists the valid ones."""


def get_task(name: str) -> TaskSpec:
    """Look up a task by name, failing with the list of valid names."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(
            f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}"
        ) from None
