"""What ``distill demo --task smt|asp|dot`` does: :class:`FormalDemoConfig` and the flag mapping
:func:`make_formal_config` (the ``arith`` demo's counterpart is :mod:`distill.demo.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from distill.demo.config import StudentSpec
from distill.demo.formal_gen import LANGUAGES, FormalGenConfig
from distill.demo.formal_teacher import FORMAL_STYLES
from distill.errors import ConfigError

#: The built-in training config of the formal demo (``distill configs demo_formal``).
TRAIN_CONFIG = "demo_formal"


@dataclass
class FormalDemoConfig:
    """Everything the formal demo does; the defaults finish in minutes on 2 CPU cores."""

    task: str = "smt"
    outdir: str | None = None  # default runs/demo_<task>
    gen: FormalGenConfig = field(default_factory=FormalGenConfig)
    wrong_rate: float = 0.15  # valid but wrong programs (a changed constant, a dropped edge, ...)
    broken_rate: float = 0.15  # programs the solver rejects (augment's corruption operators)
    teacher_seed: int = 0
    styles: str = ",".join(FORMAL_STYLES)
    #: train rows whose reference program ``distill augment`` corrupts into repair pairs (every
    #: operator that applies and that the solver rejects gives one pair)
    repair_sources: int = 150
    repairs_per_source: int = 2  # of the (up to 5-8) operators that break a source, keep this many pairs
    #: also turn the teacher's own rejected programs (with the solver's message) into repair pairs
    teacher_repairs: bool = True
    student1: StudentSpec = field(default_factory=lambda: StudentSpec(arch="llama", seed=1, hidden=64, layers=2))
    student2: StudentSpec = field(default_factory=lambda: StudentSpec(arch="qwen2", seed=2, hidden=64, layers=2,
                                                                      tokenizer="bpe"))
    num_processes: int = 2
    train_config: str | None = None  # a YAML path or built-in name; default the built-in "demo_formal"
    train_overrides: dict[str, Any] = field(default_factory=dict)
    refine: int = 2  # solver-in-the-loop rounds at evaluation (reference-free: on invalid programs)
    eval_bs: int = 50
    #: generation budget; None: 1.25 x the longest teacher answer in either student's tokens (SMT ~100)
    max_new_tokens: int | None = None
    eval_limit: int | None = None
    plot: bool = True

    def __post_init__(self) -> None:
        from distill.configs import find_config

        if self.task not in LANGUAGES:
            raise ConfigError(f"--task must be one of {', '.join(LANGUAGES)} (or omitted for arith), got {self.task!r}")
        if self.gen.task != self.task:
            raise ConfigError(f"generator task {self.gen.task!r} differs from the demo task {self.task!r}")
        for name in ("wrong_rate", "broken_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.wrong_rate + self.broken_rate > 1:
            raise ConfigError(f"wrong_rate + broken_rate must be <= 1, got {self.wrong_rate + self.broken_rate}")
        chosen = [s.strip() for s in self.styles.split(",") if s.strip()]
        if not chosen or any(s not in FORMAL_STYLES for s in chosen):
            raise ConfigError(f"--styles for a formal demo: a comma list of {', '.join(FORMAL_STYLES)}, "
                              f"got {self.styles!r}")
        self.styles = ",".join(chosen)
        if self.repair_sources < 0 or self.refine < 0 or self.num_processes < 1 or self.repairs_per_source < 1:
            raise ConfigError("repair_sources and refine must be >= 0, num_processes and repairs_per_source >= 1")
        self.outdir = self.outdir or f"runs/demo_{self.task}"
        self.train_config = str(find_config(self.train_config or TRAIN_CONFIG, "train").resolve())

    @property
    def n_paths(self) -> int:
        return len(self.styles.split(","))


def make_formal_config(task: str, *, fast: bool = False, outdir: str | None = None, config: str | None = None,
                       n_train: int | None = None, n_test: int | None = None, epochs: int | None = None,
                       wrong_rate: float | None = None, broken_rate: float | None = None, seed: int = 0,
                       num_processes: int = 2, styles: str | None = None, plot: bool = True,
                       recipe: str | None = None, refine: int | None = None) -> FormalDemoConfig:
    """``distill demo --task T``'s options -> FormalDemoConfig. ``fast`` (a CI smoke run of every stage,
    not a measurement): 60 train / 12 test problems, 20 repair sources, 1 epoch, 1 refinement round,
    64-token answers."""
    overrides: dict[str, Any] = {}
    if epochs or fast:
        overrides["epochs"] = epochs or 1
    if recipe:
        overrides["recipe"] = recipe
    gen = FormalGenConfig(task=task, n_train=n_train or (60 if fast else 400), n_test=n_test or (12 if fast else 100),
                          seed=seed)
    kw: dict[str, Any] = dict(task=task, gen=gen, teacher_seed=seed, num_processes=num_processes,
                              train_overrides=overrides, plot=plot, outdir=outdir, train_config=config)
    if wrong_rate is not None:
        kw["wrong_rate"] = wrong_rate
    if broken_rate is not None:
        kw["broken_rate"] = broken_rate
    if styles:
        kw["styles"] = styles
    if fast:
        kw.update(repair_sources=20, max_new_tokens=64)
    if refine is not None:
        kw["refine"] = refine
    elif fast:
        kw["refine"] = 1
    return FormalDemoConfig(**kw)
