"""Solver-in-the-loop refinement at evaluation: answer, check, feed the solver's message back, answer again.

:func:`refine_loop` is the loop, over any ``generate(conversations) -> texts`` callable (a real
student: :func:`distill.students.generate.conversation_generator`; a test: a scripted one) and a
``check(i, text) -> Check`` callable. Per item, up to ``rounds`` times: when the check says the answer
needs work, the conversation grows by the answer (an assistant turn) and :func:`feedback_message`
(a user turn, ``"The solver reported: <diagnostic>. Fix the program."``) and the student answers
again. It stops early when the check passes, when the program no longer changes, or when the
conversation no longer fits the student's context (``generate`` returns ``None`` for it). The
answer kept is the best so far: valid beats invalid (then check-passing beats not), ties keep the
earlier one.

What the loop may see. The loop only ever holds the conversations and what ``check`` returns, and
the checks are built so that:

- ``refine_on="invalid"`` (:func:`validity_check`): the check is the solver's *validity* verdict
  (``validate``: does the solver accept the program, with an ASP row's ``facts``, which the prompt
  shows anyway). It is built from the facts alone and never receives a row, so no reference
  program can reach a prompt. This is a real test-time procedure.
- ``refine_on="wrong"`` (:func:`oracle_check`): "valid but wrong" cannot be known without the
  reference, so the check runs the full verifier against it. The reference text never enters a
  prompt (the feedback for a valid-but-wrong program is a fixed sentence), but each round leaks one
  bit of it ("wrong"), so such rows are an **oracle-feedback upper bound**, labelled so in the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

#: what ``--refine-on`` accepts
REFINE_ON = ("invalid", "wrong")
#: the user turn after an invalid program (``{diagnostic}``: the solver's first error)
FEEDBACK = "The solver reported: {diagnostic}. Fix the program."
#: the user turn after a valid but wrong program (``--refine-on wrong``, oracle feedback)
WRONG_FEEDBACK = "The solver accepted the program, but it does not solve the problem. Fix the program."

Conversation = list[dict[str, str]]
Generate = Callable[[list[Conversation]], Sequence[str | None]]


@dataclass(frozen=True)
class Check:
    """What the loop learns about one answer: the extracted ``program``, whether the solver accepts it
    (``valid``), whether it needs no further round (``ok``), and the solver's first error."""

    program: str
    valid: bool
    ok: bool
    diagnostic: str | None = None
    timed_out: bool = False


@dataclass
class Outcome:
    """One item's refinement: every round's answer and check (``trail``), the kept one (``best``) and
    why it stopped (``ok`` | ``unchanged`` | ``rounds`` | ``context``)."""

    trail: list[dict[str, Any]] = field(default_factory=list)
    best: int = 0
    stop: str = "rounds"

    @property
    def iterations(self) -> int:
        """Regenerations run (0: the first answer passed, or no round was allowed)."""
        return len(self.trail) - 1

    @property
    def best_text(self) -> str:
        return self.trail[self.best]["text"]


def feedback_message(check: Check) -> str:
    """The user turn that sends ``check`` back to the student."""
    if check.valid:
        return WRONG_FEEDBACK
    diagnostic = (check.diagnostic or "the program is not valid").strip().rstrip(".")
    return FEEDBACK.format(diagnostic=diagnostic)


def _rank(step: dict[str, Any]) -> tuple[bool, bool]:
    return step["valid"], step["ok"]


def _step(round_: int, text: str, c: Check) -> dict[str, Any]:
    return {"round": round_, "text": text, "program": c.program, "valid": c.valid, "ok": c.ok,
            "diagnostic": c.diagnostic, "timed_out": c.timed_out}


def refine_loop(conversations: Sequence[Conversation], generate: Generate, check: Callable[[int, str], Check], *,
                rounds: int, first: Sequence[str] | None = None) -> list[Outcome]:
    """Refine every item's answer for up to ``rounds`` rounds (see the module docstring).

    ``conversations``: each item's opening turns (the question); ``first``: the items' first answers
    when already generated (else ``generate`` makes them). Each round makes one ``generate`` call
    over the items still being refined, in input order.
    """
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    convs = [list(c) for c in conversations]
    texts = list(first) if first is not None else list(generate(convs))
    if len(texts) != len(convs):
        raise ValueError(f"{len(texts)} first answers for {len(convs)} conversations")
    outcomes: list[Outcome] = []
    active: list[int] = []
    for i, text in enumerate(texts):
        if text is None:
            raise ValueError(f"item {i}: no first answer (its prompt does not fit the model)")
        c = check(i, text)
        outcomes.append(Outcome(trail=[_step(0, text, c)], stop="ok" if c.ok else "rounds"))
        if not c.ok:
            active.append(i)
    for r in range(1, rounds + 1):
        if not active:
            break
        for i in active:
            last = outcomes[i].trail[-1]
            last_check = Check(last["program"], last["valid"], last["ok"], last["diagnostic"], last["timed_out"])
            convs[i] = convs[i] + [{"role": "assistant", "content": last["text"]},
                                   {"role": "user", "content": feedback_message(last_check)}]
        answers = list(generate([convs[i] for i in active]))
        if len(answers) != len(active):
            raise ValueError(f"generate returned {len(answers)} answers for {len(active)} conversations")
        still: list[int] = []
        for i, text in zip(active, answers):
            o = outcomes[i]
            if text is None:
                o.stop = "context"
                continue
            previous = o.trail[-1]["program"]
            c = check(i, text)
            o.trail.append(_step(r, text, c))
            if _rank(o.trail[-1]) > _rank(o.trail[o.best]):
                o.best = len(o.trail) - 1
            if c.ok:
                o.stop = "ok"
            elif c.program == previous:
                o.stop = "unchanged"
            else:
                still.append(i)
        active = still
    return outcomes


# ------------------------------------------------------------------------------------ checks
def _program(language: str, text: str) -> str:
    from distill.verify.formal import extract_program

    return extract_program(language, text)


def validity_check(language: str, facts: Sequence[str | None], *, timeout: float | None = None
                   ) -> Callable[[int, str], Check]:
    """``check(i, text)``: is the program in ``text`` valid (with ``facts[i]`` for ASP)? Reference-free:
    built from the instances' facts only, never from a row."""
    from distill.verify.core import no_program_diagnostic
    from distill.verify.formal import FORMAL_TIMEOUT_S
    from distill.verify.formal.augment import validate

    limit = FORMAL_TIMEOUT_S if timeout is None else timeout

    def check(i: int, text: str) -> Check:
        program = _program(language, text)
        if not program:
            return Check("", False, False, no_program_diagnostic(language, text))
        v = validate(language, program, facts[i] if facts[i] else None, timeout=limit)
        return Check(program, bool(v.valid), bool(v.valid), v.diagnostic, bool(v.timed_out))

    return check


def oracle_check(task: str, rows: Sequence[dict[str, Any]], scorer: Callable) -> Callable[[int, str], Check]:
    """``check(i, text)``: the full verdict against ``rows[i]``'s reference (``--refine-on wrong``:
    oracle feedback, see the module docstring); ``ok`` only when correct."""
    from distill.verify.core import kind_of

    language = kind_of(task)

    def check(i: int, text: str) -> Check:
        v = scorer(task, text, rows[i])
        return Check(_program(language, text), bool(v.valid), bool(v.correct), v.diagnostic,
                     bool(getattr(v, "timed_out", False)))

    return check
