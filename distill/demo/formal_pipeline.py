"""``distill demo --task smt|asp|dot``: the whole method on a formal language, offline, on CPU.

Stages, each the public command a user would run (logs in ``OUTDIR/logs``), as in the ``arith``
demo (:mod:`distill.demo.pipeline`):

1. data: seeded problems with reference programs (:mod:`distill.demo.formal_gen`);
2. teacher: ``distill prompt --backend scripted`` (three styles, a share of broken and of valid but
   wrong programs, :mod:`distill.demo.formal_teacher`), verified by the real solver;
3. repair data: ``distill augment`` on the reference programs of ``repair_sources`` train rows, plus
   the teacher's own rejected programs, as multi-turn rows (:mod:`distill.demo.formal_repairs`);
4. students: two tiny models whose tokenizers are trained on this text (questions, programs, repair
   conversations; never the test split);
5. training: ``accelerate launch -m distill.commands.train --config demo_formal`` (routing + peer
   teaching on the verified paths and the repair rows);
6. evaluation: ``distill eval --table`` (untrained students, distilled, + template repair,
   + solver-in-the-loop refinement, with 95% intervals against the untrained row);
7. routing analysis: ``distill posrate``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from distill.data.jsonl import atomic_write_jsonl, atomic_write_text, iter_jsonl, read_rows
from distill.demo.formal_config import FormalDemoConfig
from distill.demo.formal_gen import write_formal_splits
from distill.demo.formal_repairs import (augment_rows, conversation_texts, teacher_rows, write_repair_file)
from distill.demo.formal_report import format_formal_report
from distill.demo.formal_teacher import STYLE_TEMPLATES
from distill.demo.report import teacher_stats
from distill.demo.stages import (DISTILL, prefill_router_cache, read_json, routing_analysis, run_logged,
                                 train_command)
from distill.demo.students import build_students


def prompt_command(cfg: FormalDemoConfig, train_file: Path, styles_file: Path, summary: Path) -> list[str]:
    """``distill prompt`` with the scripted teacher (``--model scripted:broken=R``: the broken share)."""
    return [*DISTILL, "prompt", "--root", str(train_file.parents[2]), "--dataset", cfg.task,
            "--input", str(train_file), "--backend", "scripted", "--model", f"scripted:broken={cfg.broken_rate}",
            "--wrong-rate", str(cfg.wrong_rate), "--seed", str(cfg.teacher_seed), "--n", str(cfg.n_paths),
            "--styles-file", str(styles_file), "--styles", cfg.styles, "--no-progress",
            "--summary-json", str(summary)]


def augment_command(cfg: FormalDemoConfig, sources: Path, out: Path) -> list[str]:
    return [*DISTILL, "augment", "--task", cfg.task, "--input", str(sources), "--out", str(out),
            "--seed", str(cfg.teacher_seed), "--workers", str(max(1, os.cpu_count() or 2))]


def eval_command(cfg: FormalDemoConfig, run_dir: Path, test_file: Path, budget: int) -> list[str]:
    cmd = [*DISTILL, "eval", "--run", str(run_dir), "--task", cfg.task, "--test", str(test_file), "--table",
           "--template-repair", "--refine", str(cfg.refine), "--eval_bs", str(cfg.eval_bs),
           "--max_new_tokens", str(budget)]
    return cmd + (["--limit", str(cfg.eval_limit)] if cfg.eval_limit else [])


def answer_budget(enriched: Path, students: tuple[Path, Path]) -> int:
    """1.25 x the longest teacher answer in either student's tokens, a multiple of 16 (from the training
    data only). Why not ``distill eval``'s default (the 99th percentile, at least 256 tokens): an
    untrained or confused student repeats itself up to the budget, and 256 tokens per answer and
    refinement round is most of the demo's evaluation time for programs of ~100 tokens."""
    from distill.students.tokenizer import load_tokenizer

    answers = [r for _, row in iter_jsonl(enriched) for r in row.get("responses") or [] if isinstance(r, str)]
    longest = max((len(load_tokenizer(m)(a, add_special_tokens=False)["input_ids"]) for m in students
                   for a in answers), default=64)
    return -(-int(longest * 1.25) // 16) * 16


def _corpus(task: str, train_file: Path, enriched: Path, repairs: list[dict[str, Any]]) -> list[str]:
    from distill.prompting.prompts import core_prompt

    corpus = [core_prompt(task, row) for _, row in iter_jsonl(train_file)]
    for _, row in iter_jsonl(enriched):
        corpus.extend(r for r in row.get("responses") or [] if isinstance(r, str))
    return corpus + conversation_texts(repairs)


def run_formal_demo(cfg: FormalDemoConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage; returns the result dict also written to ``OUTDIR/report.json``."""
    t0 = time.time()
    out = Path(cfg.outdir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    logs, data_root, run_dir = out / "logs", out / "data", out / "run"
    walls: dict[str, float] = {}
    last = [t0]

    def stage(name: str) -> None:
        now = time.time()
        log(f"[{now - t0:6.1f}s] {name}")
        last[0] = now

    def done(key: str) -> None:
        walls[key] = round(time.time() - last[0], 1)

    env = {"TOKENIZERS_PARALLELISM": "false", "DISTILL_NO_PROGRESS": "1"}
    stage(f"1/7 data: {cfg.gen.n_train} train / {cfg.gen.n_test} test {cfg.task} problems -> {data_root}")
    splits = write_formal_splits(data_root, cfg.gen)
    styles_file = out / "styles.json"
    atomic_write_text(styles_file, json.dumps({s: STYLE_TEMPLATES[s] for s in cfg.styles.split(",")}, indent=2))
    done("data")

    stage(f"2/7 teacher: scripted, {cfg.n_paths} paths per problem ({cfg.styles}), broken {cfg.broken_rate:.0%}, "
          f"valid but wrong {cfg.wrong_rate:.0%}; verified by the solver")
    summary_file = out / "teacher_summary.json"
    run_logged("prompt", prompt_command(cfg, splits["train"], styles_file, summary_file), logs / "prompt.log",
               env=env)
    summary = read_json(summary_file)
    teacher = teacher_stats(summary)
    teacher["valid_per_style"] = summary.get("valid_per_style", {})
    enriched = splits["train"].with_name("train.enriched.jsonl")
    done("teacher")

    stage(f"3/7 repair data: distill augment on {cfg.repair_sources} reference programs"
          + (" + the teacher's rejected programs" if cfg.teacher_repairs else ""))
    repairs: list[dict[str, Any]] = []
    augment_text = ""
    if cfg.repair_sources:
        sources = out / "augment" / "sources.jsonl"
        atomic_write_jsonl(sources, read_rows(splits["train"], cfg.task)[: cfg.repair_sources])
        pairs_file = out / "augment" / "repair_pairs.jsonl"
        augment_text = run_logged("augment", augment_command(cfg, sources, pairs_file), logs / "augment.log",
                                  env=env, capture_stdout=True)
        repairs += augment_rows(cfg.task, (r for _, r in iter_jsonl(pairs_file)), per_source=cfg.repairs_per_source,
                                seed=cfg.teacher_seed)
    n_aug = len(repairs)
    if cfg.teacher_repairs:
        repairs += teacher_rows(cfg.task, enriched)
    repair_file = splits["train"].with_name("repair.correct.jsonl")
    write_repair_file(repair_file, repairs)
    done("repair")

    stage("4/7 students: two tiny models, tokenizers trained on the questions, programs and repair turns")
    m1, m2 = build_students(cfg, _corpus(cfg.task, splits["train"], enriched, repairs), out / "students")
    done("students")

    stage(f"5/7 train the mixture ({cfg.num_processes} process(es), {Path(cfg.train_config).name}); "
          f"log {logs / 'train.log'}")
    cmd = train_command(cfg, data_root, m1, m2, run_dir, task=cfg.task)
    n_emb = prefill_router_cache(cmd, run_dir, os.cpu_count() or 2)
    done("router_embed")
    if n_emb:
        stage(f"    router encoder: {n_emb} paths embedded; launching training")
    train_env = {**env, "ACCELERATE_USE_CPU": "1",
                 "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // cfg.num_processes))}
    run_logged("train", cmd, logs / "train.log", env=train_env)
    done("train")

    stage(f"6/7 evaluate: distill eval --table (base, distilled, template repair, refinement K={cfg.refine})")
    budget = cfg.max_new_tokens or answer_budget(enriched, (m1, m2))
    run_logged("eval", eval_command(cfg, run_dir, splits["test"], budget), logs / "eval.log", env=env,
               capture_stdout=True)
    metrics = read_json(run_dir / "eval" / "metrics.json")
    done("eval")

    stage("7/7 routing analysis (distill posrate)")
    plot = out / "routing_rates.png" if cfg.plot else None
    routing = routing_analysis(run_dir, plot, logs / "posrate.log")
    done("posrate")
    train_summary = read_json(run_dir / "train_summary.json")
    result = {
        "preset": f"formal-{cfg.task}", "task": cfg.task, "wall_s": time.time() - t0, "stage_wall_s": walls,
        "n_test": metrics.get("n"), "max_new_tokens": budget, "arch1": cfg.student1.arch,
        "arch2": cfg.student2.arch, "teacher": teacher,
        "repairs": {"augment": n_aug, "teacher": len(repairs) - n_aug, "augment_report": augment_text.strip()},
        "train": {k: train_summary.get(k) for k in ("steps", "epochs", "tokens_per_s", "truncation", "warnings")},
        "table": metrics.get("table"), "table_text": metrics.get("table_text"), "routing": routing,
        "table_png": str(run_dir / "eval" / "table.png"),
        "plot": str(plot) if plot and plot.is_file() else None, "run_dir": str(run_dir),
        "config": asdict(cfg),
    }
    atomic_write_text(out / "report.json", json.dumps(result, indent=2, default=str) + "\n")
    atomic_write_text(out / "report.md", format_formal_report(result) + "\n")
    return result
