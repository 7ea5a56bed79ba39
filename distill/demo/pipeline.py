"""The offline end-to-end demo: data -> scripted teacher -> verification -> routed training ->
evaluation -> routing analysis, on the built-in ``arith`` task with two tiny local students.

Why through the public commands: the demo is a new user's first proof that the *system* works,
so every stage runs the same entry point a user would (``distill prompt``, ``accelerate launch
launch/train_moe.py``, ``distill posrate``) as a subprocess, with its output kept in
``OUTDIR/logs/<stage>.log``. Only the "before training" evaluation runs in-process: there is no
trained run to point ``distill eval`` at yet, so the untrained bases go through the same
:func:`distill.students.evaluate.evaluate` the engine uses at the end of training.

Two presets share this code:

- ``demo``: both students see every path; the router is free to split styles between them.
- ``probe``: student 1 gets a tiny, left-truncating context window, so the long ``tot`` paths
  lose the question (the answer-bearing tail is cut off from its inputs) - unlearnable for
  student 1, learnable for student 2. A router that learns must send ``tot`` to student 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from distill.data.jsonl import atomic_write_text, iter_jsonl, read_rows
from distill.demo.synthetic import TASK, ArithConfig, split_paths, write_splits
from distill.errors import ConfigError, DistillError

REPO_ROOT = Path(__file__).resolve().parents[2]
LAUNCH = REPO_ROOT / "launch"


class DemoError(DistillError):
    """A demo stage failed; the message names the stage and its log file."""


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
    # "bpe": replace the factory's tokenizer with a byte-level BPE one (same special tokens and chat
    # template). Why: on the arith corpus the tokenizers library's Unigram trainer stops at ~380
    # pieces (asked for 1024), so qwen2's default tokenizer splits text ~2.3x finer than llama's BPE
    # and the tiny qwen2 barely learned (0% -> 4% in `make demo`). None: keep the factory's tokenizer.
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
    train_config: str | None = None  # default: launch/configs/<preset>.yaml
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
        if self.preset not in ("demo", "probe"):
            raise ConfigError(f"preset must be demo or probe, got {self.preset!r}")
        if not 0 <= self.wrong_rate <= 1:
            raise ConfigError(f"wrong_rate must be in [0, 1], got {self.wrong_rate}")
        if self.num_processes < 1:
            raise ConfigError(f"num_processes must be >= 1, got {self.num_processes}")
        if self.n_paths < 1:
            raise ConfigError(f"n_paths must be >= 1, got {self.n_paths}")
        if self.train_config is None:
            self.train_config = str(LAUNCH / "configs" / ("routing_probe.yaml" if self.preset == "probe" else "demo.yaml"))
        if not Path(self.train_config).is_file():
            raise ConfigError(f"training config {self.train_config} not found")


#: Irrelevant facts per probe question. ``tot`` restates them verbatim (~4 nats each for a student
#: that has lost the question), the other styles ignore them: without them the probe's per-token
#: NLL gap was only ~0.08 nats (student 1: tot 0.39 vs mean 0.31) and the router did not react.
PROBE_DISTRACTORS = 3
#: Probe distractor counts are drawn from [1, 99]: each restated count costs student 1 ~4.6 nats
#: instead of ~2.2 (a one-digit count), which is what makes ``tot`` unlearnable rather than harder.
PROBE_MAX_EXTRA = 99


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
    return DemoConfig(preset="probe", **kw)


# ------------------------------------------------------------------------------------ stages
def _run_logged(stage: str, cmd: list[str], log: Path, *, env: dict[str, str] | None = None,
                capture_stdout: bool = False) -> str:
    """Run one stage's command with its output in ``log``; on failure raise with the log's tail.

    With ``capture_stdout`` only stderr goes to the log and stdout is returned (for ``--json``).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    with open(log, "w", encoding="utf-8") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE if capture_stdout else fh, stderr=fh, env=full_env,
                              cwd=str(REPO_ROOT), text=True)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-25:])
        raise DemoError(f"stage {stage!r} failed (exit {proc.returncode}); log {log}:\n{tail}")
    return (proc.stdout or "") if capture_stdout else ""


def prompt_command(cfg: DemoConfig, train_file: Path, summary: Path) -> list[str]:
    """``distill prompt`` with the scripted teacher on the train split (the same code path as an API teacher)."""
    return [sys.executable, "-m", "distill.cli", "prompt", "--root", str(train_file.parents[2]), "--dataset", TASK,
            "--input", str(train_file), "--backend", "scripted", "--model", "scripted",
            "--wrong-rate", str(cfg.wrong_rate), "--seed", str(cfg.teacher_seed), "--n", str(cfg.n_paths),
            "--styles", cfg.styles, "--no-progress", "--summary-json", str(summary)]


def train_command(cfg: DemoConfig, data_root: Path, m1: Path, m2: Path, run_dir: Path) -> list[str]:
    """``accelerate launch launch/train_moe.py --config <preset yaml> ...`` (2 CPU processes by default)."""
    if cfg.num_processes > 1:
        launch = ["--config_file", str(LAUNCH / "accelerate" / "cpu_ddp.yaml"), "--num_processes",
                  str(cfg.num_processes)]
    else:
        launch = ["--cpu", "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
                  "--dynamo_backend", "no"]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *launch, str(LAUNCH / "train_moe.py"),
           "--config", str(cfg.train_config), "--data_root", str(data_root), "--task", TASK,
           "--model1", str(m1), "--model2", str(m2), "--outdir", str(run_dir),
           "--max_new_tokens", str(cfg.max_new_tokens), "--eval_bs", str(cfg.eval_bs)]
    if cfg.eval_limit:
        cmd += ["--eval_limit", str(cfg.eval_limit)]
    for key, value in cfg.train_overrides.items():
        cmd += [f"--{key}", str(value)]
    return cmd


def posrate_command(run_dir: Path, plot: Path | None) -> list[str]:
    cmd = [sys.executable, "-m", "distill.cli", "posrate", "--log_dir", str(run_dir), "--json"]
    return cmd + (["--plot", str(plot)] if plot else [])


def tokenizer_corpus(train_file: Path, enriched_file: Path) -> list[str]:
    """In-domain text for the students' tokenizers: the train questions, the teacher's paths and
    the prompt's fixed wording (never the test split)."""
    from distill.prompting.prompts import core_prompt

    corpus = [core_prompt(TASK, row) for _, row in iter_jsonl(train_file)]
    for _, row in iter_jsonl(enriched_file):
        corpus.extend(row.get("responses") or [])
    return corpus


def retokenize_bpe(folder: Path, corpus: list[str], spec: StudentSpec) -> None:
    """Give the tiny model in ``folder`` a byte-level BPE tokenizer trained on ``corpus`` and a freshly
    initialised model sized to it, keeping its special tokens, chat template and architecture."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    from distill.models.tiny import _SPECIALS
    from distill.students.tokenizer import load_tokenizer

    old = load_tokenizer(folder)
    specials = list(dict.fromkeys(t for t in old.all_special_tokens if t))
    tok = Tokenizer(models.BPE(unk_token=old.unk_token) if old.unk_token else models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.train_from_iterator(corpus, trainer=trainers.BpeTrainer(
        vocab_size=spec.vocab_size, special_tokens=specials, min_frequency=1, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    extra = list(_SPECIALS[spec.arch][4])  # the factory's extra specials (e.g. <|im_start|>)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=old.bos_token, eos_token=old.eos_token, pad_token=old.pad_token,
        unk_token=old.unk_token, additional_special_tokens=extra, model_max_length=spec.max_positions,
        truncation_side=spec.truncation_side, padding_side="right", clean_up_tokenization_spaces=False)
    fast.chat_template = old.chat_template
    config = AutoConfig.from_pretrained(folder)
    config.vocab_size = len(fast)
    config.bos_token_id, config.eos_token_id, config.pad_token_id = fast.bos_token_id, fast.eos_token_id, fast.pad_token_id
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = AutoModelForCausalLM.from_config(config)
    for key in ("pad_token_id", "eos_token_id", "bos_token_id"):
        setattr(model.generation_config, key, getattr(fast, key))
    for f in folder.glob("*.safetensors"):
        f.unlink()
    model.save_pretrained(folder)
    fast.save_pretrained(folder)


def build_students(cfg: DemoConfig, corpus: list[str], root: Path) -> tuple[Path, Path]:
    from distill.models.tiny import make_tiny_student

    paths = []
    for name, spec in (("student1", cfg.student1), ("student2", cfg.student2)):
        if spec.pretrained == "smollm2":
            from distill.demo.real import prepare_smollm2

            paths.append(prepare_smollm2(root / "smollm2-135m-instruct"))
            continue
        if spec.pretrained:
            if not (Path(spec.pretrained) / "config.json").is_file():
                raise ConfigError(f"{name}: pretrained folder {spec.pretrained} has no config.json")
            paths.append(Path(spec.pretrained))
            continue
        out = root / f"{name}_{spec.arch}"
        make_tiny_student(out, spec.arch, corpus=corpus, vocab_size=spec.vocab_size, hidden=spec.hidden,
                          layers=spec.layers, heads=spec.heads, max_positions=spec.max_positions,
                          truncation_side=spec.truncation_side, seed=spec.seed)
        if spec.tokenizer == "bpe":
            retokenize_bpe(out, corpus, spec)
        paths.append(out)
    return paths[0], paths[1]


def evaluate_untrained(cfg: DemoConfig, m1: Path, m2: Path, test_file: Path, out_dir: Path) -> dict[str, Any]:
    """Accuracy of the untrained students (and their ensemble) with the engine's evaluation."""
    import torch
    from transformers import AutoModelForCausalLM

    from distill.students.evaluate import evaluate
    from distill.students.tokenizer import load_tokenizer

    torch.manual_seed(0)
    rows = read_rows(test_file, TASK)
    if cfg.eval_limit:
        rows = rows[: cfg.eval_limit]
    students = [(AutoModelForCausalLM.from_pretrained(m), load_tokenizer(m)) for m in (m1, m2)]
    _, metrics = evaluate(students, rows, TASK, eval_bs=cfg.eval_bs, max_new_tokens=cfg.max_new_tokens,
                          out_dir=out_dir)
    return metrics


def prefill_router_cache(train_cmd: list[str], run_dir: Path, threads: int) -> int:
    """Embed the training paths for the router before launching, using every core.

    Why: inside ``accelerate launch`` rank 0 fills the router's embedding cache while the other
    rank waits, each process limited to its share of the cores; on 2 cores that was half of
    the demo's wall time. The texts come from the engine's own loaders
    (:func:`distill.students.data.load_train_paths`, :func:`distill.router.encoder.path_text`),
    so the cache keys match; if they ever did not, training would just embed the misses
    itself. Returns the number of paths embedded.
    """
    import torch

    from distill.router.encoder import PathEmbedder, path_text
    from distill.students.data import load_train_paths
    from distill.train.config import parse_train_args

    script = str(LAUNCH / "train_moe.py")
    cfg = parse_train_args(train_cmd[train_cmd.index(script) + 1:])
    if cfg.routing == "all":
        return 0
    texts = sorted({path_text(e["question_text"], e["response"]) for e in load_train_paths(cfg)}, key=len)
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        PathEmbedder(cfg.encoder, run_dir / "emb_cache").embed(texts)  # sorted: little padding per batch
    finally:
        torch.set_num_threads(old)
    return len(texts)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DemoError(f"expected output {path} is missing") from None
    except json.JSONDecodeError as exc:
        raise DemoError(f"{path}: not valid JSON ({exc})") from None


# ------------------------------------------------------------------------------------ report
def format_report(result: dict[str, Any]) -> str:
    """The short human-readable report printed at the end (also saved as ``report.md``)."""
    b, a = result["before"], result["after"]
    lines = [f"distill demo ({result['preset']}) - task arith, {result['n_test']} test questions, "
             f"wall time {result['wall_s']:.0f} s", ""]
    t = result.get("teacher", {})
    if t:
        lines.append(f"teacher: {t['paths_total']} paths, {t['paths_correct']} verified correct "
                     f"({t['paths_correct'] / max(1, t['paths_total']):.0%}); wrong ones filtered out")
        lines.append("")
    lines.append("accuracy        before   after    gain")
    for key, label in (("acc_s1", f"student 1 ({result['arch1']})"), ("acc_s2", f"student 2 ({result['arch2']})"),
                       ("acc_ensemble", "ensemble")):
        lines.append(f"{label:<15} {b[key]:6.1%}  {a[key]:6.1%}  {a[key] - b[key]:+6.1%}")
    lines.append("")
    rates = result.get("routing", {}).get("all", {})
    if rates:
        lines.append("routing (share of each style's paths sent to each student, all epochs)")
        lines.append(f"{'style':<10} {'student1':>8} {'student2':>8} {'paths':>6}")
        for style in sorted(rates):
            r = rates[style]
            lines.append(f"{style:<10} {r['student1']:8.1%} {r['student2']:8.1%} {r['count']:6d}")
        lines.append("")
    if result.get("plot"):
        lines.append(f"routing plot: {result['plot']}")
    lines.append(f"run folder: {result['run_dir']}")
    return "\n".join(lines)


def teacher_stats(summary: dict[str, Any]) -> dict[str, int]:
    per_style = summary.get("correct_per_style", {})
    return {"paths_total": sum(v[1] for v in per_style.values()),
            "paths_correct": sum(v[0] for v in per_style.values()),
            "per_style": {k: {"correct": v[0], "total": v[1]} for k, v in per_style.items()}}


def run_demo(cfg: DemoConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage; returns the result dict also written to ``OUTDIR/report.json``."""
    t0 = time.time()
    out = Path(cfg.outdir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    data_root = out / "data"
    run_dir = out / "run"

    def stage(name: str) -> None:
        log(f"[{time.time() - t0:6.1f}s] {name}")

    stage(f"1/6 data: {cfg.arith.n_train} train / {cfg.arith.n_test} test arith problems -> {data_root}")
    splits = write_splits(data_root, cfg.arith)

    stage(f"2/6 teacher: scripted, {cfg.n_paths} paths per question, wrong rate {cfg.wrong_rate:.0%}; verify")
    summary_file = out / "teacher_summary.json"
    _run_logged("prompt", prompt_command(cfg, splits["train"], summary_file), logs / "prompt.log")
    teacher = teacher_stats(read_json(summary_file))
    enriched = splits["train"].with_name("train.enriched.jsonl")

    stage("3/6 students: two tiny models with locally trained tokenizers")
    corpus = tokenizer_corpus(splits["train"], enriched)
    m1, m2 = build_students(cfg, corpus, out / "students")

    stage("4/6 evaluate the untrained students")
    before = evaluate_untrained(cfg, m1, m2, splits["test"], out / "eval_before")

    stage(f"5/6 train the mixture ({cfg.num_processes} process(es), {Path(cfg.train_config).name}); "
          f"log {logs / 'train.log'}")
    cmd = train_command(cfg, data_root, m1, m2, run_dir)
    n_emb = prefill_router_cache(cmd, run_dir, os.cpu_count() or 2)
    if n_emb:
        stage(f"    router encoder: {n_emb} paths embedded; launching training")
    env = {"ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // cfg.num_processes)),
           "TOKENIZERS_PARALLELISM": "false"}
    _run_logged("train", cmd, logs / "train.log", env=env)
    after = read_json(run_dir / "eval" / "metrics.json")

    stage("6/6 routing analysis (distill posrate)")
    plot = out / "routing_rates.png" if cfg.plot else None
    routing: dict[str, Any] = {}
    if any(run_dir.glob("router_logs_epoch*.jsonl")):
        text = _run_logged("posrate", posrate_command(run_dir, plot), logs / "posrate.log", capture_stdout=True)
        try:
            routing = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DemoError(f"distill posrate --json printed invalid JSON ({exc}): {text[:200]!r}") from None
    else:
        plot = None
    result = {
        "preset": cfg.preset, "wall_s": time.time() - t0, "n_test": after.get("n", before.get("n")),
        "arch1": cfg.student1.arch, "arch2": cfg.student2.arch, "teacher": teacher,
        "before": before, "after": after, "routing": routing,
        "plot": str(plot) if plot and plot.is_file() else None, "run_dir": str(run_dir),
        "config": {k: v for k, v in asdict(cfg).items()},
    }
    atomic_write_text(out / "report.json", json.dumps(result, indent=2, default=str) + "\n")
    atomic_write_text(out / "report.md", format_report(result) + "\n")
    return result
