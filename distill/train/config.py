"""``TrainConfig``: every knob of ``distill train``, typed by section and validated in one place.

A run's configuration has eight sections, each a small dataclass that checks its own ranges in
``__post_init__``: :class:`DataConfig`, :class:`StudentsConfig`, :class:`LoraConfig`,
:class:`OptimConfig`, :class:`RouterConfig`, :class:`PeerConfig`, :class:`EvalConfig` and
:class:`RuntimeConfig`. :class:`TrainConfig` holds them and checks the combinations. Every check
runs when the config is built, so a bad value fails with one :class:`~distill.errors.ConfigError`
naming the flag and what to change -- before any model loads or any path is embedded.

Users write **flat** keys, on the command line (``--balance_weight 1.0``, also ``--balance-weight``)
and in YAML (``balance_weight: 1.0``); YAML may also nest them by section (``router: {balance_weight:
1.0}``). Each field's flat name is its ``flag`` metadata (default: the field name). The command-line
parser is generated from the fields, so a field added here is a flag everywhere. Research-code
flags stay as aliases (:data:`ALIAS_HELP`): ``--is_router true`` = ``--routing learned``, ``--use_kl
true/false`` = ``--peer auto/none``, ``--peer_loss X`` = ``--peer X``, ``--kl_weight`` =
``--peer_weight``, ``--lr_misc`` = ``--lr_router``. Booleans accept ``true/false/1/0/yes/no``.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

from distill.errors import ConfigError, DistillError

ROUTING_MODES = ("learned", "all", "random")
#: ``auto``: ``kl`` when both students share one vocabulary, else ``hidden``; ``none``: no peer teaching
PEER_MODES = ("auto", "kl", "hidden", "uld", "none")


def _f(default, help: str, flag: str | None = None):
    return field(default=default, metadata={"help": help, "flag": flag})


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _at_least(section, names: tuple[str, ...], low: float, strict: bool = False) -> None:
    for name in names:
        value = getattr(section, name)
        if value is None:
            continue
        flag = flag_of(type(section), name)
        if strict:
            _need(value > low, f"--{flag} must be > {low}, got {value}")
        else:
            _need(value >= low, f"--{flag} must be >= {low}, got {value}")


def _one_of(section, name: str, valid: tuple[str, ...]) -> None:
    value = getattr(section, name)
    _need(value in valid, f"--{flag_of(type(section), name)} must be one of {', '.join(valid)}, got {value!r}")


# ------------------------------------------------------------------------------------ sections
@dataclass
class DataConfig:
    """Which task and which paths to train on, and the token budget per path."""

    task: str = _f("gsm8k", "task name from distill.data.tasks (decides prompts and the answer verifier)")
    data_root: str = _f("./data", "research layout root: <root>/<task>/train/*.correct.jsonl and test/*.jsonl")
    train_file: str | None = _f(None, "explicit training file (*.correct.jsonl, *.enriched.jsonl or *.judged.jsonl)")
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
    max_grad_norm: float = _f(1.0, "gradient clipping norm (0 disables)")
    seed: int = _f(42, "seed for model init noise, LoRA init, dropout and data order")
    max_steps: int | None = _f(None, "stop after this many optimizer steps (smoke runs); None = full epochs")

    def __post_init__(self) -> None:
        _at_least(self, ("epochs", "bs", "grad_accum", "max_steps"), 1)
        _at_least(self, ("lr_s1", "lr_s2", "lr_router"), 0, strict=True)
        _at_least(self, ("weight_decay", "max_grad_norm"), 0)
        _need(0 <= self.warmup_ratio < 1, f"--warmup_ratio must be in [0, 1), got {self.warmup_ratio}")


@dataclass
class RouterConfig:
    """The CoT router: which student learns each path."""

    routing: str = _f("all", "learned: CoT router over path embeddings; all: every path trains both "
                             "students (no routing); random: fixed random assignment (ablation)")
    encoder: str = _f("minilm", "router path encoder: 'minilm' or a local encoder folder")
    gumbel_tau: float = _f(1.0, "initial Gumbel-softmax temperature of the router")
    gumbel_tau_min: float = _f(0.1, "final Gumbel-softmax temperature (annealed over training)")
    balance_weight: float = _f(0.1, "weight of the router's load-balance loss")
    hidden: int = _f(128, "width of the router's MLP", flag="router_hidden")

    def __post_init__(self) -> None:
        _one_of(self, "routing", ROUTING_MODES)
        _need(self.gumbel_tau > 0 and 0 < self.gumbel_tau_min <= self.gumbel_tau,
              f"need 0 < --gumbel_tau_min <= --gumbel_tau, got {self.gumbel_tau_min} and {self.gumbel_tau}")
        _at_least(self, ("balance_weight",), 0)
        _at_least(self, ("hidden",), 1)


@dataclass
class PeerConfig:
    """Peer teaching: each student learns from a learned, per-sample weighted ensemble of both."""

    mode: str = _f("none", "kl: token KL toward the ensemble (students share one tokenizer); hidden: "
                           "character-aligned projected hidden states (any tokenizers); uld: universal logit "
                           "distillation (any tokenizers); auto: kl if the vocabularies match, else hidden; "
                           "none: no peer teaching", flag="peer")
    weight: float = _f(0.1, "weight of the peer-teaching loss", flag="peer_weight")
    temperature: float = _f(2.0, "softmax temperature of the peer-teaching loss", flag="peer_temperature")
    dim: int = _f(64, "shared projection size of --peer hidden", flag="peer_dim")

    def __post_init__(self) -> None:
        _one_of(self, "mode", PEER_MODES)
        _at_least(self, ("weight",), 0)
        _at_least(self, ("temperature",), 0, strict=True)
        _at_least(self, ("dim",), 1)

    @property
    def enabled(self) -> bool:
        return self.mode != "none"


@dataclass
class EvalConfig:
    """Evaluation of both students and their ensemble after training."""

    at_end: bool = _f(True, "evaluate both students and the ensemble on the test rows after training",
                      flag="eval_at_end")
    bs: int = _f(8, "evaluation batch size (prompts per generate call)", flag="eval_bs")
    max_new_tokens: int = _f(256, "generation budget per answer at evaluation")
    limit: int | None = _f(None, "evaluate only the first N test rows", flag="eval_limit")

    def __post_init__(self) -> None:
        _at_least(self, ("bs", "max_new_tokens", "limit"), 1)


@dataclass
class RuntimeConfig:
    """Where outputs go, checkpoints, resume and logging."""

    outdir: str = _f("runs/train", "output folder: checkpoints/, student1/, student2/, metrics.jsonl, eval/")
    config: str | None = _f(None, "YAML file (or a built-in config name) with any of these keys; flags override it")
    save_every: int = _f(0, "accelerator.save_state every N optimizer steps (0: only at epoch ends)")
    save_total_limit: int = _f(3, "keep only the newest N step checkpoints (0 keeps all)")
    resume_from: str | None = _f(None, "checkpoint folder to resume from, or 'latest' (newest in outdir/checkpoints)")
    report_to: str = _f("none", "none | tensorboard | wandb (through accelerate trackers)")
    log_every: int = _f(1, "write metrics every N optimizer steps")

    def __post_init__(self) -> None:
        _at_least(self, ("save_every", "save_total_limit"), 0)
        _at_least(self, ("log_every",), 1)
        _one_of(self, "report_to", ("none", "tensorboard", "wandb"))


SECTIONS: dict[str, type] = {"data": DataConfig, "students": StudentsConfig, "lora": LoraConfig,
                             "optim": OptimConfig, "router": RouterConfig, "peer": PeerConfig,
                             "eval": EvalConfig, "runtime": RuntimeConfig}


@dataclass
class TrainConfig:
    """One training run: the sections above, plus the checks that span sections."""

    data: DataConfig
    students: StudentsConfig
    lora: LoraConfig = field(default_factory=LoraConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    router: RouterConfig = field(default_factory=RouterConfig)
    peer: PeerConfig = field(default_factory=PeerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def __post_init__(self) -> None:
        if self.students.is_sft:
            _need(self.router.routing == "all" and not self.peer.enabled,
                  "--is_sft trains one student: set --routing all and --peer none")

    @classmethod
    def from_flat(cls, **values: Any) -> "TrainConfig":
        """Build from flat keys (``task=..., lora_r=8, balance_weight=1.0``; aliases allowed), as the
        command line and YAML files spell them. Values are coerced to the fields' types."""
        return config_from_sources({}, values)

    def to_flat(self) -> dict[str, Any]:
        """Flat ``{flag: value}``: the form of ``train_config.json``, loadable again with ``--config``."""
        return {flag: getattr(getattr(self, sec), name) for flag, (sec, name) in FLAT.items()}

    def to_dict(self) -> dict[str, Any]:
        """Nested ``{section: {field: value}}``."""
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------ flat key table
def flag_of(section_type: type, name: str) -> str:
    f = {f.name: f for f in dataclasses.fields(section_type)}[name]
    return f.metadata.get("flag") or name


#: flat key -> (section, field name), in section order
FLAT: dict[str, tuple[str, str]] = {
    flag_of(cls, f.name): (sec, f.name) for sec, cls in SECTIONS.items() for f in dataclasses.fields(cls)}


#: research-code and old flag names, resolved by :func:`_flatten`
ALIAS_HELP = {
    "is_router": "research alias: true => --routing learned, false => --routing all",
    "use_kl": "research alias: true => --peer auto (or the --peer/--peer_loss given), false => --peer none",
    "peer_loss": "old name of --peer",
    "kl_weight": "old name of --peer_weight",
    "lr_misc": "old name of --lr_router",
}
_RENAMED = {"peer_loss": "peer", "kl_weight": "peer_weight", "lr_misc": "lr_router"}
_PEER_ON = "<use_kl true>"  # --use_kl true: keep a mode given elsewhere, else auto


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


def _field(flat: str) -> dataclasses.Field:
    sec, name = FLAT[flat]
    return {f.name: f for f in dataclasses.fields(SECTIONS[sec])}[name]


def _coerce(flat: str, value: Any) -> Any:
    tp = _base_type(_field(flat).type)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and tp is not str):
        return None
    try:
        if tp is bool:
            return parse_bool(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"expected an integer, got {value!r}")
            return int(value)
        if tp is float:
            return float(value)
        return str(value)
    except (ValueError, ConfigError) as exc:
        raise ConfigError(f"--{flat}: {exc}") from None


def _unknown(key: str, source: str) -> ConfigError:
    known = list(FLAT) + list(ALIAS_HELP) + list(SECTIONS)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else "; see distill train --help"
    return ConfigError(f"unknown option {key!r} in {source}{hint}")


def _flatten(values: dict[str, Any], source: str) -> dict[str, Any]:
    """Normalise hyphens, open nested sections and resolve aliases; unknown keys are errors.

    A canonical key beats its old name in the same source; ``is_router`` sets ``routing`` (as the
    research code did); ``use_kl false`` turns peer teaching off, ``use_kl true`` turns it on in
    the mode given by ``peer``/``peer_loss`` (any source), else ``auto``."""
    out: dict[str, Any] = {}
    aliases: dict[str, Any] = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name in SECTIONS and isinstance(value, dict):
            for sub, sub_value in value.items():
                sub = str(sub).replace("-", "_")
                flat = next((fl for fl, (s, n) in FLAT.items() if s == name and sub in (n, fl)), None)
                if flat is None:
                    raise _unknown(f"{name}.{sub}", source)
                out[flat] = sub_value
        elif name in FLAT:
            out[name] = value
        elif name in ALIAS_HELP:
            aliases[name] = value
        else:
            raise _unknown(str(key), source)
    for old, new in _RENAMED.items():
        if old in aliases:
            out.setdefault(new, aliases[old])
    try:
        if "is_router" in aliases:
            out["routing"] = "learned" if parse_bool(aliases["is_router"]) else "all"
        if "use_kl" in aliases:
            out["peer"] = out.get("peer", _PEER_ON) if parse_bool(aliases["use_kl"]) else "none"
    except ConfigError as exc:
        raise ConfigError(f"{source}: --is_router/--use_kl: {exc}") from None
    return out


def config_from_sources(yaml_values: dict[str, Any], cli_values: dict[str, Any]) -> TrainConfig:
    """Merge YAML then command line (hyphens, sections and aliases normalised, types coerced) into a
    validated TrainConfig."""
    merged: dict[str, Any] = {}
    for source, values in (("config file", yaml_values), ("command line", cli_values)):
        for flat, value in _flatten(values, source).items():
            if value == _PEER_ON:
                value = merged["peer"] if merged.get("peer") not in (None, "none") else "auto"
            merged[flat] = _coerce(flat, value)
    parts: dict[str, dict[str, Any]] = {sec: {} for sec in SECTIONS}
    for flat, value in merged.items():
        sec, name = FLAT[flat]
        parts[sec][name] = value
    return TrainConfig(**{sec: SECTIONS[sec](**kw) for sec, kw in parts.items()})


# ------------------------------------------------------------------------------------ parsing
def build_arg_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """One flag per field, spelled ``--a_b`` and ``--a-b``, grouped by section; defaults suppressed so
    that only flags actually given override the YAML file."""
    parser = parser or argparse.ArgumentParser(
        prog="distill train", description="Train two LoRA students on teacher reasoning paths.",
        argument_default=argparse.SUPPRESS)
    for sec, cls in SECTIONS.items():
        group = parser.add_argument_group(sec, (cls.__doc__ or "").strip().splitlines()[0])
        for f in dataclasses.fields(cls):
            flat = flag_of(cls, f.name)
            flags = [f"--{flat}"] + ([f"--{flat.replace('_', '-')}"] if "_" in flat else [])
            group.add_argument(*flags, dest=flat, metavar=_base_type(f.type).__name__.upper(),
                               default=argparse.SUPPRESS, help=f"{f.metadata['help']} (default: {f.default})")
    group = parser.add_argument_group("aliases", "research-code and old flag names")
    for name, help_ in ALIAS_HELP.items():
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        group.add_argument(*flags, dest=name, metavar="VALUE", default=argparse.SUPPRESS, help=help_)
    return parser


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A run YAML as a mapping; ``path`` may also name a built-in config (``distill.configs``)."""
    import yaml

    p = _resolve_config(str(path))
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config {path}: invalid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a mapping of option: value")
    return data


def _resolve_config(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.is_file():
        return p
    try:
        from distill.configs import find_config
    except ImportError:
        raise ConfigError(f"--config {name_or_path}: no such file") from None
    return find_config(name_or_path, "train")


def config_from_cli(cli: dict[str, Any]) -> TrainConfig:
    """Parsed flags (``vars(namespace)`` of :func:`build_arg_parser`) -> TrainConfig, reading the
    YAML file named by ``config`` first."""
    yaml_values = load_yaml(cli["config"]) if cli.get("config") else {}
    return config_from_sources(yaml_values, cli)


def parse_train_args(argv: list[str] | None = None) -> TrainConfig:
    """``distill train`` argv -> TrainConfig (YAML ``--config`` first, then the flags)."""
    return config_from_cli(vars(build_arg_parser().parse_args(argv)))
