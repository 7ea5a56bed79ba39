"""The task registry: which fields a task's rows carry and how its answers are checked.

One table, so the prompting, verification, training and evaluation stages agree on
what a "gsm8k row" is. It holds the research tasks; more come from :func:`register_task`
or from packages declaring a ``distill.tasks`` entry point (the demo's ``arith`` is one).
``kind`` selects the verifier family:

- ``math``:  free-form mathematical answer (LaTeX-aware equivalence).
- ``mcq``:   a letter among ``choices["label"]``.
- ``yesno``: ``Yes`` / ``No``.
- ``nli``:   ``entailment`` / ``neutral`` / ``contradiction`` (prompted as True/Neither/False).
- ``smt``, ``asp``, ``dot`` (:data:`FORMAL_KINDS`): the answer is a program (SMT-LIB2, an Answer Set
  Program, a DOT graph) and ``gold_answer`` is the reference program; the real solver decides
  validity and equivalence (:mod:`distill.verify.formal`). ASP rows may carry ``facts``, an instance
  appended to both programs before solving.
"""

from __future__ import annotations

from dataclasses import dataclass

from distill.errors import ConfigError, DistillError
from distill.plugins import PluginRegistry


@dataclass(frozen=True)
class TaskSpec:
    """What rows of a task must contain and which verifier family scores them."""

    name: str
    kind: str  # math | mcq | yesno | nli | smt | asp | dot
    required: tuple[str, ...]


#: The research tasks that ship with distill. Others (the demo's ``arith``, a user's own) come from
#: :func:`register_task` or the ``distill.tasks`` entry-point group.
BUILTIN_TASKS: tuple[TaskSpec, ...] = (
    TaskSpec("gsm8k", "math", ("id", "question", "gold_answer")),
    TaskSpec("math", "math", ("id", "question", "gold_answer")),
    TaskSpec("table_mwp", "math", ("id", "question", "table", "gold_answer")),
    TaskSpec("arc_challenge", "mcq", ("id", "question", "choices", "gold_answer")),
    TaskSpec("commonsense_qa", "mcq", ("id", "question", "choices", "gold_answer")),
    TaskSpec("date", "mcq", ("id", "question", "choices", "gold_answer")),
    TaskSpec("strategy_qa", "yesno", ("id", "question", "gold_answer")),
    TaskSpec("anli", "nli", ("id", "premise", "hypothesis", "gold_answer")),
    TaskSpec("smt", "smt", ("id", "question", "gold_answer")),
    TaskSpec("asp", "asp", ("id", "question", "gold_answer")),
    TaskSpec("dot", "dot", ("id", "question", "gold_answer")),
)
#: Kinds whose answer is a whole program checked by a solver against the reference program.
FORMAL_KINDS: tuple[str, ...] = ("smt", "asp", "dot")
KINDS: tuple[str, ...] = ("math", "mcq", "yesno", "nli", *FORMAL_KINDS)
ENTRY_POINT_GROUP = "distill.tasks"


class TaskRegistry(PluginRegistry[TaskSpec]):
    """Name -> :class:`TaskSpec`, a read-only mapping that also finds plug-in tasks.

    A lookup of a name that is not registered loads the ``distill.tasks`` entry point of that name
    (if an installed package declares one); iterating (listing the names) loads them all. An entry
    point names a :class:`TaskSpec` object (or a zero-argument callable returning one) whose
    ``name`` equals the entry point's name.
    """

    def _check(self, name: str, obj: object) -> TaskSpec:
        spec = obj() if callable(obj) and not isinstance(obj, TaskSpec) else obj
        if not isinstance(spec, TaskSpec):
            raise TypeError(f"expected a TaskSpec, got {type(spec).__name__}")
        if spec.name != name:
            raise ValueError(f"its TaskSpec is named {spec.name!r}, not {name!r}")
        if spec.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {spec.kind!r}")
        return spec


#: Every task by name (a Mapping: ``name in TASKS``, ``TASKS[name]``, ``sorted(TASKS)``).
TASKS = TaskRegistry(ENTRY_POINT_GROUP, "task", {s.name: s for s in BUILTIN_TASKS})


def register_task(spec: TaskSpec, *, replace: bool = False) -> TaskSpec:
    """Add a task to :data:`TASKS` (``replace=True`` to redefine one). Returns ``spec``.

    In-process only: worker processes (the verifiers' pool, every ``accelerate launch`` rank) start
    fresh interpreters, so a task used there must also be importable from where they look it up, i.e.
    be declared as a ``distill.tasks`` entry point of an installed package (see the README).
    """
    if not isinstance(spec, TaskSpec):
        raise TypeError(f"register_task needs a TaskSpec, got {type(spec).__name__}")
    if spec.kind not in KINDS:
        raise ConfigError(f"task {spec.name!r}: kind must be one of {', '.join(KINDS)}, got {spec.kind!r}")
    TASKS.register(spec.name, spec, replace=replace)
    return spec


def task_names() -> list[str]:
    """Every task name, built-in and plug-in, sorted."""
    return sorted(TASKS)


#: The gold answers a closed-answer kind accepts (casefolded, surrounding spaces ignored). They are the
#: words the verifiers map (:mod:`distill.verify.choice`; ``tests/test_input_validation.py`` keeps the two
#: in step): a gold outside them could never be matched, so every path of its row would count as wrong.
GOLD_WORDS: dict[str, frozenset[str]] = {
    "yesno": frozenset({"yes", "no", "true", "false"}),
    "nli": frozenset({"entailment", "neutral", "contradiction", "true", "false", "neither", "yes", "no",
                      "entails", "entailed", "undetermined", "unknown", "contradicts", "contradicted",
                      "e", "n", "c"}),
}

#: Fields of a row that are identifiers, answers or options rather than question text.
NON_TEXT_FIELDS: tuple[str, ...] = ("id", "gold_answer", "choices")


def question_fields(spec: TaskSpec) -> tuple[str, ...]:
    """The required fields a prompt is built from (question, premise, table, choices...): what a
    correct/judged row must carry to be trained on without its source row beside it."""
    return tuple(f for f in spec.required if f not in ("id", "gold_answer"))


#: Fields an enriched row adds to its source row; parallel lists, one entry per path.
PATH_FIELDS: tuple[str, ...] = ("prompts", "styles", "responses", "preds", "correct_flags")
#: Extra parallel path lists of formal-kind rows: did the solver accept the program (``correct``
#: implies ``valid``), and the solver's first error (``None`` when valid): training signal.
FORMAL_PATH_FIELDS: tuple[str, ...] = ("valid_flags", "diagnostics")


def is_formal(spec: TaskSpec) -> bool:
    """Is the task's answer a program verified by a solver (``smt``, ``asp``, ``dot``)?"""
    return spec.kind in FORMAL_KINDS


class UnknownTaskError(DistillError, ValueError):
    """Raised for a task name not in :data:`TASKS`; the message lists the valid ones."""


def get_task(name: str) -> TaskSpec:
    """Look up a task by name (built-in, registered or plug-in), failing with the valid names."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}"
                               f"{TASKS.failure_note(name)}") from None
