"""What the demo does: :class:`DemoConfig` (with :class:`StudentSpec` per student), the routing
probe preset :func:`probe_config`, and :func:`make_demo_config` mapping ``distill demo``'s flags.

Two presets share the pipeline:

- ``demo``: both students see every path; the router is free to split styles between them.
- ``probe``: student 1 gets a tiny, left-truncating context window, so the long ``tot`` paths
  lose the question (the answer-bearing tail is cut off from its inputs) - unlearnable for
  student 1, learnable for student 2. A router that learns must send ``tot`` to student 2.

Both train with the built-in ``demo`` training config (``distill/configs/train/demo.yaml``): the
probe is the demo plus its own overrides, which are its students and data (below) and
:data:`PROBE_TRAIN_OVERRIDES` for the training flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from distill.demo.synthetic import ArithConfig
from distill.errors import ConfigError

#: The built-in training config both presets start from (``distill configs demo``).
TRAIN_CONFIG = "demo"


@dataclass
class StudentSpec:
    """How the demo builds one tiny student with :func:`distill.models.tiny.make_tiny_student`."""

    arch: str = "llama"
    vocab_size: int = 1024
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    max_positions: int = 512
    truncation_side: str = "right"
    seed: int = 0
    # "bpe": a byte-level BPE tokenizer instead of the arch's default (same special tokens and chat
    # template). Why: on the arith corpus the tokenizers library's Unigram trainer stops at ~380
    # pieces (asked for 1024), so qwen2's default tokenizer splits text ~2.3x finer than llama's BPE
    # and the tiny qwen2 barely learned (0% -> 4% in `make demo`). None: keep the arch's tokenizer.
    tokenizer: str | None = None
    pretrained: str | None = None  # "smollm2" (``--real``) or a local model folder: used instead of a tiny model

    def __post_init__(self) -> None:
        from distill.models.tiny import ARCHS

        if self.arch not in ARCHS:
            raise ConfigError(f"student arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.hidden % self.heads:
            raise ConfigError(f"student hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if self.truncation_side not in ("left", "right"):
            raise ConfigError(f"truncation_side must be left or right, got {self.truncation_side!r}")
        if self.tokenizer not in (None, "bpe"):
            raise ConfigError(f"student tokenizer must be 'bpe' or unset, got {self.tokenizer!r}")
        if self.max_positions < 16:
            raise ConfigError(f"max_positions must be >= 16, got {self.max_positions}")


@dataclass
class DemoConfig:
    """Everything the demo does, with defaults that finish in a few minutes on 2 CPU cores."""

    outdir: str = "runs/demo"
    preset: str = "demo"  # demo | probe
    train_config: str | None = None  # a YAML path or built-in name; default: the built-in "demo"
    arith: ArithConfig = field(default_factory=ArithConfig)
    wrong_rate: float = 0.2
    teacher_seed: int = 0
    # No ``plain``: a one-line answer needs the whole computation in one token, which a tiny
    # student cannot learn, and greedy decoding then picks that shortest style (measured: the
    # trained llama answered every test question with "The answer is \\boxed{3}.").
    n_paths: int = 5
    styles: str = "cot,program,knowledge,tot,fwd_bwd"
    student1: StudentSpec = field(default_factory=lambda: StudentSpec(arch="llama", seed=1))
    # qwen2's byte-level Unigram tokenizer splits this text ~2.3x finer than llama's BPE: a long
    # window keeps its longest (tot) paths whole.
    student2: StudentSpec = field(default_factory=lambda: StudentSpec(arch="qwen2", seed=2, max_positions=1024,
                                                                      tokenizer="bpe"))
    num_processes: int = 2
    eval_limit: int | None = None
    max_new_tokens: int = 256  # the longest (tot) answers are ~200 tokens with either student's BPE tokenizer
    eval_bs: int = 50
    train_overrides: dict[str, Any] = field(default_factory=dict)
    plot: bool = True

    def __post_init__(self) -> None:
        from distill.configs import find_config

        if self.preset not in ("demo", "probe"):
            raise ConfigError(f"preset must be demo or probe, got {self.preset!r}")
        if not 0 <= self.wrong_rate <= 1:
            raise ConfigError(f"wrong_rate must be in [0, 1], got {self.wrong_rate}")
        if self.num_processes < 1:
            raise ConfigError(f"num_processes must be >= 1, got {self.num_processes}")
        if self.n_paths < 1:
            raise ConfigError(f"n_paths must be >= 1, got {self.n_paths}")
        # resolved to an absolute file now: the training subprocess must read the same one
        self.train_config = str(find_config(self.train_config or TRAIN_CONFIG, "train").resolve())


#: Irrelevant facts per probe question. ``tot`` restates them verbatim (~4 nats each for a student
#: that has lost the question), the other styles ignore them: without them the probe's per-token
#: NLL gap was only ~0.08 nats (student 1: tot 0.39 vs mean 0.31) and the router did not react.
PROBE_DISTRACTORS = 3
#: Probe distractor counts are drawn from [1, 99]: each restated count costs student 1 ~4.6 nats
#: instead of ~2.2 (a one-digit count), which is what makes ``tot`` unlearnable rather than harder.
PROBE_MAX_EXTRA = 99
#: Training flags the probe sets on top of the ``demo`` training config. None: the probe trains
#: exactly as the demo does (6 epochs; at 4, data seed 1 fell short: tot -> student 2 74%).
#: Measured with these (400 train, data seeds 0/1/2): last epoch tot -> student 2 100%; other
#: styles 83-100% to student 1 and 43-55% (overall) to student 2.
PROBE_TRAIN_OVERRIDES: dict[str, Any] = {}


def probe_config(**kw) -> DemoConfig:
    """The routing-probe preset: student 1 has a 144-token, left-truncating window.

    Measured with student 1's tokenizer on probe questions (3 distractor facts with counts up to 99):
    prompt (~55-70 tokens) + every short style fits in 144 tokens, while ``tot`` responses alone
    are ~176-205 tokens, so a ``tot`` path keeps only its last 144: the question and most of the
    fixed plan are gone, and the story that ``tot`` restates verbatim (names, distractor facts,
    verbs, numbers) cannot be predicted by student 1. Student 2 sees everything: it copies the story
    and its per-token loss is lowered by the fixed plan. Measured on the router logs (400 train, 4
    epochs, per-style mean of the batch-standardised losses in the last epoch): ``tot`` c1 - c2 =
    +1.20, every other style between -0.47 and -0.06 (before the fixed plan, 2-digit counts and the
    BPE qwen2 tokenizer: tot +0.57, fwd_bwd +1.19, program -2.06, i.e. tot was not singled out).
    """
    kw.setdefault("outdir", "runs/routing_probe")
    kw.setdefault("arith", ArithConfig(distractors=PROBE_DISTRACTORS, max_extra=PROBE_MAX_EXTRA))
    kw.setdefault("student1", StudentSpec(arch="llama", seed=1, max_positions=144, truncation_side="left"))
    kw.setdefault("student2", StudentSpec(arch="qwen2", seed=2, max_positions=1024, tokenizer="bpe"))
    kw["train_overrides"] = {**PROBE_TRAIN_OVERRIDES, **kw.get("train_overrides", {})}
    return DemoConfig(preset="probe", **kw)


def real_student_spec() -> StudentSpec:
    """Student 2 for ``--real``: the prepared SmolLM2 folder instead of a tiny model."""
    from distill.demo.real import smollm2_gguf

    smollm2_gguf()  # fail early, before any other stage runs
    return StudentSpec(arch="llama", pretrained="smollm2")


def make_demo_config(*, probe: bool = False, fast: bool = False, real: bool = False, outdir: str | None = None,
                     config: str | None = None, n_train: int | None = None, n_test: int | None = None,
                     epochs: int | None = None, wrong_rate: float = 0.2, seed: int = 0, num_processes: int = 2,
                     styles: str | None = None, plot: bool = True, recipe: str | None = None) -> DemoConfig:
    """``distill demo``'s options -> DemoConfig. ``fast``: 300 train / 60 test, 3 epochs; ``real``:
    SmolLM2 as student 2 on 120 / 40 questions and 1 epoch (a 135M student on CPU)."""
    small = fast or real
    n_train = n_train or (120 if real else 300 if fast else 800)
    n_test = n_test or (40 if real else 60 if fast else 200)
    overrides = {}
    if epochs or small:
        overrides["epochs"] = epochs or (1 if real else 3)
    if recipe:
        overrides["recipe"] = recipe
    arith = ArithConfig(n_train=n_train, n_test=n_test, seed=seed,
                        distractors=PROBE_DISTRACTORS if probe else 0,
                        max_extra=PROBE_MAX_EXTRA if probe else 9)
    kw: dict[str, Any] = dict(arith=arith, wrong_rate=wrong_rate, teacher_seed=seed, num_processes=num_processes,
                              train_overrides=overrides, plot=plot)
    if styles:
        chosen = [x.strip() for x in styles.split(",") if x.strip()]
        kw.update(styles=",".join(chosen), n_paths=len(chosen))
    if outdir:
        kw["outdir"] = outdir
    if config:
        kw["train_config"] = config
    if real:
        kw["student2"] = real_student_spec()
    return probe_config(**kw) if probe else DemoConfig(**kw)
