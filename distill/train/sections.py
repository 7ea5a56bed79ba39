"""The sections of a run's configuration that belong to training itself (the router's and the peer
module's sections live beside their code: :mod:`distill.router.config`, :mod:`distill.peer.config`).
Each checks its own ranges in ``__post_init__``; :mod:`distill.train.config` assembles them."""

from __future__ import annotations

from dataclasses import dataclass

from distill.errors import ConfigError, DistillError
from distill.options import at_least as _at_least
from distill.options import need as _need
from distill.options import one_of as _one_of
from distill.options import option as _f


@dataclass
class DataConfig:
    """Which task and which paths to train on, and the token budget per path."""

    task: str = _f("gsm8k", "task name from distill.data.tasks (decides prompts and the answer verifier)")
    data_root: str = _f("./data", "research layout root: <root>/<task>/train/*.correct.jsonl and test/*.jsonl")
    train_file: str | None = _f(None, "explicit training file(s), comma-separated: *.correct.jsonl, *.enriched.jsonl, "
                                "*.judged.jsonl, or a *.jsonl of messages rows (repair pairs)")
    test_file: str | None = _f(None, "explicit test file (source rows); default <root>/<task>/test/*.jsonl")
    is_quality: bool = _f(True, "true: train on verified paths (*.correct.jsonl); false: all paths of *.enriched.jsonl")
    judged_only: bool = _f(False, "train only on judge-approved paths (*.judged.jsonl, same schema as correct)")
    sample_size: int | None = _f(None, "use only the first N source rows (all their paths); None = all")
    max_len: int = _f(1024, "cap on tokens per example (each model's context window also applies)")

    def __post_init__(self) -> None:
        from distill.data.tasks import get_task

        try:
            get_task(self.task)
        except DistillError as exc:
            raise ConfigError(f"--task: {exc}") from None
        _at_least(self, ("sample_size", "max_len"), 1)


@dataclass
class StudentsConfig:
    """The two students: which models, how they load, which of them train."""

    model1: str = _f("", "student 1: hub name or local folder of a causal LM")
    model2: str = _f("", "student 2: hub name or local folder (ignored with --is_sft)")
    is_sft: bool = _f(False, "SFT baseline: train student 1 only (model2 not loaded)")
    freeze_s1: bool = _f(False, "keep student 1 frozen (no optimizer group, no grads)")
    freeze_s2: bool = _f(False, "keep student 2 frozen (no optimizer group, no grads)")
    load_in_4bit: bool = _f(False, "QLoRA: load base weights in 4-bit NF4 via bitsandbytes (CUDA, or its CPU backend)")
    load_in_8bit: bool = _f(False, "load base weights in 8-bit via bitsandbytes (CUDA, or its CPU backend)")
    precision: str = _f("auto", "auto | fp32 | bf16 | fp16 (auto: the accelerate config's choice)")
    gradient_checkpointing: bool = _f(False, "trade compute for memory in the students")

    def __post_init__(self) -> None:
        _need(bool(self.model1), "--model1 is required (a hub name or a local model folder)")
        _need(self.is_sft or bool(self.model2), "--model2 is required (or pass --is_sft true to train one student)")
        _one_of(self, "precision", ("auto", "fp32", "bf16", "fp16"))
        _need(not (self.load_in_4bit and self.load_in_8bit), "choose one of --load_in_4bit and --load_in_8bit, not both")
        _need(not (self.freeze_s1 and (self.freeze_s2 or self.is_sft)),
              "nothing would train: unfreeze a student (--freeze_s1/--freeze_s2 false)")


@dataclass
class LoraConfig:
    """The LoRA adapters of both students."""

    r: int = _f(16, "LoRA rank", flag="lora_r")
    alpha: int = _f(32, "LoRA alpha (scale = alpha / r)", flag="lora_alpha")
    dropout: float = _f(0.05, "LoRA dropout", flag="lora_dropout")
    targets: str = _f("all-linear", "comma-separated module names for LoRA, or 'all-linear'", flag="lora_targets")
    top_layers: int | None = _f(None, "apply LoRA only to the top N transformer layers; None = all",
                                flag="lora_top_layers")

    def __post_init__(self) -> None:
        _at_least(self, ("r", "alpha", "top_layers"), 1)
        _need(0 <= self.dropout < 1, f"--lora_dropout must be in [0, 1), got {self.dropout}")
        _need(bool(self.target_modules), "--lora_targets is empty: name modules (q_proj,v_proj) or 'all-linear'")

    @property
    def target_modules(self) -> str | list[str]:
        t = self.targets.strip()
        return t if t == "all-linear" else [m.strip() for m in t.split(",") if m.strip()]


@dataclass
class OptimConfig:
    """Steps, batches, learning rates and the schedule (AdamW, linear warm-up then cosine)."""

    epochs: int = _f(3, "training epochs")
    bs: int = _f(4, "per-process micro-batch size (paths per step)")
    grad_accum: int = _f(1, "gradient accumulation steps per optimizer step")
    lr_s1: float = _f(2e-4, "learning rate of student 1's LoRA parameters")
    lr_s2: float = _f(2e-4, "learning rate of student 2's LoRA parameters")
    lr_router: float = _f(1e-3, "learning rate of the router and the peer module (ensemble weights, projections)")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    warmup_ratio: float = _f(0.03, "fraction of optimizer steps with linear warm-up (then cosine decay)")
    max_grad_norm: float = _f(1.0, "gradient clipping norm, applied to each student (and to router + peer) on its own; "
                                   "under DeepSpeed one norm over all parameters; 0 disables")
    seed: int = _f(42, "seed for model init noise, LoRA init, dropout and data order")
    max_steps: int | None = _f(None, "stop after this many optimizer steps (smoke runs); None = full epochs")
    neftune_alpha: float = _f(0.0, "NEFTune: uniform noise U(-1,1) * A / sqrt(L*d) on both students' input embeddings "
                                   "during training only (L: the batch's padded length, d: hidden size); 0 = off")

    def __post_init__(self) -> None:
        _at_least(self, ("epochs", "bs", "grad_accum", "max_steps"), 1)
        _at_least(self, ("lr_s1", "lr_s2", "lr_router"), 0, strict=True)
        _at_least(self, ("weight_decay", "max_grad_norm", "neftune_alpha"), 0)
        _need(0 <= self.warmup_ratio < 1, f"--warmup_ratio must be in [0, 1), got {self.warmup_ratio}")


@dataclass
class EvalConfig:
    """Evaluation of both students and their ensemble after training."""

    at_end: bool = _f(True, "evaluate both students and the ensemble on the test rows after training",
                      flag="eval_at_end")
    bs: int = _f(8, "evaluation batch size (prompts per generate call)", flag="eval_bs")
    max_new_tokens: int | None = _f(None, "generation budget per answer at evaluation; None: each student's 99th "
                                          "percentile of its training completion lengths, at least 256")
    limit: int | None = _f(None, "evaluate only the first N test rows", flag="eval_limit")

    def __post_init__(self) -> None:
        _at_least(self, ("bs", "max_new_tokens", "limit"), 1)


@dataclass
class RuntimeConfig:
    """Where outputs go, checkpoints, resume and logging."""

    outdir: str = _f("runs/train", "output folder: checkpoints/, student1/, student2/, metrics.jsonl, eval/")
    config: str | None = _f(None, "YAML file (or a built-in config name) with any of these keys; flags override it")
    recipe: str = _f("custom", "full (the default method: learned routing + peer teaching) | routing_only | "
                               "peer_only | random_routing | separate | solo1 | solo2: the method's ablations and "
                               "baselines as presets; flags given explicitly still win")
    save_every: int = _f(0, "accelerator.save_state every N optimizer steps (0: only at epoch ends)")
    save_total_limit: int = _f(3, "keep only the newest N step checkpoints (0 keeps all)")
    resume_from: str | None = _f(None, "checkpoint folder to resume from, or 'latest' (newest in outdir/checkpoints)")
    report_to: str = _f("none", "none | tensorboard | wandb (through accelerate trackers)")
    log_every: int = _f(1, "write metrics every N optimizer steps")

    def __post_init__(self) -> None:
        _at_least(self, ("save_every", "save_total_limit"), 0)
        _at_least(self, ("log_every",), 1)
        _one_of(self, "report_to", ("none", "tensorboard", "wandb"))
