"""An offline scripted teacher for the ``arith`` task (``distill prompt --backend scripted``).

Why: the demo and the tests must exercise the real prompting path (cache, enriched and
correct files, verification) without a network or an API key. The scripted teacher
answers each reasoning style with text of a clearly different *shape and length* (one
line, a program, a fact sheet, a long tree of thoughts, a forward/backward check), so
the router has something to tell apart, and makes a configurable share of mistakes
(an arithmetic slip that propagates to the final answer), so the quality filter has
something to remove.

Determinism: every answer is a pure function of ``(row id, style, sample_index, seed)``
(and ``wrong_rate``), so caches, reruns and tests agree.

Shapes, shortest to longest (words for a 3-step problem): ``plain`` (~4), ``cot``
(~20), ``knowledge`` (~25), ``fwd_bwd`` (~30), ``program`` (~30, code block), ``tot``
(~95: a long number-free plan before the arithmetic, so a student with a small left-
truncating context window loses the question; the routing probe relies on this).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from distill.demo.synthetic import SYMBOL, Problem, problem_from_row
from distill.errors import ConfigError, DistillError
from distill.prompting.backend import Completion, Request

STYLES: tuple[str, ...] = ("cot", "program", "knowledge", "tot", "fwd_bwd", "plain")
#: The demo's formal tasks (answered by :mod:`distill.demo.formal_teacher`).
FORMAL_TASKS: tuple[str, ...] = ("smt", "asp", "dot")


class ScriptedTeacherError(DistillError, ValueError):
    """A request the scripted teacher cannot answer (other task, unknown style, bad row)."""


@dataclass(frozen=True)
class Trace:
    """The arithmetic the teacher writes down: running values, possibly with one slip."""

    problem: Problem
    values: tuple[int, ...]  # values[0] = start, values[i+1] = after step i (as the teacher computed)
    slip_step: int | None  # index of the step where the teacher erred, None if correct
    story: str = ""  # the question's statements (without the final question), as worded in the row

    @property
    def final(self) -> int:
        return self.values[-1]


def story_of(question: str) -> str:
    """The question's statements without its final "How many ...?" sentence."""
    text = question.strip()
    cut = text.rfind("How many")
    return text[:cut].strip() if cut > 0 else text


def make_trace(problem: Problem, rng: random.Random, wrong: bool, story: str = "") -> Trace:
    """Compute the running values; if ``wrong``, one step's result is off by 1-2 and it propagates."""
    values = [problem.start]
    slip = rng.randrange(len(problem.steps)) if wrong else None
    for i, st in enumerate(problem.steps):
        v = st.apply(values[-1])
        if i == slip:
            deltas = [d for d in (-2, -1, 1, 2) if v + d >= 0]
            v += rng.choice(deltas)
        values.append(v)
    if wrong and values[-1] == problem.answer:  # a later subtraction cannot cancel, but be sure
        values[-1] += 1
    return Trace(problem, tuple(values), slip, story)


def _eq(trace: Trace, i: int) -> str:
    st = trace.problem.steps[i]
    return f"{trace.values[i]} {SYMBOL[st.op]} {st.n} = {trace.values[i + 1]}"


def _backward(trace: Trace) -> list[str]:
    """Undo the steps from the teacher's final value back to a start (a real consistency check:
    a slipped trace ends at a start that differs from the story's)."""
    out = []
    v: float = trace.final
    for st in reversed(trace.problem.steps):
        if st.op == "add":
            w = v - st.n
            out.append(f"{v:g} - {st.n} = {w:g}")
        elif st.op == "sub":
            w = v + st.n
            out.append(f"{v:g} + {st.n} = {w:g}")
        else:
            w = v / st.n
            out.append(f"{v:g} / {st.n} = {w:g}")
        v = w
    return out


_VERB = {"add": "gains", "sub": "loses", "mul": "multiplies by"}


def render_plain(trace: Trace) -> str:
    return f"The answer is \\boxed{{{trace.final}}}."


def render_cot(trace: Trace) -> str:
    p = trace.problem
    lines = [f"{p.name} starts with {p.start} {p.item}."]
    for i in range(len(p.steps)):
        lines.append(f"Step {i + 1}: {_eq(trace, i)}.")
    lines.append(f"The answer is \\boxed{{{trace.final}}}.")
    return " ".join(lines)


def render_program(trace: Trace) -> str:
    p = trace.problem
    lines = ["```python", f"{p.item} = {p.start}"]
    for i, st in enumerate(p.steps):
        lines.append(f"{p.item} = {p.item} {SYMBOL[st.op]} {st.n}  # {trace.values[i + 1]}")
    lines += [f"print({p.item})", "```", f"Output: {trace.final}", f"\\boxed{{{trace.final}}}"]
    return "\n".join(lines)


def render_knowledge(trace: Trace) -> str:
    p = trace.problem
    ops = sorted({st.op for st in p.steps}, key=["add", "sub", "mul"].index)
    facts = {"add": "getting more means adding", "sub": "giving or losing means subtracting",
             "mul": "doubling means multiplying by 2"}
    parts = ["Facts: " + "; ".join(facts[o] for o in ops) + "."]
    for i, st in enumerate(p.steps):
        parts.append(f"It {_VERB[st.op]} {st.n}, so {_eq(trace, i)}.")
    parts.append(f"Therefore \\boxed{{{trace.final}}}.")
    return " ".join(parts)


def render_fwd_bwd(trace: Trace) -> str:
    p = trace.problem
    n = len(p.steps)
    fwd = ", ".join(_eq(trace, i) for i in range(n))
    bwd = ", ".join(_backward(trace))
    return (f"Forward: {fwd}. Backward: {bwd}. "
            f"The start checks out, so the answer is \\boxed{{{trace.final}}}.")


_TOT_PLAN = (
    "Let me grow a tree of thoughts before I answer. "
    "Every branch starts from the same story, but each one looks at it in its own way, "
    "so that a mistake made in one branch is caught by the others. "
    "One branch restates the story, one computes forward, "
    "one undoes every change from the end, and one keeps a tally; "
    "I keep only the answer on which all branches agree."
)


def render_tot(trace: Trace) -> str:
    """Long (~170-210 tokens): a fixed plan, the story restated verbatim, then three arithmetic branches.

    Why this shape: ``tot`` is the routing probe's unlearnable style. A student whose left-truncating
    window has lost the question cannot predict the names, verbs and numbers that Branch 1 restates,
    while a student that sees the question just copies them. The fixed plan comes first, so for the
    window-limited student it is the part that falls out of the window (its window holds the story
    and the arithmetic, where the per-token loss is high), while for a student that sees the whole
    path it is cheap text that lowers its per-token loss: the gap the router must see is in both
    students' standardised losses, not only in one.
    """
    p = trace.problem
    n = len(p.steps)
    story = trace.story or p.question()[: p.question().rfind("How many")].strip()
    fwd = "; ".join(_eq(trace, i) for i in range(n))
    bwd = "; ".join(_backward(trace))
    tally = ", ".join(str(v) for v in trace.values)
    return (f"{_TOT_PLAN}\nBranch 1: {story}\nBranch 2: {fwd}.\nBranch 3: {bwd}.\n"
            f"Branch 4: the tally is {tally}, never below zero.\nAll branches agree: \\boxed{{{trace.final}}}.")


RENDERERS = {
    "plain": render_plain,
    "cot": render_cot,
    "program": render_program,
    "knowledge": render_knowledge,
    "fwd_bwd": render_fwd_bwd,
    "tot": render_tot,
}


#: how the renderers open their answers (checked in order by :func:`style_of`)
_OPENINGS = (("```", "program"), ("Facts:", "knowledge"), ("Forward:", "fwd_bwd"), (_TOT_PLAN[:20], "tot"),
             ("The answer is", "plain"))


def style_of(text: str) -> str:
    """The style a (student's) answer was written in, from the opening each renderer uses:
    ``program`` (a code block), ``knowledge`` ("Facts:"), ``fwd_bwd`` ("Forward:"), ``tot`` (the plan
    or its branches), ``cot`` ("Step 1"), ``plain`` (the bare answer line), else ``"other"``. The
    ablation bench uses it to say which style each student generates at test time."""
    t = text.lstrip()
    for opening, style in _OPENINGS:
        if t.startswith(opening):
            return style
    if "Branch 1:" in t:
        return "tot"
    if "Step 1:" in t:
        return "cot"
    return "other"


def _rng_for(row_id: str, style: str, sample_index: int, seed: int) -> random.Random:
    key = f"{seed}|{row_id}|{style}|{sample_index}".encode()
    return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))


class ScriptedBackend:
    """A deterministic offline teacher implementing :class:`distill.prompting.backend.Backend`.

    ``wrong_rate`` is the probability that an answer contains an arithmetic slip (and a
    wrong final answer); the slip is drawn per ``(row id, style, sample_index, seed)``.
    """

    name = "scripted"

    def __init__(self, wrong_rate: float = 0.2, seed: int = 0, broken_rate: float = 0.0):
        for name, rate in (("wrong_rate", wrong_rate), ("broken_rate", broken_rate)):
            if not 0.0 <= float(rate) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {rate}")
        if float(wrong_rate) + float(broken_rate) > 1.0:
            raise ConfigError(f"wrong_rate + broken_rate must be <= 1, got {wrong_rate} + {broken_rate}")
        self.wrong_rate = float(wrong_rate)
        self.broken_rate = float(broken_rate)
        self.seed = int(seed)
        self.calls = 0

    def answer(self, row: dict, style: str, sample_index: int = 0, task: str = "arith") -> str:
        """The scripted answer text (synchronous core of :meth:`complete`). The demo's formal tasks
        (``smt``, ``asp``, ``dot``: rows with a ``spec``) are answered by
        :func:`distill.demo.formal_teacher.formal_answer`, with ``broken_rate`` broken programs."""
        if task in FORMAL_TASKS:
            return self._formal(row, style, sample_index, task)
        if task != "arith":
            raise ScriptedTeacherError(f"the scripted teacher answers the built-in 'arith' task and the demo's "
                                       f"{', '.join(FORMAL_TASKS)} rows, not {task!r}")
        if style not in RENDERERS:
            raise ScriptedTeacherError(f"unknown style {style!r}; the scripted teacher knows {', '.join(STYLES)}")
        try:
            problem = problem_from_row(row)
        except (KeyError, ValueError, TypeError) as exc:
            raise ScriptedTeacherError(f"row {row.get('id')!r} is not an arith problem: {exc}") from None
        rng = _rng_for(str(row.get("id")), style, sample_index, self.seed)
        wrong = rng.random() < self.wrong_rate
        return RENDERERS[style](make_trace(problem, rng, wrong, story_of(row["question"])))

    def _formal(self, row: dict, style: str, sample_index: int, task: str) -> str:
        from distill.demo.formal_teacher import formal_answer

        if not isinstance(row.get("spec"), dict):
            raise ScriptedTeacherError(f"row {row.get('id')!r} has no 'spec': the scripted teacher answers only "
                                       f"the {task} problems that `distill demo --task {task}` generates")
        rng = _rng_for(str(row.get("id")), style, sample_index, self.seed)
        try:
            return formal_answer(task, row, style, rng, wrong_rate=self.wrong_rate, broken_rate=self.broken_rate)[0]
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise ScriptedTeacherError(f"row {row.get('id')!r}: {exc}") from None

    async def complete(self, request: Request) -> Completion:
        self.calls += 1
        text = self.answer(request.row, request.style, request.sample_index, request.task)
        return Completion(text=text, prompt_tokens=len(request.prompt.split()),
                          completion_tokens=len(text.split()))

    async def aclose(self) -> None:
        return None


def broken_rate_of(model: str | None) -> float:
    """The broken-program share named in ``--model scripted:broken=R`` (0 for plain ``scripted``).

    Why in the model name: the backend options are fixed (model, base_url, seed, wrong_rate, ...),
    and the model name is part of every cache key, so answers drawn at another rate never collide.
    """
    if not model or ":" not in model:
        return 0.0
    for part in model.split(":", 1)[1].split(","):
        key, _, value = part.partition("=")
        if key.strip() != "broken":
            raise ConfigError(f"--model {model!r}: the scripted teacher takes only 'scripted:broken=R'")
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"--model {model!r}: broken rate {value!r} is not a number") from None
    return 0.0


def scripted_backend(**opts) -> ScriptedBackend:
    """Backend factory for ``--backend scripted`` (entry point ``distill.backends: scripted``):
    takes ``wrong_rate`` and ``seed``, the broken-program share from ``--model scripted:broken=R``
    (:func:`broken_rate_of`), and ignores the other API options (base_url, ...)."""
    return ScriptedBackend(**{k: opts[k] for k in ("wrong_rate", "seed") if k in opts},
                           broken_rate=broken_rate_of(opts.get("model")))
