"""The training engine behind ``accelerate launch launch/train_moe.py``.

One :class:`~distill.train.mixture.MixtureModel` (both students + router + peer module)
is prepared by Accelerate, so the same loop runs on 1 process, N-process DDP (CPU gloo
or GPUs) and DeepSpeed ZeRO-2/3. Design choices, and why:

- **Own batch order, no prepared DataLoader.** Each epoch's length-grouped batch list is a
  pure function of ``(seed, epoch)`` (:func:`~distill.students.data.epoch_batches`); rank
  ``r`` takes every ``world``-th batch. A resumed run therefore replays exactly the same
  order by skipping the batches already done, with no sampler state to checkpoint.
- **Checkpoints** are ``accelerator.save_state`` folders under ``outdir/checkpoints/`` (model,
  optimizer, scheduler, RNG of every rank, and the loop's :class:`Progress`); a
  ``progress.json`` written last marks a folder complete, so ``--resume_from latest`` never
  picks a half-written one.
- **Validation first.** Missing models or data, quantisation without a working bitsandbytes and DeepSpeed
  config mismatches fail with one line before any model loads.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from distill.data.jsonl import atomic_write_jsonl, atomic_write_text
from distill.errors import ConfigError, DistillError
from distill.train.config import TrainConfig

#: Test hook: ``DISTILL_FAULT_AT_STEP=N`` hard-kills the process (``os._exit``) right after
#: optimizer step N (and any checkpoint of that step) -- a stand-in for a crash or preemption.
FAULT_ENV = "DISTILL_FAULT_AT_STEP"


class TrainingDiverged(DistillError):
    """Loss became NaN/inf; the message names the step, micro-batch and path ids, and the checkpoint."""


class Progress:
    """Loop position, checkpointed with the run so a resume continues exactly here."""

    def __init__(self) -> None:
        self.global_step = 0
        self.epoch = 0
        self.batch_in_epoch = 0  # micro-batches of the current epoch already done (this rank's list)
        self.router_log: list[dict[str, Any]] = []  # this epoch's router log, gathered (main process)

    def state_dict(self) -> dict[str, Any]:
        return {"global_step": self.global_step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "router_log": list(self.router_log)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.global_step = int(state["global_step"])
        self.epoch = int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        self.router_log = list(state.get("router_log", []))


# ------------------------------------------------------------------------------------ helpers
def _to_device(obj, device):
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    return obj


def find_checkpoint(outdir: Path, resume_from: str) -> Path:
    """``latest`` -> newest complete checkpoint under ``outdir/checkpoints``; else the folder given."""
    if resume_from == "latest":
        root = outdir / "checkpoints"
        done = sorted(p.parent for p in root.glob("*/progress.json")) if root.is_dir() else []
        if not done:
            raise ConfigError(f"--resume_from latest: no complete checkpoint under {root}")
        return max(done, key=lambda p: json.loads((p / "progress.json").read_text())["global_step"])
    p = Path(resume_from)
    if not (p / "progress.json").is_file():
        raise ConfigError(f"--resume_from {p}: not a complete checkpoint folder (no progress.json)")
    return p


def _deepspeed_checks(accelerator, cfg: TrainConfig) -> None:
    """Fill DeepSpeed's batch size (we prepare no DataLoader) and reject mismatched JSON values."""
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is None:
        return
    ds = plugin.deepspeed_config
    want = {"train_micro_batch_size_per_gpu": cfg.bs, "gradient_accumulation_steps": cfg.grad_accum}
    for key, value in want.items():
        got = ds.get(key, "auto")
        if got != "auto" and int(got) != int(value):
            raise ConfigError(f"DeepSpeed config sets {key}={got} but the run uses {value}: set it to \"auto\" "
                              f"in the DeepSpeed JSON or pass a matching flag")
    stage = int(ds.get("zero_optimization", {}).get("stage", 0))
    if stage == 3 and (cfg.load_in_4bit or cfg.load_in_8bit):
        raise ConfigError("DeepSpeed ZeRO-3 cannot shard bitsandbytes-quantised students: use zero2.yaml for QLoRA")
    for prec in ("bf16", "fp16"):
        enabled = ds.get(prec, {}).get("enabled", False)
        if enabled is True and cfg.precision not in ("auto", prec):
            raise ConfigError(f"DeepSpeed config enables {prec} but --precision is {cfg.precision}: make them agree")
    ds["train_micro_batch_size_per_gpu"] = cfg.bs
    ds["train_batch_size"] = cfg.bs * cfg.grad_accum * accelerator.num_processes
    if ds.get("gradient_clipping", "auto") == "auto":
        ds["gradient_clipping"] = cfg.max_grad_norm


def _zero_stage(accelerator) -> int:
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    return int(plugin.zero_stage) if plugin is not None else 0


def make_accelerator(cfg: TrainConfig):
    """An Accelerator for this run; on CPU DeepSpeed, the gloo process group comes first."""
    import torch
    from accelerate import Accelerator, PartialState

    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true" and not torch.cuda.is_available():
        PartialState(backend="gloo")  # DeepSpeed on CPU (DS_ACCELERATOR=cpu) has no NCCL
    kwargs: dict[str, Any] = {"gradient_accumulation_steps": cfg.grad_accum, "step_scheduler_with_optimizer": False}
    if cfg.precision != "auto":
        kwargs["mixed_precision"] = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[cfg.precision]
    if cfg.report_to != "none":
        # Accelerate drops a tracker whose package is missing with only a warning: say so up front.
        import importlib.util

        needs = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}[cfg.report_to]
        if not any(importlib.util.find_spec(m) for m in needs):
            raise ConfigError(f"--report_to {cfg.report_to} needs the {needs[0]} package "
                              f"(pip install 'distill[{cfg.report_to}]'), or pass --report_to none")
        kwargs["log_with"] = cfg.report_to
        kwargs["project_dir"] = cfg.outdir
    try:
        return Accelerator(**kwargs)
    except (ValueError, ImportError) as exc:
        raise ConfigError(f"cannot set up Accelerate: {str(exc).splitlines()[0]}") from None


def validate_inputs(cfg: TrainConfig) -> None:
    """Every check that needs no model: paths, data, quantisation support."""
    from distill.students.data import load_test_rows, train_files
    from distill.students.load import check_model_ref, check_quantization

    check_model_ref(cfg.model1, "--model1")
    if not cfg.is_sft:
        check_model_ref(cfg.model2, "--model2")
    check_quantization(cfg)
    train_files(cfg)
    if cfg.eval_at_end:
        try:
            load_test_rows(cfg)
        except ConfigError as exc:
            raise ConfigError(f"{exc}; or pass --eval_at_end false") from None


def _build_router_and_peer(cfg: TrainConfig, dataset, s1, s2, tok1, tok2, outdir: Path, accelerator):
    router = peer = None
    if cfg.routing != "all":
        from distill.router.build import build_router
        from distill.router.encoder import PathEmbedder, path_text

        texts = [path_text(e["question_text"], e["response"]) for e in dataset.examples]
        cache = outdir / "emb_cache"
        with accelerator.main_process_first():  # rank 0 fills the cache, the others read it
            emb = PathEmbedder(cfg.encoder, cache).embed(texts)
        dataset.route_emb = emb.float()
        router = build_router(cfg, int(emb.shape[1]))
    if cfg.use_kl:
        from distill.peer.build import build_peer

        peer = build_peer(cfg, s1, s2, tok1, tok2)
    return router, peer


def _param_groups(model, cfg: TrainConfig) -> list[dict[str, Any]]:
    groups = []
    for name, lr, frozen in (("student1", cfg.lr_s1, cfg.freeze_s1), ("student2", cfg.lr_s2, cfg.freeze_s2)):
        sub = getattr(model, name)
        if sub is None:
            continue
        if frozen:
            sub.requires_grad_(False)
            continue
        params = [p for p in sub.parameters() if p.requires_grad]
        if params:
            groups.append({"params": params, "lr": lr, "name": name})
    misc = [p for sub in (model.router, model.peer) if sub is not None for p in sub.parameters() if p.requires_grad]
    if misc:
        groups.append({"params": misc, "lr": cfg.lr_misc, "name": "misc"})
    if not groups:
        raise ConfigError("no trainable parameters (both students frozen and no router/peer)")
    return groups


def peak_memory_gib(accelerator) -> dict[str, float]:
    """Peak memory over all processes, in GiB: the resident set (CPU) and, on CUDA, the allocator's peak.

    Why: machines are sized by the worst rank, so this is the number a user needs to pick a GPU or
    decide on ``--load_in_4bit`` / ZeRO; it lands in ``train_summary.json`` next to tokens/s.
    """
    import resource

    import torch

    vals = [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20]  # ru_maxrss is KiB on Linux
    on_cuda = accelerator.device.type == "cuda"
    if on_cuda:
        vals.append(torch.cuda.max_memory_allocated(accelerator.device) / 2**30)
    peak = accelerator.gather(torch.tensor([vals], dtype=torch.float64, device=accelerator.device))
    peak = peak.view(-1, len(vals)).max(dim=0).values.tolist()
    out = {"peak_rss_gib": round(peak[0], 3)}
    if on_cuda:
        out["peak_gpu_mem_gib"] = round(peak[1], 3)
    return out


def save_adapters(accelerator, model, tokenizers: dict[str, Any], outdir: Path) -> None:
    """Each student's PEFT adapter + tokenizer under ``outdir/student{k}`` (full weights gathered
    from ZeRO-3 shards first; every rank must call this)."""
    state = accelerator.get_state_dict(model)
    unwrapped = accelerator.unwrap_model(model)
    if accelerator.is_main_process:
        for key, name in (("s1", "student1"), ("s2", "student2")):
            student = getattr(unwrapped, name)
            if student is None:
                continue
            prefix = f"{name}."
            sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            student.save_pretrained(outdir / name, state_dict=sub)
            tokenizers[key].save_pretrained(outdir / name)
    accelerator.wait_for_everyone()


# --------------------------------------------------------------------------------------- train
def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run one training job end to end; returns a summary (steps, timings, eval metrics)."""
    validate_inputs(cfg)
    import torch
    from accelerate.utils import gather_object, set_seed
    from tqdm.auto import tqdm
    from transformers import get_cosine_schedule_with_warmup

    from distill.students.data import PathDataset, context_window, epoch_batches, load_train_paths
    from distill.students.load import load_student
    from distill.train.mixture import MixtureModel

    outdir = Path(cfg.outdir)
    accelerator = make_accelerator(cfg)
    _deepspeed_checks(accelerator, cfg)
    main = accelerator.is_main_process
    if main:
        outdir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(outdir / "train_config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    set_seed(cfg.seed)

    dev_idx = accelerator.local_process_index if torch.cuda.is_available() else None
    s1, tok1 = load_student(cfg.model1, cfg, flag="--model1", device_index=dev_idx)
    s2, tok2 = (None, None) if cfg.is_sft else load_student(cfg.model2, cfg, flag="--model2", device_index=dev_idx)
    tokenizers = {"s1": tok1} if s2 is None else {"s1": tok1, "s2": tok2}
    max_lens = {"s1": min(cfg.max_len, context_window(s1.config) or cfg.max_len)}
    if s2 is not None:
        max_lens["s2"] = min(cfg.max_len, context_window(s2.config) or cfg.max_len)

    examples = load_train_paths(cfg)
    dataset = PathDataset(examples, tokenizers, max_lens)
    lost = {k: v for k, v in dataset.fully_truncated().items() if v}
    if lost and main:
        accelerator.print(f"warning: paths with no completion token left after truncation: {lost}; raise --max_len")
    router, peer = _build_router_and_peer(cfg, dataset, s1, s2, tok1, tok2, outdir, accelerator)
    model = MixtureModel(s1, s2, router, peer)
    groups = _param_groups(model, cfg)
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr_s1, weight_decay=cfg.weight_decay)

    world = accelerator.num_processes
    lengths = [dataset.length(i) for i in range(len(dataset))]
    micro_per_epoch = len(epoch_batches(lengths, cfg.bs, seed=cfg.seed, epoch=0, world=world,
                                        multiple=cfg.grad_accum)) // world
    steps_per_epoch = micro_per_epoch // cfg.grad_accum
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    scheduler = get_cosine_schedule_with_warmup(optimizer, math.ceil(cfg.warmup_ratio * total_steps), total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    progress = Progress()
    accelerator.register_for_checkpointing(progress)
    unwrapped = accelerator.unwrap_model(model)

    metrics_file = outdir / "metrics.jsonl"
    if cfg.resume_from:
        ckpt = find_checkpoint(outdir, cfg.resume_from)
        accelerator.load_state(str(ckpt))
        accelerator.print(f"resumed from {ckpt} at step {progress.global_step} "
                          f"(epoch {progress.epoch}, batch {progress.batch_in_epoch})")
        if main and metrics_file.exists():  # drop log lines of steps that will be redone
            keep = [json.loads(l) for l in metrics_file.read_text().splitlines() if l.strip()]
            atomic_write_jsonl(metrics_file, [m for m in keep if m.get("step", 0) <= progress.global_step])
    elif main and metrics_file.exists():
        metrics_file.unlink()
    if cfg.report_to != "none":
        accelerator.init_trackers("distill", config={k: v for k, v in cfg.to_dict().items()
                                                     if isinstance(v, (int, float, str, bool))})

    def save_checkpoint(tag: str) -> Path:
        d = outdir / "checkpoints" / f"{tag}{progress.global_step:08d}"
        accelerator.save_state(str(d))
        if main:
            atomic_write_text(d / "progress.json", json.dumps(progress.state_dict() | {"router_log": len(progress.router_log)}) + "\n")
            if cfg.save_total_limit:
                done = sorted((p.parent for p in (outdir / "checkpoints").glob("step_*/progress.json")),
                              key=lambda p: p.name)
                for old in done[: -cfg.save_total_limit]:
                    import shutil
                    shutil.rmtree(old, ignore_errors=True)
        accelerator.wait_for_everyone()
        return d

    fault_at = int(os.environ.get(FAULT_ENV, "0") or 0)
    mfh = open(metrics_file, "a", encoding="utf-8") if main else None
    bar = tqdm(total=total_steps, initial=progress.global_step, disable=not main, desc="train", dynamic_ncols=True)
    step_times: list[float] = []
    tokens_done = 0
    acc: dict[str, float] = {}
    t_step = time.perf_counter()
    done = progress.global_step >= total_steps
    model.train()
    while not done and progress.epoch < cfg.epochs:
        epoch = progress.epoch
        mine = epoch_batches(lengths, cfg.bs, seed=cfg.seed, epoch=epoch, world=world,
                             multiple=cfg.grad_accum)[accelerator.process_index::world]
        if router is not None and hasattr(unwrapped.router, "set_epoch"):
            unwrapped.router.set_epoch(epoch, cfg.epochs)
        for b in range(progress.batch_in_epoch, len(mine)):
            batch = _to_device(dataset.collate(mine[b]), accelerator.device)
            if router is not None and hasattr(unwrapped.router, "set_progress"):
                unwrapped.router.set_progress(progress.global_step / max(1, total_steps))
            with accelerator.accumulate(model):
                out = model(batch)
                loss = out["loss"]
                bad = accelerator.reduce(torch.tensor([0.0 if torch.isfinite(loss).all() else 1.0],
                                                      device=accelerator.device), "sum")
                if float(bad) > 0:
                    bar.close()
                    d = save_checkpoint("nan_step_")
                    raise TrainingDiverged(
                        f"non-finite loss at step {progress.global_step + 1} (epoch {epoch}, micro-batch {b}, "
                        f"path ids {batch['meta']['ids']}); state before this step saved to {d}")
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                if accelerator.sync_gradients:
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            # bookkeeping (identical on every rank)
            tokens_done += int(sum(batch[k]["attention_mask"].sum() for k in tokenizers))
            for k, v in (("loss", float(loss.detach())), ("nll1", float(out["nll1"].detach().mean())),
                         ("nll2", float(out["nll2"].detach().mean())), *out["logs"].items()):
                acc[k] = acc.get(k, 0.0) + v / cfg.grad_accum
            probs = out["route_probs"]
            # each student's loss on every path (routed or not): what the router's decision was based on
            nlls = torch.stack([out["nll1"], out["nll2"]], dim=-1).detach().float().cpu().tolist()
            entries = [{"id": i, "path_idx": p, "style": s, "route": ("both" if int(r) == 3 else int(r)),
                        "probs": (probs[j].detach().float().cpu().tolist() if probs is not None else None),
                        "nll": [round(x, 5) for x in nlls[j]], "correct": c}
                       for j, (i, p, s, r, c) in enumerate(zip(batch["meta"]["ids"], batch["meta"]["path_idx"],
                                                               batch["meta"]["styles"], out["route"].tolist(),
                                                               batch["meta"]["correct"]))]
            entries = gather_object(entries) if world > 1 else entries
            if main:
                progress.router_log.extend(entries)
            progress.batch_in_epoch = b + 1
            if not accelerator.sync_gradients:
                continue
            progress.global_step += 1
            now = time.perf_counter()
            step_times.append(now - t_step)
            t_step = now
            if progress.global_step % cfg.log_every == 0 or progress.global_step == total_steps:
                red = accelerator.reduce(torch.tensor([acc[k] for k in sorted(acc)], device=accelerator.device), "mean")
                rec = {"step": progress.global_step, "epoch": epoch + 1, **dict(zip(sorted(acc), red.tolist())),
                       "step_time_s": step_times[-1]}
                for g in optimizer.param_groups:
                    rec[f"lr_{g.get('name', 'group')}"] = g["lr"]
                if main:
                    mfh.write(json.dumps(rec) + "\n")
                    mfh.flush()
                    # the students' losses (the total also holds the router's cost, which can be < 0)
                    bar.set_postfix({k: f"{rec[k]:.4f}" for k in ("loss_s1", "loss_s2") if k in rec} or
                                    {"loss": f"{rec['loss']:.4f}"})
                if cfg.report_to != "none":
                    accelerator.log({k: v for k, v in rec.items() if k != "step"}, step=progress.global_step)
            acc = {}
            bar.update(1)
            if progress.global_step >= total_steps:
                done = True
            if cfg.save_every and progress.global_step % cfg.save_every == 0 and not (done or b + 1 == len(mine)):
                save_checkpoint("step_")
            if fault_at and progress.global_step == fault_at:
                if mfh:
                    mfh.close()
                os._exit(17)
            if done:
                break
        if progress.batch_in_epoch >= len(mine) or done:
            if main:
                atomic_write_jsonl(outdir / f"router_logs_epoch{epoch + 1}.jsonl", progress.router_log)
            progress.router_log = []
            if progress.batch_in_epoch >= len(mine):
                progress.epoch += 1
                progress.batch_in_epoch = 0
            save_checkpoint("step_")
    bar.close()
    if mfh:
        mfh.close()
    save_adapters(accelerator, model, tokenizers, outdir)
    summary: dict[str, Any] = {"steps": progress.global_step, "total_steps": total_steps, "paths": len(dataset),
                               "world": world, "tokens_this_run": tokens_done * world}
    if len(step_times) > 1:
        summary["mean_step_time_s"] = sum(step_times[1:]) / (len(step_times) - 1)
        summary["tokens_per_s"] = tokens_done * world / max(1e-9, sum(step_times))
    summary.update(peak_memory_gib(accelerator))  # training's peak (evaluation below is not counted)
    if cfg.eval_at_end:
        from distill.students.data import load_test_rows
        from distill.students.evaluate import evaluate

        rows = load_test_rows(cfg)
        students = [(unwrapped.student1, tok1)] + ([(unwrapped.student2, tok2)] if s2 is not None else [])
        _, metrics = evaluate(students, rows, cfg.task, accelerator=accelerator, eval_bs=cfg.eval_bs,
                              max_new_tokens=cfg.max_new_tokens, out_dir=outdir / "eval",
                              synced_gpus=_zero_stage(accelerator) == 3)
        summary["eval"] = metrics
    if main:
        atomic_write_text(outdir / "train_summary.json", json.dumps(summary, indent=2) + "\n")
    if cfg.report_to != "none":
        accelerator.end_training()
    accelerator.wait_for_everyone()
    return summary
