"""The training loop behind ``distill train`` (and ``accelerate launch launch/train_moe.py``).

One :class:`~distill.train.mixture.MixtureModel` (both students + router + peer module) is
prepared by Accelerate, so the same loop runs on 1 process, N-process DDP (CPU gloo or GPUs) and
DeepSpeed ZeRO-2/3. Set-up lives in :mod:`distill.train.setup`, checkpoints in
:mod:`distill.train.checkpoint`, what is recorded in :mod:`distill.train.metrics`; this file is
the loop, top to bottom.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from distill.data.jsonl import atomic_write_jsonl, atomic_write_text
from distill.errors import DistillError
from distill.train.checkpoint import Checkpointer, Progress, save_adapters
from distill.train.config import TrainConfig
from distill.train.metrics import (STARVED_SHARE, MetricsLog, Throughput, peak_memory_gib, route_shares,
                                   router_log_rows)
from distill.train.report import write_report_safely
from distill.train.setup import Run, clip_per_group, setup_run, validate_inputs, zero_stage

#: Test hook: ``DISTILL_FAULT_AT_STEP=N`` hard-kills the process (``os._exit``) right after
#: optimizer step N (and any checkpoint of that step) -- a stand-in for a crash or preemption.
FAULT_ENV = "DISTILL_FAULT_AT_STEP"


class TrainingDiverged(DistillError):
    """Loss became NaN/inf; the message names the step, micro-batch and path ids, and the checkpoint."""


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run one training job end to end; returns the summary also written to ``train_summary.json``."""
    examples = validate_inputs(cfg)
    from accelerate.utils import gather_object

    from distill.progress import progress_bar

    run = setup_run(cfg, examples)
    acc, model, optimizer, scheduler = run.accelerator, run.model, run.optimizer, run.scheduler
    outdir, world, total = Path(cfg.runtime.outdir), acc.num_processes, run.total_steps
    progress = Progress()
    acc.register_for_checkpointing(progress)
    ckpt = Checkpointer(acc, outdir, progress, keep=cfg.runtime.save_total_limit)
    ckpt.resume(cfg.runtime.resume_from, outdir / "metrics.jsonl")
    tracker = cfg.runtime.report_to != "none"
    if tracker:
        acc.init_trackers("distill", config={k: v for k, v in cfg.to_flat().items()
                                             if isinstance(v, (int, float, str, bool))})
    bar = progress_bar(total, "train", unit="step", initial=progress.global_step, enabled=acc.is_main_process)
    log = MetricsLog(acc, outdir / "metrics.jsonl", grad_accum=cfg.optim.grad_accum,
                     log_every=cfg.runtime.log_every, total_steps=total, tracker=tracker, bar=bar)
    speed = Throughput()
    fault_at = int(os.environ.get(FAULT_ENV, "0") or 0)
    router = run.unwrapped.router
    warnings: list[str] = []
    # one process, no DDP / DeepSpeed wrapper: the mixture backpropagates per student (lower peak memory)
    split_backward = model is run.unwrapped

    model.train()
    while progress.global_step < total and progress.epoch < cfg.optim.epochs:
        epoch = progress.epoch
        mine = run.epoch_batches(epoch)
        for b in range(progress.batch_in_epoch, len(mine)):
            batch = run.collate(mine[b])
            if router is not None:
                router.set_progress(progress.global_step / max(1, total))
            with acc.accumulate(model):
                out = model(batch, backward=acc.backward) if split_backward else model(batch)
                _stop_if_diverged(acc, out.loss, progress, epoch, b, batch, ckpt, log)
                if not out.backward_done:
                    acc.backward(out.loss)
                if acc.sync_gradients and cfg.optim.max_grad_norm > 0:
                    clip_per_group(acc, optimizer, cfg.optim.max_grad_norm)
                optimizer.step()
                if acc.sync_gradients:
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            # bookkeeping (identical on every rank)
            speed.tokens += int(sum(batch[k]["attention_mask"].sum() for k in run.tokenizers))
            log.add(out)
            rows = router_log_rows(batch["meta"], out)
            rows = gather_object(rows) if world > 1 else rows
            if acc.is_main_process:
                progress.router_log.extend(rows)
            progress.batch_in_epoch = b + 1
            if not acc.sync_gradients:
                continue
            progress.global_step += 1
            log.step(progress.global_step, epoch, speed.tick(), optimizer)
            last = progress.global_step >= total
            if cfg.runtime.save_every and progress.global_step % cfg.runtime.save_every == 0 \
                    and not (last or b + 1 == len(mine)):
                ckpt.save()
            if fault_at and progress.global_step == fault_at:
                log.close()
                os._exit(17)
            if last:
                break
        if acc.is_main_process:
            atomic_write_jsonl(outdir / f"router_logs_epoch{epoch + 1}.jsonl", progress.router_log)
            warnings += _collapse_warnings(run, progress.router_log, epoch)
        progress.router_log = []
        if progress.batch_in_epoch >= len(mine):
            progress.epoch, progress.batch_in_epoch = progress.epoch + 1, 0
        ckpt.save()
    log.close()

    save_adapters(acc, model, run.tokenizers, outdir)
    budgets = eval_budgets(run)
    summary = {"steps": progress.global_step, "total_steps": total, "paths": len(run.dataset), "world": world,
               **speed.summary(world), **peak_memory_gib(acc),  # training's peak (evaluation not counted)
               "truncation": run.dataset.truncation_report(), "eval_budget": budgets,
               "warnings": warnings}
    if cfg.eval.at_end:
        summary["eval"] = evaluate_at_end(run, budgets)
    if acc.is_main_process:
        atomic_write_text(outdir / "train_summary.json", json.dumps(summary, indent=2) + "\n")
        report = write_report_safely(outdir)  # report.md + PNGs; a failure is one warning line, the run stays done
        print(_summary_line(summary, speed) + (f"; report {report}" if report else ""), file=sys.stderr)
    if tracker:
        acc.end_training()
    acc.wait_for_everyone()
    return summary


def _summary_line(summary: dict[str, Any], speed: Throughput) -> str:
    """The training stage's one line (steps this run, wall time, rate, tokens/s, ensemble accuracy)."""
    wall = sum(speed.step_times)
    line = f"train: {len(speed.step_times)} steps in {wall:.1f} s"
    if speed.step_times:
        line += f" ({len(speed.step_times) / max(wall, 1e-9):.2f} steps/s"
        line += f", {summary['tokens_per_s']:.0f} tokens/s)" if "tokens_per_s" in summary else ")"
    line += f"; {summary['steps']}/{summary['total_steps']} steps done"
    if isinstance(summary.get("eval"), dict) and isinstance(summary["eval"].get("acc_ensemble"), (int, float)):
        line += f"; ensemble accuracy {summary['eval']['acc_ensemble']:.1%}"
    return line


def _collapse_warnings(run: Run, rows: list[dict[str, Any]], epoch: int) -> list[str]:
    """A routed two-student run whose router starved a student for a whole epoch says so (log + summary)."""
    if run.unwrapped.router is None or run.unwrapped.student2 is None or not rows:
        return []
    out = []
    for student, share in route_shares(rows).items():
        if share < STARVED_SHARE:
            out.append(f"epoch {epoch + 1}: routing collapsed: student {student[1]} received {share:.1%} of the "
                       f"paths (< {STARVED_SHARE:.0%}); raise --balance_weight (now "
                       f"{run.cfg.router.balance_weight})")
            run.accelerator.print(f"warning: {out[-1]}")
    return out


def _stop_if_diverged(acc, loss: torch.Tensor, progress: Progress, epoch: int, b: int, batch, ckpt: Checkpointer,
                      log: MetricsLog) -> None:
    """Collective check: when any rank's loss is NaN/inf, save the state before this step and raise."""
    bad = acc.reduce(torch.tensor([0.0 if torch.isfinite(loss).all() else 1.0], device=acc.device), "sum")
    if float(bad) > 0:
        log.close()
        d = ckpt.save("nan_step_")
        raise TrainingDiverged(f"non-finite loss at step {progress.global_step + 1} (epoch {epoch}, micro-batch {b}, "
                               f"path ids {batch['meta']['ids']}); state before this step saved to {d}")


def eval_budgets(run: Run) -> dict[str, int]:
    """Generation budget per student: ``--max_new_tokens`` when given, else derived from the training
    completions (:func:`~distill.students.generate.default_budgets`); ``distill eval`` reads it back."""
    from distill.students.generate import default_budgets

    if run.cfg.eval.max_new_tokens is not None:
        return {k: run.cfg.eval.max_new_tokens for k in run.tokenizers}
    return default_budgets(run.dataset.completion_lengths())


def evaluate_at_end(run: Run, budgets: dict[str, int]) -> dict[str, Any]:
    """Both students and their ensemble on the test rows (every rank evaluates its shard)."""
    from distill.students.evaluate import evaluate
    from distill.students.paths import load_test_rows

    cfg, m = run.cfg, run.unwrapped
    rows = load_test_rows(cfg.data)
    rows = rows[: cfg.eval.limit] if cfg.eval.limit else rows
    students = [(m.student1, run.tokenizers["s1"])] + ([(m.student2, run.tokenizers["s2"])] if m.student2 is not None else [])
    _, metrics = evaluate(students, rows, cfg.data.task, accelerator=run.accelerator, eval_bs=cfg.eval.bs,
                          max_new_tokens=[budgets[k] for k in run.tokenizers], out_dir=Path(cfg.runtime.outdir) / "eval",
                          synced_gpus=zero_stage(run.accelerator) == 3)
    return metrics
