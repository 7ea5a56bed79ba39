"""Loading a student: base causal LM (optionally 4/8-bit) + LoRA adapter + its own tokenizer.

Every failure a user can cause (missing path, quantisation without CUDA/bitsandbytes,
a LoRA target that matches nothing) becomes a one-line :class:`ConfigError` before any
training starts.
"""

from __future__ import annotations

import os
from pathlib import Path

from distill.errors import ConfigError


def check_model_ref(ref: str, flag: str) -> None:
    """A path-looking reference must exist; a bare ``org/name`` is treated as a hub name."""
    looks_local = ref.startswith((".", "/", "~")) or os.sep in ref.strip("/").split("/", 1)[-1] or Path(ref).exists()
    if looks_local and not Path(ref).expanduser().is_dir():
        raise ConfigError(f"{flag} {ref}: no such model folder")
    if looks_local and not (Path(ref).expanduser() / "config.json").is_file():
        raise ConfigError(f"{flag} {ref}: not a model folder (no config.json)")


def check_quantization(cfg) -> None:
    """``--load_in_4bit/8bit`` needs bitsandbytes and a CUDA GPU; say so before loading anything."""
    if not (cfg.load_in_4bit or cfg.load_in_8bit):
        return
    flag = "--load_in_4bit" if cfg.load_in_4bit else "--load_in_8bit"
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:  # ImportError or a broken native library
        raise ConfigError(f"{flag} needs bitsandbytes ({type(exc).__name__}: {exc}); pip install bitsandbytes "
                          "or drop the flag") from None
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(f"{flag} (QLoRA) needs a CUDA GPU; this machine has none: drop the flag to train in "
                          "full precision")


def compute_dtype():
    import torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16 if torch.cuda.is_available() else torch.float32


def num_layers(model_config) -> int | None:
    for attr in ("num_hidden_layers", "n_layer", "num_layers"):
        v = getattr(model_config, attr, None)
        if isinstance(v, int):
            return v
    return None


def lora_config(cfg, model_config):
    """The LoRA config for a student: rank/alpha/dropout/targets, optionally top-N layers only."""
    from peft import LoraConfig

    kwargs = {}
    if cfg.lora_top_layers is not None:
        n = num_layers(model_config)
        if n is None:
            raise ConfigError("--lora_top_layers: cannot tell how many layers this model has; drop the flag")
        top = min(cfg.lora_top_layers, n)
        kwargs["layers_to_transform"] = list(range(n - top, n))
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=cfg.lora_target_modules, bias="none", task_type="CAUSAL_LM", **kwargs)


def load_student(ref: str, cfg, *, flag: str = "--model1", device_index: int | None = None):
    """Load base model + fresh LoRA adapter. Returns ``(peft_model, tokenizer)``.

    With 4/8-bit, the base goes onto ``device_index`` (each process its own GPU) and is
    prepared for k-bit training (QLoRA); otherwise it loads in float32 on CPU and Accelerate
    moves it (mixed precision is applied by autocast, keeping fp32 master weights).
    """
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    from distill.students.tokenizer import load_tokenizer

    check_model_ref(ref, flag)
    kwargs: dict = {"dtype": torch.float32}
    if cfg.load_in_4bit or cfg.load_in_8bit:
        from transformers import BitsAndBytesConfig

        cd = compute_dtype()
        q = (BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=cd,
                                bnb_4bit_use_double_quant=True, bnb_4bit_quant_storage=cd)
             if cfg.load_in_4bit else BitsAndBytesConfig(load_in_8bit=True))
        kwargs = {"quantization_config": q, "dtype": cd,
                  "device_map": {"": device_index if device_index is not None else 0}}
    try:
        tok = load_tokenizer(ref)
        model = AutoModelForCausalLM.from_pretrained(ref, **kwargs)
    except OSError as exc:
        raise ConfigError(f"{flag} {ref}: cannot load model ({str(exc).splitlines()[0]})") from None
    if cfg.load_in_4bit or cfg.load_in_8bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    elif cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    try:
        peft_model = get_peft_model(model, lora_config(cfg, model.config))
    except ValueError as exc:
        raise ConfigError(f"{flag} {ref}: LoRA targets {cfg.lora_targets!r} do not fit this model "
                          f"({str(exc).splitlines()[0]}); set --lora_targets") from None
    return peft_model, tok
