"""Loading a student: base causal LM (optionally 4/8-bit) + LoRA adapter + its own tokenizer.

Every failure a user can cause (missing path, quantisation without a working bitsandbytes,
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
    if not looks_local and not _in_hub_cache(ref):
        if _hub_offline():
            raise ConfigError(f"{flag} {ref}: not in the local Hugging Face cache and the hub is offline "
                              "(HF_HUB_OFFLINE): download it first or pass a local model folder")
        problem = _hub_unreachable()
        if problem:
            raise ConfigError(f"{flag} {ref}: not a local folder, not in the Hugging Face cache, and the hub "
                              f"cannot be reached ({problem}): pass a local model folder or download it first")


def _hub_offline() -> bool:
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the hub (``HF_ENDPOINT``, default huggingface.co) cannot be reached, or None if it can.

    One TCP connect with a short time-out, so a machine without network fails in a second instead of
    waiting for every download's retries. Behind a proxy (``HTTPS_PROXY``) the direct connect says
    nothing, so it is skipped (None)."""
    import socket
    from urllib.parse import urlsplit

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    url = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"
    return None


def _in_hub_cache(ref: str) -> bool:
    """A hub model whose ``config.json`` is in the local cache (what loading offline needs)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        return isinstance(try_to_load_from_cache(ref, "config.json"), str)
    except ValueError:  # not a valid repo id
        return False


def quant_device(device_index: int | None = None):
    """Where a quantised base lives: this process's GPU under CUDA, else the CPU.

    bitsandbytes >= 0.45 has a CPU backend (NF4 4-bit and int8 matmuls), so QLoRA also runs --
    slowly, but for real -- on CPU-only machines such as CI.
    """
    import torch

    if torch.cuda.is_available():
        return device_index if device_index is not None else 0
    return "cpu"


def _probe_bnb(bnb, four_bit: bool, device) -> None:
    """Quantise, run forward and backward through one tiny bnb layer on ``device``: a missing or
    broken backend fails here, in a fraction of a second, instead of halfway into model loading."""
    import warnings

    import torch

    cd = compute_dtype()
    layer = (bnb.nn.Linear4bit(16, 16, bias=False, compute_dtype=cd, quant_type="nf4") if four_bit
             else bnb.nn.Linear8bitLt(16, 16, bias=False, has_fp16_weights=False)).to(device)
    x = torch.randn(2, 16, dtype=cd, device=layer.weight.device, requires_grad=True)
    with warnings.catch_warnings():  # int8 on CPU warns that inputs are cast to float16: expected
        warnings.simplefilter("ignore")
        layer(x).float().sum().backward()
    if x.grad is None or not torch.isfinite(x.grad).all():
        raise RuntimeError("no finite gradient through the quantised layer")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def check_quantization(cfg) -> None:
    """``--load_in_4bit/8bit`` needs a bitsandbytes whose backend runs here (CUDA, or its CPU
    backend); say so in one line before loading anything."""
    if not (cfg.load_in_4bit or cfg.load_in_8bit):
        return
    flag = "--load_in_4bit" if cfg.load_in_4bit else "--load_in_8bit"
    try:
        import bitsandbytes as bnb
    except Exception as exc:  # ImportError or a broken native library
        raise ConfigError(f"{flag} needs bitsandbytes ({_first_line(exc)}); pip install 'bitsandbytes>=0.45' "
                          "or drop the flag") from None
    device = quant_device()
    try:
        _probe_bnb(bnb, cfg.load_in_4bit, device)
    except Exception as exc:
        raise ConfigError(f"{flag}: bitsandbytes {getattr(bnb, '__version__', '?')} cannot run "
                          f"{'4-bit' if cfg.load_in_4bit else '8-bit'} layers on "
                          f"{'CPU' if device == 'cpu' else 'CUDA'} ({_first_line(exc)}); "
                          "pip install -U 'bitsandbytes>=0.45' or drop the flag") from None


def compute_dtype():
    """bf16 on GPUs that support it, fp16 on older GPUs, fp32 on CPU (no fast half matmuls there)."""
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


def linear_module_names(model) -> list[str]:
    """Leaf names of every linear layer except the output head -- what PEFT's ``all-linear`` means.

    Needed because PEFT refuses ``layers_to_transform`` (``--lora_top_layers``) together with the
    string target ``"all-linear"``; the explicit list is equivalent. Covers ``nn.Linear`` (and the
    bitsandbytes 4/8-bit layers, which subclass it) and GPT-2's ``Conv1D``.
    """
    import torch
    from transformers.pytorch_utils import Conv1D

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = {name.rsplit(".", 1)[-1] for name, m in model.named_modules()
             if isinstance(m, (torch.nn.Linear, Conv1D)) and m is not head and name}
    return sorted(names)


def lora_config(cfg, model):
    """The LoRA config for a student from the run's ``LoraConfig`` section ``cfg``: rank, alpha,
    dropout, targets, optionally the top-N layers only."""
    from peft import LoraConfig

    kwargs = {}
    targets = cfg.target_modules
    if cfg.top_layers is not None:
        n = num_layers(model.config)
        if n is None:
            raise ConfigError("--lora_top_layers: cannot tell how many layers this model has; drop the flag")
        top = min(cfg.top_layers, n)
        kwargs["layers_to_transform"] = list(range(n - top, n))
        if targets == "all-linear":
            targets = linear_module_names(model)
    return LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                      target_modules=targets, bias="none", task_type="CAUSAL_LM", **kwargs)


def base_model_kwargs(*, load_in_4bit: bool = False, load_in_8bit: bool = False,
                      device_index: int | None = None) -> dict:
    """``from_pretrained`` keyword arguments for a student's base: float32, or 4-bit NF4 (double
    quantisation, compute and storage in :func:`compute_dtype`) / 8-bit on :func:`quant_device`.
    One place, so training and ``distill eval`` load a base the same way."""
    import torch

    if not (load_in_4bit or load_in_8bit):
        return {"dtype": torch.float32}
    from transformers import BitsAndBytesConfig

    cd = compute_dtype()
    q = (BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=cd,
                            bnb_4bit_use_double_quant=True, bnb_4bit_quant_storage=cd)
         if load_in_4bit else BitsAndBytesConfig(load_in_8bit=True))
    return {"quantization_config": q, "dtype": cd, "device_map": {"": quant_device(device_index)}}


def load_base_model(ref: str, *, load_in_4bit: bool = False, load_in_8bit: bool = False, flag: str = "--model1",
                    device_index: int | None = None):
    """The base causal LM of a student (no adapter), quantised as asked; a load failure is a
    one-line :class:`ConfigError` naming ``flag``."""
    from transformers import AutoModelForCausalLM

    kwargs = base_model_kwargs(load_in_4bit=load_in_4bit, load_in_8bit=load_in_8bit, device_index=device_index)
    try:
        return AutoModelForCausalLM.from_pretrained(ref, **kwargs)
    except OSError as exc:
        raise ConfigError(f"{flag} {ref}: cannot load model ({str(exc).splitlines()[0]})") from None


def load_student(ref: str, cfg, lora, *, flag: str = "--model1", device_index: int | None = None):
    """Load base model + fresh LoRA adapter. Returns ``(peft_model, tokenizer)``.

    ``cfg``: the run's ``StudentsConfig`` (quantisation, gradient checkpointing); ``lora``: its
    ``LoraConfig``.

    With 4/8-bit, the base goes onto ``device_index`` (each process its own GPU; the CPU when
    there is no CUDA) and is prepared for k-bit training (QLoRA); otherwise it loads in float32 on CPU and Accelerate
    moves it (mixed precision is applied by autocast, keeping fp32 master weights).
    """
    from peft import get_peft_model, prepare_model_for_kbit_training

    from distill.students.tokenizer import load_tokenizer

    check_model_ref(ref, flag)
    try:
        tok = load_tokenizer(ref)
    except OSError as exc:
        raise ConfigError(f"{flag} {ref}: cannot load model ({str(exc).splitlines()[0]})") from None
    model = load_base_model(ref, load_in_4bit=cfg.load_in_4bit, load_in_8bit=cfg.load_in_8bit, flag=flag,
                            device_index=device_index)
    if cfg.load_in_4bit or cfg.load_in_8bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    elif cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    try:
        peft_model = get_peft_model(model, lora_config(lora, model))
    except ValueError as exc:
        raise ConfigError(f"{flag} {ref}: LoRA targets {lora.targets!r} do not fit this model "
                          f"({str(exc).splitlines()[0]}); set --lora_targets") from None
    return peft_model, tok


def read_run_config(run_dir: str | Path) -> dict:
    """A finished run's ``train_config.json`` as flat ``{flag: value}`` (sections, if the file
    nests them, are flattened); ``{}`` when the run has none."""
    import json

    f = Path(run_dir) / "train_config.json"
    if not f.is_file():
        return {}
    raw = json.loads(f.read_text())
    flat: dict = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            for k, v in value.items():
                flat.setdefault(k, v)
        else:
            flat[key] = value
    return flat


def load_trained_student(folder: str | Path, *, load_in_4bit: bool | None = None, load_in_8bit: bool | None = None,
                         device_index: int | None = None, device=None, adapter: bool = True):
    """A trained student as it was trained: its base (4/8-bit if the run's ``train_config.json``
    says ``load_in_4bit``/``load_in_8bit``, unless given here) + the saved adapter + the saved
    tokenizer, in eval mode. Returns ``(peft_model, tokenizer)``. ``adapter=False``: the same base
    and tokenizer without the adapter -- the student's untrained self (``distill eval --base``).

    Why reload quantised: the adapter was trained against the quantised base; merged into a
    full-precision one it is evaluated on a different model (and needs 4x the memory). A
    full-precision student is moved to ``device``; a quantised one stays where it was loaded.
    """
    import json
    from types import SimpleNamespace

    from peft import PeftModel

    from distill.students.tokenizer import load_tokenizer

    folder = Path(folder)
    cfg_file = folder / "adapter_config.json"
    if not cfg_file.is_file():
        raise ConfigError(f"{folder}: no adapter_config.json (not a trained student folder)")
    settings = read_run_config(folder.parent)
    q4 = bool(settings.get("load_in_4bit", False)) if load_in_4bit is None else load_in_4bit
    q8 = bool(settings.get("load_in_8bit", False)) if load_in_8bit is None else load_in_8bit
    check_quantization(SimpleNamespace(load_in_4bit=q4, load_in_8bit=q8))
    base = json.loads(cfg_file.read_text())["base_model_name_or_path"]
    flag = f"{cfg_file}: base_model_name_or_path"
    check_model_ref(base, flag)
    model = load_base_model(base, load_in_4bit=q4, load_in_8bit=q8, flag=flag, device_index=device_index)
    tok = load_tokenizer(folder)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    if adapter:
        model = PeftModel.from_pretrained(model, str(folder))
    if device is not None and not (q4 or q8):
        model.to(device)
    model.eval()
    return model, tok
