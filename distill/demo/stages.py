"""The demo's stages as the commands a user would run, plus the two in-process steps.

Why through the public commands: the demo is a new user's first proof that the *system* works,
so every stage runs the same entry point a user would (``distill prompt``, ``accelerate launch
-m distill.commands.train``, ``distill posrate``) as a subprocess of this interpreter, with its
output kept in ``OUTDIR/logs/<stage>.log``. Only the "before training" evaluation runs in-process:
there is no trained run to point ``distill eval`` at yet, so the untrained bases go through the
same :func:`distill.students.evaluate.evaluate` the engine uses at the end of training.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from distill.data.jsonl import read_rows
from distill.demo.config import DemoConfig
from distill.demo.synthetic import TASK
from distill.errors import DistillError

#: What the training stage runs under ``accelerate launch -m`` (= ``distill train``).
TRAIN_MODULE = "distill.commands.train"
#: How the other stages run ``distill`` (works from a checkout and from an installed wheel alike).
DISTILL = [sys.executable, "-m", "distill.commands"]


class DemoError(DistillError):
    """A demo stage failed; the message names the stage and its log file."""


def run_logged(stage: str, cmd: list[str], log: Path, *, env: dict[str, str] | None = None,
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
                              text=True)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-25:])
        raise DemoError(f"stage {stage!r} failed (exit {proc.returncode}); log {log}:\n{tail}")
    return (proc.stdout or "") if capture_stdout else ""


def prompt_command(cfg: DemoConfig, train_file: Path, summary: Path) -> list[str]:
    """``distill prompt`` with the scripted teacher on the train split (the same code path as an API teacher)."""
    return [*DISTILL, "prompt", "--root", str(train_file.parents[2]), "--dataset", TASK,
            "--input", str(train_file), "--backend", "scripted", "--model", "scripted",
            "--wrong-rate", str(cfg.wrong_rate), "--seed", str(cfg.teacher_seed), "--n", str(cfg.n_paths),
            "--styles", cfg.styles, "--no-progress", "--summary-json", str(summary)]


def train_command(cfg: DemoConfig, data_root: Path, m1: Path, m2: Path, run_dir: Path,
                  task: str = TASK) -> list[str]:
    """``accelerate launch -m distill.commands.train --config <demo> ...`` (2 CPU processes by default;
    ``cfg`` is a :class:`DemoConfig` or a :class:`distill.demo.formal_config.FormalDemoConfig`)."""
    from distill.configs import find_config

    if cfg.num_processes > 1:
        launch = ["--config_file", str(find_config("cpu_ddp", "accelerate")), "--num_processes",
                  str(cfg.num_processes)]
    else:
        launch = ["--cpu", "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
                  "--dynamo_backend", "no"]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *launch, "-m", TRAIN_MODULE,
           "--config", str(cfg.train_config), "--data_root", str(data_root), "--task", task,
           "--model1", str(m1), "--model2", str(m2), "--outdir", str(run_dir),
           "--max_new_tokens", str(cfg.max_new_tokens), "--eval_bs", str(cfg.eval_bs)]
    if cfg.eval_limit:
        cmd += ["--eval_limit", str(cfg.eval_limit)]
    for key, value in cfg.train_overrides.items():
        cmd += [f"--{key}", str(value)]
    return cmd


def train_args(train_cmd: list[str]) -> list[str]:
    """The ``distill train`` arguments of a :func:`train_command`."""
    return train_cmd[train_cmd.index(TRAIN_MODULE) + 1:]


def posrate_command(run_dir: Path, plot: Path | None) -> list[str]:
    cmd = [*DISTILL, "posrate", "--log_dir", str(run_dir), "--json"]
    return cmd + (["--plot", str(plot)] if plot else [])


def routing_analysis(run_dir: Path, plot: Path | None, log: Path) -> dict[str, Any]:
    """``distill posrate --json`` (and its ``plot``) on the run's router logs: the parsed rates, or ``{}``
    when the run wrote none (no learned or random routing)."""
    if not any(run_dir.glob("router_logs_epoch*.jsonl")):
        return {}
    text = run_logged("posrate", posrate_command(run_dir, plot), log, capture_stdout=True)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DemoError(f"distill posrate --json printed invalid JSON ({exc}): {text[:200]!r}") from None


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
    (:func:`distill.students.paths.load_train_paths`, :func:`distill.router.encoder.path_text`),
    so the cache keys match; if they ever did not, training would just embed the misses
    itself. Returns the number of paths embedded.
    """
    import torch

    from distill.router.encoder import PathEmbedder, path_text
    from distill.students.paths import load_train_paths
    from distill.train.config import parse_train_args

    cfg = parse_train_args(train_args(train_cmd))
    if cfg.router.routing == "all":
        return 0
    texts = sorted({path_text(e["question_text"], e["response"]) for e in load_train_paths(cfg.data)}, key=len)
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        PathEmbedder(cfg.router.encoder, run_dir / "emb_cache").embed(texts)  # sorted: little padding per batch
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
