"""The built-in ``arith`` task: seeded multi-step arithmetic word problems.

Why this task: the demo must show the whole method working offline on a 2-core CPU in
minutes, so the task has to be learnable by a ~100k-parameter student from a few
thousand teacher paths. Problems are 2-3 templated steps (add / subtract / double)
over small integers, every intermediate value stays in ``[0, max_value]``, and the
question text is fully determined by a :class:`Problem`, so the scripted teacher can
re-derive the steps from the text alone (:func:`parse_question`).

Layout written by :func:`write_splits` matches the training data layout::

    <root>/arith/train/train.jsonl
    <root>/arith/test/test.jsonl
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.data.jsonl import atomic_write_jsonl
from distill.data.tasks import TaskSpec
from distill.errors import ConfigError

TASK = "arith"
#: The task's registry entry, published through the ``distill.tasks`` entry point ``arith`` (see
#: pyproject.toml), so every process finds it without distill itself importing the demo.
TASK_SPEC = TaskSpec(TASK, "math", ("id", "question", "gold_answer"))

NAMES = ("Ava", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gus", "Hana", "Ivy", "Jon", "Kai", "Lena", "Milo", "Nora")
ITEMS = ("apples", "marbles", "stickers", "coins", "books", "shells", "cards", "pens")

# op -> phrases; "{n}" is the operand. ``mul`` has a fixed operand of 2 ("doubles").
ADD_PHRASES = ("finds {n} more {item}", "buys {n} more {item}", "gets {n} more {item}")
SUB_PHRASES = ("gives away {n} {item}", "loses {n} {item}", "sells {n} {item}")
MUL_PHRASE = "doubles the {item}"
CONNECTIVES = ("Then", "Next", "After that")

OPS = ("add", "sub", "mul")
SYMBOL = {"add": "+", "sub": "-", "mul": "*"}


@dataclass(frozen=True)
class Step:
    """One change to the running count: ``op`` in {add, sub, mul} with its operand."""

    op: str
    n: int

    def apply(self, value: int) -> int:
        if self.op == "add":
            return value + self.n
        if self.op == "sub":
            return value - self.n
        if self.op == "mul":
            return value * self.n
        raise ValueError(f"unknown op {self.op!r}")


@dataclass(frozen=True)
class Problem:
    """A word problem as data: who, what, the starting count and the steps."""

    name: str
    item: str
    start: int
    steps: tuple[Step, ...]
    phrases: tuple[int, ...] = ()  # template index per step (wording only)
    extras: tuple[tuple[int, str], ...] = ()  # irrelevant facts ("She also has 4 pens."): distractors

    def values(self) -> list[int]:
        """The running count after each step, starting with ``start``."""
        vals = [self.start]
        for st in self.steps:
            vals.append(st.apply(vals[-1]))
        return vals

    @property
    def answer(self) -> int:
        return self.values()[-1]

    def question(self) -> str:
        sents = [f"{self.name} has {self.start} {self.item}."]
        pronoun = "She" if self.name in _SHE else "He"
        sents += [f"{pronoun} also has {n} {item}." for n, item in self.extras]
        for i, st in enumerate(self.steps):
            k = self.phrases[i] if i < len(self.phrases) else 0
            if st.op == "add":
                phrase = ADD_PHRASES[k % len(ADD_PHRASES)]
            elif st.op == "sub":
                phrase = SUB_PHRASES[k % len(SUB_PHRASES)]
            else:
                phrase = MUL_PHRASE
            verb = phrase.format(n=st.n, item=self.item)
            lead = "" if i == 0 else CONNECTIVES[(k + i) % len(CONNECTIVES)] + " "
            who = "she" if self.name in _SHE else "he"
            subject = self.name if i == 0 else who
            sent = f"{lead}{subject} {verb}."
            sents.append(sent[0].upper() + sent[1:])
        sents.append(f"How many {self.item} does {self.name} have now?")
        return " ".join(sents)


_SHE = {"Ava", "Cleo", "Eva", "Hana", "Ivy", "Lena", "Nora"}


@dataclass
class ArithConfig:
    """Size and difficulty of the generated splits.

    Defaults are tuned so tiny students learn the task in a few CPU minutes: small
    operands, 2-3 steps, values never above ``max_value`` or below 0.
    """

    n_train: int = 800
    n_test: int = 200
    min_steps: int = 2
    max_steps: int = 3
    max_operand: int = 5
    max_start: int = 9
    max_value: int = 20
    allow_mul: bool = True
    distractors: int = 0  # irrelevant "also has" facts per question (the routing probe uses them)
    max_extra: int = 9  # distractor counts are drawn from [1, max_extra] (the probe uses 2-digit counts)
    seed: int = 0
    ops: tuple[str, ...] = field(default=OPS)

    def __post_init__(self) -> None:
        if self.n_train < 1 or self.n_test < 1:
            raise ConfigError(f"n_train and n_test must be >= 1 (got {self.n_train}, {self.n_test})")
        if not 1 <= self.min_steps <= self.max_steps:
            raise ConfigError(f"need 1 <= min_steps <= max_steps (got {self.min_steps}, {self.max_steps})")
        if not 0 <= self.distractors < len(ITEMS):
            raise ConfigError(f"distractors must be in [0, {len(ITEMS) - 1}], got {self.distractors}")
        if self.max_extra < 1:
            raise ConfigError(f"max_extra must be >= 1, got {self.max_extra}")
        if self.max_operand < 1 or self.max_start < 1:
            raise ConfigError("max_operand and max_start must be >= 1")
        if self.max_value < self.max_start + self.max_operand:
            raise ConfigError(f"max_value ({self.max_value}) must be >= max_start + max_operand "
                              f"({self.max_start + self.max_operand}) so every problem has a valid step")


def random_problem(rng: random.Random, cfg: ArithConfig) -> Problem:
    """Draw one problem whose running values stay within ``[0, cfg.max_value]``."""
    n_steps = rng.randint(cfg.min_steps, cfg.max_steps)
    start = rng.randint(1, cfg.max_start)
    value = start
    steps: list[Step] = []
    phrases: list[int] = []
    for _ in range(n_steps):
        options = []
        if value + 1 <= cfg.max_value:
            options.append("add")
        if value - 1 >= 0:
            options.append("sub")
        if cfg.allow_mul and 1 <= value and 2 * value <= cfg.max_value:
            options.append("mul")
        op = rng.choice(options)
        if op == "add":
            n = rng.randint(1, min(cfg.max_operand, cfg.max_value - value))
        elif op == "sub":
            n = rng.randint(1, min(cfg.max_operand, value))
        else:
            n = 2
        st = Step(op, n)
        steps.append(st)
        phrases.append(rng.randrange(3))
        value = st.apply(value)
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    others = rng.sample([i for i in ITEMS if i != item], cfg.distractors) if cfg.distractors else []
    extras = tuple((rng.randint(1, cfg.max_extra), o) for o in others)
    return Problem(name, item, start, tuple(steps), tuple(phrases), extras)


def problem_to_row(problem: Problem, row_id: str) -> dict[str, Any]:
    """An ``arith`` row: the required fields plus the structured problem (for analyses)."""
    return {
        "id": row_id,
        "question": problem.question(),
        "gold_answer": str(problem.answer),
        "start": problem.start,
        "steps": [[st.op, st.n] for st in problem.steps],
        "n_steps": len(problem.steps),
    }


def generate(cfg: ArithConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Seeded, disjoint train / test rows (no question text appears in both)."""
    rng = random.Random(cfg.seed)
    seen: set[str] = set()
    train: list[dict[str, Any]] = []
    test: list[dict[str, Any]] = []
    attempts = 0
    limit = 200 * (cfg.n_train + cfg.n_test)
    while len(train) < cfg.n_train or len(test) < cfg.n_test:
        attempts += 1
        if attempts > limit:
            raise ConfigError(f"could not draw {cfg.n_train}+{cfg.n_test} distinct problems; "
                              "lower n_train/n_test or raise max_operand/max_value/max_steps")
        p = random_problem(rng, cfg)
        q = p.question()
        if q in seen:
            continue
        seen.add(q)
        # Interleave so both splits come from the same distribution.
        if len(test) < cfg.n_test and (len(train) >= cfg.n_train or rng.random() < cfg.n_test / (cfg.n_train + cfg.n_test)):
            test.append(problem_to_row(p, f"arith-test-{len(test):05d}"))
        else:
            train.append(problem_to_row(p, f"arith-train-{len(train):05d}"))
    return train, test


def split_paths(root: str | Path) -> dict[str, Path]:
    """Where :func:`write_splits` puts each split."""
    root = Path(root)
    return {"train": root / TASK / "train" / "train.jsonl", "test": root / TASK / "test" / "test.jsonl"}


def write_splits(root: str | Path, cfg: ArithConfig | None = None) -> dict[str, Path]:
    """Generate and atomically write the train/test splits under ``root``; return their paths."""
    cfg = cfg or ArithConfig()
    train, test = generate(cfg)
    paths = split_paths(root)
    atomic_write_jsonl(paths["train"], train)
    atomic_write_jsonl(paths["test"], test)
    return paths


_START_RE = re.compile(r"^(?P<name>[A-Z][a-z]+) has (?P<start>\d+) (?P<item>[a-z]+)\.$")
_ADD_RE = re.compile(r"\b(?:finds|buys|gets) (\d+) more\b")
_SUB_RE = re.compile(r"\b(?:gives away|loses|sells) (\d+)\b")
_MUL_RE = re.compile(r"\bdoubles\b")
_EXTRA_RE = re.compile(r"^(?:She|He) also has \d+ [a-z]+\.$")


def parse_question(question: str) -> Problem:
    """Recover the :class:`Problem` from its question text (inverse of :meth:`Problem.question`).

    Why: the scripted teacher answers from the question like a real teacher would, so it
    also works on rows that lost the structured fields. Raises ``ValueError`` on text
    that is not an ``arith`` question.
    """
    sents = [s.strip() for s in re.split(r"(?<=[.?])\s+", question.strip()) if s.strip()]
    if len(sents) < 3:
        raise ValueError(f"not an arith question: {question!r}")
    m = _START_RE.match(sents[0])
    if not m:
        raise ValueError(f"not an arith question (first sentence): {sents[0]!r}")
    steps = []
    for s in sents[1:-1]:
        if _EXTRA_RE.search(s):
            continue  # a distractor: irrelevant to the count
        if (a := _ADD_RE.search(s)):
            steps.append(Step("add", int(a.group(1))))
        elif (b := _SUB_RE.search(s)):
            steps.append(Step("sub", int(b.group(1))))
        elif _MUL_RE.search(s):
            steps.append(Step("mul", 2))
        else:
            raise ValueError(f"not an arith step: {s!r}")
    return Problem(m.group("name"), m.group("item"), int(m.group("start")), tuple(steps))


def problem_from_row(row: dict[str, Any]) -> Problem:
    """The problem behind a row: from its structured fields if present, else from the text."""
    parsed = parse_question(row["question"])
    if "start" in row and "steps" in row:
        steps = tuple(Step(op, int(n)) for op, n in row["steps"])
        return Problem(parsed.name, parsed.item, int(row["start"]), steps)
    return parsed
