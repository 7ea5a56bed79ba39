"""``TrainConfig``: every knob of ``launch/train_moe.py``, validated in one place.

Built from an optional YAML file (``--config``) overlaid with command-line flags; both
accept ``snake_case`` and ``hyphen-case`` keys, and booleans accept ``true/false/1/0/yes/no``
(the research scripts pass ``--is_quality true``). The command-line parser is generated
from the dataclass fields, so a field added here is a flag everywhere, with its help text
taken from the field's ``help`` metadata. ``__post_init__`` rejects bad combinations with a
:class:`~distill.errors.ConfigError` that says what to change, before any model loads.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

from distill.errors import ConfigError


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """Configuration of one training run (two LoRA students, optional router and peer teaching)."""

    # --- what to train -------------------------------------------------------------------
    task: str = _f("gsm8k", "task name from distill.data.tasks (decides prompts and the answer verifier)")
    model1: str = _f("", "student 1: hub name or local folder of a causal LM")
    model2: str = _f("", "student 2: hub name or local folder (ignored with --is_sft)")
    outdir: str = _f("runs/train", "output folder: checkpoints/, student1/, student2/, metrics.jsonl, eval/")
    config: str | None = _f(None, "YAML file with any of these keys; command-line flags override it")
    # --- data ----------------------------------------------------------------------------
    data_root: str = _f("./data", "research layout root: <root>/<task>/train/*.correct.jsonl and test/*.jsonl")
    train_file: str | None = _f(None, "explicit training file (*.correct.jsonl, *.enriched.jsonl or *.judged.jsonl)")
    test_file: str | None = _f(None, "explicit test file (source rows); default <root>/<task>/test/*.jsonl")
    is_quality: bool = _f(True, "true: train on verified paths (*.correct.jsonl); false: all paths of *.enriched.jsonl")
    judged_only: bool = _f(False, "train only on judge-approved paths (*.judged.jsonl, same schema as correct)")
    sample_size: int | None = _f(None, "use only the first N source rows (all their paths); None = all")
    max_len: int = _f(1024, "cap on tokens per example (each model's context window also applies)")
    # --- optimisation --------------------------------------------------------------------
    epochs: int = _f(3, "training epochs")
    bs: int = _f(4, "per-process micro-batch size (paths per step)")
    grad_accum: int = _f(1, "gradient accumulation steps per optimizer step")
    lr_s1: float = _f(2e-4, "learning rate of student 1's LoRA parameters")
    lr_s2: float = _f(2e-4, "learning rate of student 2's LoRA parameters")
    lr_misc: float = _f(1e-3, "learning rate of router and peer-module parameters")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    warmup_ratio: float = _f(0.03, "fraction of optimizer steps with linear warm-up (then cosine decay)")
    max_grad_norm: float = _f(1.0, "gradient clipping norm (0 disables)")
    seed: int = _f(42, "seed for model init noise, LoRA init, dropout and data order")
    max_steps: int | None = _f(None, "stop after this many optimizer steps (smoke runs); None = full epochs")
    # --- students ------------------------------------------------------------------------
    is_sft: bool = _f(False, "SFT baseline: train student 1 only (model2 not loaded)")
    freeze_s1: bool = _f(False, "keep student 1 frozen (no optimizer group, no grads)")
    freeze_s2: bool = _f(False, "keep student 2 frozen (no optimizer group, no grads)")
    load_in_4bit: bool = _f(False, "QLoRA: load base weights in 4-bit NF4 via bitsandbytes (CUDA, or its CPU backend)")
    load_in_8bit: bool = _f(False, "load base weights in 8-bit via bitsandbytes (CUDA, or its CPU backend)")
    lora_r: int = _f(16, "LoRA rank")
    lora_alpha: int = _f(32, "LoRA alpha (scale = alpha / r)")
    lora_dropout: float = _f(0.05, "LoRA dropout")
    lora_targets: str = _f("all-linear", "comma-separated module names for LoRA, or 'all-linear'")
    lora_top_layers: int | None = _f(None, "apply LoRA only to the top N transformer layers; None = all")
    precision: str = _f("auto", "auto | fp32 | bf16 | fp16 (auto: the accelerate config's choice)")
    gradient_checkpointing: bool = _f(False, "trade compute for memory in the students")
    # --- routing and peer teaching (implemented in distill.router / distill.peer) ----------
    routing: str = _f("all", "all: every path trains both students; learned: CoT router; random: ablation")
    is_router: bool | None = _f(None, "research alias: true => --routing learned, false => --routing all")
    encoder: str = _f("minilm", "router path encoder: 'minilm' or a local encoder folder")
    gumbel_tau: float = _f(1.0, "initial Gumbel-softmax temperature of the router")
    gumbel_tau_min: float = _f(0.1, "final Gumbel-softmax temperature (annealed over training)")
    balance_weight: float = _f(0.1, "weight of the router's load-balance loss")
    use_kl: bool = _f(False, "peer teaching: students learn from their weighted ensemble")
    kl_weight: float = _f(0.1, "weight of the peer-teaching loss")
    peer_loss: str = _f("auto", "auto | kl | uld | hidden: how students with different tokenizers teach each other")
    peer_temperature: float = _f(2.0, "softmax temperature of the peer-teaching loss")
    # --- checkpoints, logging, evaluation --------------------------------------------------
    save_every: int = _f(0, "accelerator.save_state every N optimizer steps (0: only at epoch ends)")
    save_total_limit: int = _f(3, "keep only the newest N step checkpoints (0 keeps all)")
    resume_from: str | None = _f(None, "checkpoint folder to resume from, or 'latest' (newest in outdir/checkpoints)")
    report_to: str = _f("none", "none | tensorboard | wandb (through accelerate trackers)")
    log_every: int = _f(1, "write metrics every N optimizer steps")
    eval_at_end: bool = _f(True, "evaluate both students and the ensemble on the test rows after training")
    eval_bs: int = _f(8, "evaluation batch size (prompts per generate call)")
    max_new_tokens: int = _f(256, "generation budget per answer at evaluation")
    eval_limit: int | None = _f(None, "evaluate only the first N test rows")

    def __post_init__(self) -> None:
        from distill.data.tasks import TASKS

        if self.task not in TASKS:
            raise ConfigError(f"unknown --task {self.task!r}; valid tasks: {', '.join(sorted(TASKS))}")
        if not self.model1:
            raise ConfigError("--model1 is required (a hub name or a local model folder)")
        if not self.is_sft and not self.model2:
            raise ConfigError("--model2 is required (or pass --is_sft true to train one student)")
        if self.is_router is not None:
            self.routing = "learned" if self.is_router else "all"
        if self.routing not in ("all", "learned", "random"):
            raise ConfigError(f"--routing must be all, learned or random, got {self.routing!r}")
        if self.peer_loss not in ("auto", "kl", "uld", "hidden"):
            raise ConfigError(f"--peer_loss must be auto, kl, uld or hidden, got {self.peer_loss!r}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ConfigError(f"--precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        if self.report_to not in ("none", "tensorboard", "wandb"):
            raise ConfigError(f"--report_to must be none, tensorboard or wandb, got {self.report_to!r}")
        if self.load_in_4bit and self.load_in_8bit:
            raise ConfigError("choose one of --load_in_4bit and --load_in_8bit, not both")
        if self.is_sft and (self.routing != "all" or self.use_kl):
            raise ConfigError("--is_sft trains one student: set --routing all and --use_kl false")
        if self.freeze_s1 and (self.freeze_s2 or self.is_sft):
            raise ConfigError("nothing would train: unfreeze a student (--freeze_s1/--freeze_s2 false)")
        for name in ("epochs", "bs", "grad_accum", "eval_bs", "lora_r", "max_len", "max_new_tokens", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr_s1", "lr_s2", "lr_misc"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"--warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"--lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.lora_top_layers is not None and self.lora_top_layers < 1:
            raise ConfigError(f"--lora_top_layers must be >= 1 (or omitted for all layers), got {self.lora_top_layers}")
        if self.save_every < 0 or self.save_total_limit < 0:
            raise ConfigError("--save_every and --save_total_limit must be >= 0")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"--max_steps must be >= 1, got {self.max_steps}")
        if self.sample_size is not None and self.sample_size < 1:
            raise ConfigError(f"--sample_size must be >= 1, got {self.sample_size}")
        if self.gumbel_tau <= 0 or not 0 < self.gumbel_tau_min <= self.gumbel_tau:
            raise ConfigError(f"need 0 < --gumbel_tau_min <= --gumbel_tau, got {self.gumbel_tau_min} and {self.gumbel_tau}")

    @property
    def lora_target_modules(self) -> str | list[str]:
        t = self.lora_targets.strip()
        return t if t == "all-linear" else [m.strip() for m in t.split(",") if m.strip()]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
def parse_bool(value: Any) -> bool:
    """``true/false/1/0/yes/no/on/off`` (any case) -> bool; ConfigError otherwise."""
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in ("true", "1", "yes", "y", "on"):
        return True
    if s in ("false", "0", "no", "n", "off"):
        return False
    raise ConfigError(f"expected true or false, got {value!r}")


def _base_type(tp) -> type:
    """``int | None`` -> int, ``str`` -> str, ``bool | None`` -> bool."""
    if isinstance(tp, str):  # postponed annotations
        tp = eval(tp, {"int": int, "float": float, "str": str, "bool": bool, "None": type(None)})  # noqa: S307
    if get_origin(tp) is not None or type(tp).__name__ == "UnionType":
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def _coerce(name: str, value: Any, tp: type) -> Any:
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and tp is not str):
        return None
    try:
        if tp is bool:
            return parse_bool(value)
        if tp is int:
            return int(value)
        if tp is float:
            return float(value)
        return str(value)
    except (ValueError, ConfigError) as exc:
        raise ConfigError(f"--{name}: {exc}") from None


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def build_arg_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """One flag per field, spelled ``--a_b`` and ``--a-b``; defaults suppressed so that only
    flags actually given override the YAML file."""
    parser = parser or argparse.ArgumentParser(
        prog="train_moe.py", description="Train two LoRA students on teacher reasoning paths.",
        argument_default=argparse.SUPPRESS)
    for name, f in FIELDS.items():
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        default = f.default
        parser.add_argument(*flags, dest=name, metavar=_base_type(f.type).__name__.upper(),
                            default=argparse.SUPPRESS, help=f"{f.metadata['help']} (default: {default})")
    return parser


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config {path}: no such file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config {path}: invalid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a mapping of option: value")
    return data


def config_from_sources(yaml_values: dict[str, Any], cli_values: dict[str, Any]) -> TrainConfig:
    """Merge YAML then CLI (hyphens normalised, types coerced) into a validated TrainConfig."""
    merged: dict[str, Any] = {}
    for source, values in (("config file", yaml_values), ("command line", cli_values)):
        for key, value in values.items():
            name = key.replace("-", "_")
            if name not in FIELDS:
                raise ConfigError(f"unknown option {key!r} in {source}; see train_moe.py --help")
            merged[name] = _coerce(name, value, _base_type(FIELDS[name].type))
    return TrainConfig(**merged)


def parse_train_args(argv: list[str] | None = None) -> TrainConfig:
    """``train_moe.py`` argv -> TrainConfig (YAML ``--config`` first, then the flags)."""
    ns = build_arg_parser().parse_args(argv)
    cli = vars(ns)
    yaml_values = load_yaml(cli["config"]) if cli.get("config") else {}
    return config_from_sources(yaml_values, cli)
