"""Everything the training loop needs before its first step, built in order.

:func:`validate_inputs` runs every check that needs no model (paths, data, quantisation support);
:func:`setup_run` then builds the accelerator (with the DeepSpeed checks), both students, the path
dataset, the router and the peer module, the optimizer (one param group per student, one for the
router and peer) and the warm-up + cosine schedule, and prepares them with Accelerate.

Why the loop owns its batch order (no prepared DataLoader): each epoch's length-grouped batch list
is a pure function of ``(seed, epoch)`` (:func:`~distill.students.data.epoch_batches`); rank ``r``
takes every ``world``-th batch. A resumed run therefore replays exactly the same order by skipping
the batches already done, with no sampler state to checkpoint.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.data.jsonl import atomic_write_text
from distill.errors import ConfigError
from distill.train.config import TrainConfig
from distill.train.mixture import MixtureModel


def validate_inputs(cfg: TrainConfig) -> list[dict[str, Any]]:
    """Every check that needs no model: model references, every training and test row, quantisation
    support, the launch environment, output folders, the checkpoint to resume. Returns the training
    paths (read and validated once, before anything is written)."""
    from distill.students.paths import load_test_rows, load_train_paths
    from distill.students.load import check_model_ref, check_quantization

    check_model_ref(cfg.students.model1, "--model1")
    if not cfg.students.is_sft:
        check_model_ref(cfg.students.model2, "--model2")
    check_quantization(cfg.students)
    check_launch_environment()
    examples = load_train_paths(cfg.data)
    if cfg.eval.at_end:
        try:
            load_test_rows(cfg.data)
        except ConfigError as exc:
            raise ConfigError(f"{exc}; or pass --eval_at_end false") from None
    outdir = Path(cfg.runtime.outdir)
    check_writable(outdir, "--outdir")
    if cfg.eval.at_end:
        check_writable(outdir / "eval", "--outdir (its eval/ folder)")
    if cfg.runtime.resume_from:
        from distill.train.checkpoint import find_checkpoint

        find_checkpoint(outdir, cfg.runtime.resume_from, int(os.environ.get("WORLD_SIZE", "1")),
                        warn=lambda msg: None)  # warnings are printed once, when the run resumes
    return examples


def check_launch_environment(environ=None) -> None:
    """Launcher settings that would fail only inside every rank, after the models load."""
    env = os.environ if environ is None else environ
    on = {k for k in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_CPU") if env.get(k, "").lower() in ("1", "true")}
    if on == {"ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_CPU"}:
        raise ConfigError("DeepSpeed with ACCELERATE_USE_CPU=1 fails inside Accelerate: for DeepSpeed on CPU set "
                          "DS_ACCELERATOR=cpu alone (unset ACCELERATE_USE_CPU); for plain CPU DDP drop the "
                          "DeepSpeed config (--config_file \"$(distill configs cpu_ddp)\")")


def check_writable(folder: Path, flag: str) -> None:
    """``folder`` is (or can be made) a folder this process can write, checked with a real file (the
    probe of :func:`distill.data.commit.check_writable`, which also catches a full file system)."""
    from distill.data.commit import check_writable as check_file_writable

    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{flag} {folder}: exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        check_file_writable(folder / "train_summary.json")
    except OSError as exc:  # OutputError is an OSError carrying the system's errno
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ConfigError(f"{flag} {folder}: not writable ({reason})") from None


def make_accelerator(cfg: TrainConfig):
    """An Accelerator for this run; on CPU DeepSpeed, the gloo process group comes first."""
    import torch
    from accelerate import Accelerator, PartialState

    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true" and not torch.cuda.is_available():
        PartialState(backend="gloo")  # DeepSpeed on CPU (DS_ACCELERATOR=cpu) has no NCCL
    from accelerate.utils import DistributedDataParallelKwargs

    kwargs: dict[str, Any] = {"gradient_accumulation_steps": cfg.optim.grad_accum,
                              "step_scheduler_with_optimizer": False,
                              # The router's statistics and path bank are buffers it keeps identical on every
                              # rank by all-gathering each batch (distill.router.router); DDP's default
                              # broadcast_buffers=True would overwrite them with rank 0's at every forward.
                              # DeepSpeed ignores this (it broadcasts no buffers).
                              "kwargs_handlers": [DistributedDataParallelKwargs(broadcast_buffers=False)]}
    if cfg.students.precision != "auto":
        kwargs["mixed_precision"] = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[cfg.students.precision]
    report_to = cfg.runtime.report_to
    if report_to != "none":
        # Accelerate drops a tracker whose package is missing with only a warning: say so up front.
        needs = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}[report_to]
        if not any(importlib.util.find_spec(m) for m in needs):
            raise ConfigError(f"--report_to {report_to} needs the {needs[0]} package "
                              f"(pip install 'distill[{report_to}]'), or pass --report_to none")
        kwargs["log_with"] = report_to
        kwargs["project_dir"] = cfg.runtime.outdir
    try:
        return Accelerator(**kwargs)
    except (ValueError, ImportError) as exc:
        raise ConfigError(f"cannot set up Accelerate: {str(exc).splitlines()[0]}") from None


def deepspeed_checks(accelerator, cfg: TrainConfig) -> None:
    """Fill DeepSpeed's batch size (we prepare no DataLoader) and reject mismatched JSON values."""
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is None:
        return
    ds = plugin.deepspeed_config
    bs, accum = cfg.optim.bs, cfg.optim.grad_accum
    for key, value in {"train_micro_batch_size_per_gpu": bs, "gradient_accumulation_steps": accum}.items():
        got = ds.get(key, "auto")
        if got != "auto" and int(got) != int(value):
            raise ConfigError(f"DeepSpeed config sets {key}={got} but the run uses {value}: set it to \"auto\" "
                              f"in the DeepSpeed JSON or pass a matching flag")
    stage = int(ds.get("zero_optimization", {}).get("stage", 0))
    if stage == 3 and (cfg.students.load_in_4bit or cfg.students.load_in_8bit):
        raise ConfigError("DeepSpeed ZeRO-3 cannot shard bitsandbytes-quantised students: use zero2.yaml for QLoRA")
    for prec in ("bf16", "fp16"):
        if ds.get(prec, {}).get("enabled", False) is True and cfg.students.precision not in ("auto", prec):
            raise ConfigError(f"DeepSpeed config enables {prec} but --precision is {cfg.students.precision}: "
                              "make them agree")
    ds["train_micro_batch_size_per_gpu"] = bs
    ds["train_batch_size"] = bs * accum * accelerator.num_processes
    if ds.get("gradient_clipping", "auto") == "auto":
        ds["gradient_clipping"] = cfg.optim.max_grad_norm
    if ds["gradient_clipping"] and not cfg.students.is_sft:  # DDP and one process clip each student on its own
        accelerator.print("note: DeepSpeed clips ONE gradient norm over both students; --max_grad_norm 0 turns it off")


def zero_stage(accelerator) -> int:
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    return int(plugin.zero_stage) if plugin is not None else 0


def check_route_styles(text: str, examples: list[dict]) -> None:
    """``--route_styles`` may only name styles that some training path has (a typo would silently
    train both students on that style): raises naming the unknown style and the styles present."""
    from distill.router.config import parse_route_styles

    present = sorted({str(e.get("style")) for e in examples})
    unknown = [s for s in parse_route_styles(text) if s not in present]
    if unknown:
        raise ConfigError(f"--route_styles names {', '.join(map(repr, unknown))}, which no training path has "
                          f"(styles in the data: {', '.join(present)})")


def build_router_and_peer(cfg: TrainConfig, dataset, s1, s2, tok1, tok2, outdir: Path, accelerator):
    """The router (with the dataset's path embeddings filled in) and the peer module, or ``None``s."""
    router = peer = None
    if cfg.router.routing == "styles":  # a fixed assignment by style: no path embeddings needed
        from distill.router.build import build_router

        check_route_styles(cfg.router.route_styles, dataset.examples)
        router = build_router(cfg.router, 0, seed=cfg.optim.seed)
    elif cfg.router.routing != "all":
        from distill.router.build import build_router
        from distill.router.encoder import PathEmbedder, path_text

        texts = [path_text(e["question_text"], e["response"]) for e in dataset.examples]
        with accelerator.main_process_first():  # rank 0 fills the cache, the others read it
            emb = PathEmbedder(cfg.router.encoder, outdir / "emb_cache").embed(texts)
        dataset.route_emb = emb.float()
        router = build_router(cfg.router, int(emb.shape[1]), seed=cfg.optim.seed)
    if cfg.peer.enabled and s2 is not None:
        from distill.peer.build import build_peer

        peer = build_peer(cfg.peer, s1, s2, tok1, tok2)
    return router, peer


def param_groups(model: MixtureModel, cfg: TrainConfig) -> list[dict[str, Any]]:
    """One AdamW group per trainable student (its own lr) and one for router + peer (``lr_router``)."""
    groups = []
    for name, lr, frozen in (("student1", cfg.optim.lr_s1, cfg.students.freeze_s1),
                             ("student2", cfg.optim.lr_s2, cfg.students.freeze_s2)):
        sub = getattr(model, name)
        if sub is None:
            continue
        if frozen:
            sub.requires_grad_(False)
            continue
        params = [p for p in sub.parameters() if p.requires_grad]
        if params:
            groups.append({"params": params, "lr": lr, "name": name})
    rest = [p for sub in (model.router, model.peer) if sub is not None for p in sub.parameters() if p.requires_grad]
    if rest:
        groups.append({"params": rest, "lr": cfg.optim.lr_router, "name": "router_peer"})
    if not groups:
        raise ConfigError("no trainable parameters (both students frozen and no router/peer)")
    return groups


def clip_per_group(accelerator, optimizer, max_norm: float) -> None:
    """Clip each optimizer group's gradients (student 1, student 2, router + peer: see
    :func:`param_groups`) to ``max_norm`` on its own.

    Why not one norm over everything: then student 2's gradient norm scales student 1's step, and two
    students trained "separately" in one mixture would not train as they do alone. DeepSpeed clips
    inside its engine, over all parameters (its ``gradient_clipping``): there this is a no-op.
    """
    from accelerate.utils import DistributedType
    from torch.nn.utils import clip_grad_norm_

    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        return
    accelerator.unscale_gradients()  # once per step (fp16 loss scaling), before any norm is taken
    for group in optimizer.param_groups:
        clip_grad_norm_(group["params"], max_norm)


@dataclass
class Run:
    """The prepared pieces of one training run (see :func:`setup_run`)."""

    cfg: TrainConfig
    accelerator: Any
    model: Any  # the prepared MixtureModel (DDP / DeepSpeed wrapper)
    unwrapped: MixtureModel
    optimizer: Any
    scheduler: Any
    dataset: Any
    tokenizers: dict[str, Any]
    lengths: list[int]
    total_steps: int

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This rank's micro-batches of ``epoch`` (path indices), the same on every resume."""
        from distill.students.data import epoch_batches

        world = self.accelerator.num_processes
        batches = epoch_batches(self.lengths, self.cfg.optim.bs, seed=self.cfg.optim.seed, epoch=epoch,
                                world=world, multiple=self.cfg.optim.grad_accum)
        return batches[self.accelerator.process_index::world]

    def collate(self, indices: list[int]) -> dict[str, Any]:
        return _to_device(self.dataset.collate(indices), self.accelerator.device)


def _to_device(obj, device):
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    return obj


def setup_run(cfg: TrainConfig, examples: list[dict[str, Any]]) -> Run:
    """Accelerator, students, the path dataset over ``examples`` (from :func:`validate_inputs`), router,
    peer, optimizer and schedule, prepared for the loop."""
    import torch
    from accelerate.utils import set_seed
    from transformers import get_cosine_schedule_with_warmup

    from distill.students.data import PathDataset, context_window
    from distill.students.load import load_student

    outdir = Path(cfg.runtime.outdir)
    accelerator = make_accelerator(cfg)
    deepspeed_checks(accelerator, cfg)
    if accelerator.is_main_process:
        outdir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(outdir / "train_config.json", json.dumps(cfg.to_flat(), indent=2) + "\n")
    set_seed(cfg.optim.seed)

    dev_idx = accelerator.local_process_index if torch.cuda.is_available() else None
    st = cfg.students
    s1, tok1 = load_student(st.model1, st, cfg.lora, flag="--model1", device_index=dev_idx)
    s2, tok2 = (None, None) if st.is_sft else load_student(st.model2, st, cfg.lora, flag="--model2",
                                                           device_index=dev_idx)
    if cfg.optim.neftune_alpha > 0:  # training-mode forwards only (distill.students.neftune)
        from distill.students.neftune import add_neftune

        for student in (s1, s2):
            if student is not None:
                add_neftune(student, cfg.optim.neftune_alpha)
    tokenizers = {"s1": tok1} if s2 is None else {"s1": tok1, "s2": tok2}
    max_lens = {k: min(cfg.data.max_len, context_window(m.config) or cfg.data.max_len)
                for k, m in (("s1", s1), ("s2", s2)) if m is not None}
    dataset = PathDataset(examples, tokenizers, max_lens)
    dropped = {k: v for k, v in dataset.dropped.items() if v}
    if dropped and accelerator.is_main_process:
        accelerator.print(f"warning: paths whose answer does not fit the token budget, dropped for that student "
                          f"(per style): {dropped}; raise --max_len (train_summary.json: truncation)")
    router, peer = build_router_and_peer(cfg, dataset, s1, s2, tok1, tok2, outdir, accelerator)
    model = MixtureModel(s1, s2, router, peer, peer_scope=cfg.peer.scope)
    optimizer = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.optim.lr_s1, weight_decay=cfg.optim.weight_decay)

    run = Run(cfg, accelerator, model, model, optimizer, None, dataset, tokenizers,
              [dataset.length(i) for i in range(len(dataset))], 0)
    steps_per_epoch = len(run.epoch_batches(0)) // cfg.optim.grad_accum
    run.total_steps = min(steps_per_epoch * cfg.optim.epochs, cfg.optim.max_steps or math.inf)
    scheduler = get_cosine_schedule_with_warmup(optimizer, math.ceil(cfg.optim.warmup_ratio * run.total_steps),
                                                run.total_steps)
    run.model, run.optimizer, run.scheduler = accelerator.prepare(model, optimizer, scheduler)
    run.unwrapped = accelerator.unwrap_model(run.model)
    # Weights were initialised from one seed on every rank (and DDP / DeepSpeed broadcast rank 0's);
    # from here each rank draws its own Gumbel noise and dropout masks: seed + rank (a resume restores
    # every rank's RNG state from the checkpoint).
    set_seed(cfg.optim.seed, device_specific=True)
    return run
