"""Shared pieces of the benchmark suite (``bench/bench_suite.py``): the figure record, the machine
record, real GSM8K-length training paths and the tiny student pair the training figures share.

A *figure* is one measured number with its target and every input needed to reproduce it::

    {"name": ..., "value": 0.93, "unit": "ratio", "target": 0.9, "op": ">=", "met": True,
     "inputs": {...sizes, lengths, batch, seeds...}, "detail": {...other measured numbers...}}
"""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("DISTILL_BENCH_DATA", str(ROOT.parent / "shared" / "datasets")))
if not DATA.is_dir():  # the project's shared folder sits next to the checkout; /work/shared otherwise
    DATA = Path("/work/shared/datasets")

#: The tiny student pair of the training figures: a llama (byte-level BPE) and a qwen2 (Unigram), each
#: with its own tokenizer trained on GSM8K text, so lengths and segmentation differ as real pairs do.
TINY = {"hidden": 64, "layers": 2, "heads": 4, "vocab_size": 4096, "max_positions": 1024}


def figure(name: str, value: float | None, target: float | None, op: str, inputs: dict[str, Any],
           unit: str = "", **detail: Any) -> dict[str, Any]:
    """One figure: ``met`` is ``value op target`` (None when there is no value or no target)."""
    if op not in (">=", "<="):
        raise ValueError(f"figure {name}: op must be '>=' or '<=', got {op!r}")
    met = None
    if value is not None and target is not None:
        met = bool(value >= target) if op == ">=" else bool(value <= target)
    return {"name": name, "value": value, "unit": unit, "target": target, "op": op, "met": met,
            "inputs": inputs, "detail": detail}


def failed_figure(name: str, target: float | None, op: str, error: str) -> dict[str, Any]:
    """A figure whose measurement raised: no value, not met, the error kept."""
    out = figure(name, None, target, op, {}, error=error)
    out["met"] = False
    return out


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
        m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        if m:
            return m.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, load average, library versions and the checkout's commit."""
    import torch

    mem = None
    try:
        m = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(encoding="utf-8"))
        mem = round(int(m.group(1)) / 2**20, 1) if m else None
    except OSError:
        pass

    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "mem_gib": mem, "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(), "torch": torch.__version__,
            "load_avg_start": [round(x, 2) for x in os.getloadavg()], "shared": True,
            "git_commit": git("rev-parse", "HEAD") or None, "git_dirty_files": len(git("status", "--porcelain").splitlines())}


def torch_threads() -> int:
    """The thread count the suite chose (``OMP_NUM_THREADS``, set by the runner), for child processes."""
    return int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)


def cpu_s(children: bool = False) -> float:
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def clean_solution(solution: str) -> str:
    """A GSM8K reference solution as a teacher path: calculator notes dropped, ``#### N`` boxed."""
    sol = re.sub(r"<<[^>]*>>", "", solution).strip()
    return re.sub(r"####\s*(.+)$", r"The answer is \\boxed{\1}.", sol)


def gsm8k_rows(n: int, split: str = "train") -> list[dict[str, Any]]:
    path = DATA / "gsm8k" / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the shared GSM8K data is needed (set DISTILL_BENCH_DATA)")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            rows.append(json.loads(line))
            if len(rows) >= n:
                break
    return rows


def gsm8k_paths(n: int) -> list[dict[str, Any]]:
    """``n`` training paths built from real GSM8K train questions and solutions (their lengths)."""
    from distill.students.data import question_text

    return [{"id": r["id"], "path_idx": 0, "style": "cot", "correct": True,
             "question_text": question_text("gsm8k", r), "response": clean_solution(r["solution"])}
            for r in gsm8k_rows(n)]


def tokenizer_corpus(n: int = 400) -> list[str]:
    rows = gsm8k_rows(n)
    return [t for r in rows for t in (r["question"], clean_solution(r["solution"]))]


def make_pair(folder: Path, size: dict[str, int] | None = None) -> tuple[Path, Path]:
    """Build (once per folder) the tiny llama + qwen2 students with GSM8K-trained tokenizers."""
    from distill.models.tiny import make_tiny_student

    size = {**TINY, **(size or {})}
    tag = "_".join(f"{k}{v}" for k, v in sorted(size.items()))
    p1, p2 = folder / f"llama_{tag}", folder / f"qwen2_{tag}"
    corpus = None
    for p, arch in ((p1, "llama"), (p2, "qwen2")):
        if not (p / "config.json").is_file():
            corpus = corpus or tokenizer_corpus()
            make_tiny_student(p, arch, corpus=corpus, **size)
    return p1, p2


def load_pair(p1: Path, p2: Path | None, *, lora_r: int = 8, gradient_checkpointing: bool = False, seed: int = 0):
    """(cfg, s1, tok1, s2, tok2) loaded the way ``distill train`` loads them (LoRA, config checks)."""
    import torch

    from distill.students.load import load_student
    from distill.train.config import TrainConfig

    flat = {"task": "gsm8k", "model1": str(p1), "lora_r": lora_r, "gradient_checkpointing": gradient_checkpointing}
    if p2 is not None:
        flat["model2"] = str(p2)
    else:
        flat["is_sft"] = True
    cfg = TrainConfig.from_flat(**flat)
    torch.manual_seed(seed)
    s1, t1 = load_student(str(p1), cfg.students, cfg.lora)
    s2, t2 = (None, None) if p2 is None else load_student(str(p2), cfg.students, cfg.lora)
    return cfg, s1, t1, s2, t2
