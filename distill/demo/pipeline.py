"""The offline end-to-end demo: data -> scripted teacher -> verification -> routed training ->
evaluation -> routing analysis, on the built-in ``arith`` task with two tiny local students.

:func:`run_demo` strings the stages together; what it runs is configured in
:mod:`distill.demo.config`, the stages are :mod:`distill.demo.stages` (each one a public command,
see there for why), the students :mod:`distill.demo.students` and the report
:mod:`distill.demo.report`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from distill.data.jsonl import atomic_write_text
from distill.demo.config import DemoConfig
from distill.demo.report import format_report, teacher_stats
from distill.demo.stages import (
    evaluate_untrained, prefill_router_cache, prompt_command, read_json, routing_analysis, run_logged,
    train_command,
)
from distill.demo.students import build_students, tokenizer_corpus
from distill.demo.synthetic import write_splits


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
    run_logged("prompt", prompt_command(cfg, splits["train"], summary_file), logs / "prompt.log")
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
    run_logged("train", cmd, logs / "train.log", env=env)
    after = read_json(run_dir / "eval" / "metrics.json")

    stage("6/6 routing analysis (distill posrate)")
    plot = out / "routing_rates.png" if cfg.plot else None
    routing = routing_analysis(run_dir, plot, logs / "posrate.log")
    if not routing:
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
