"""``distill merge``: fuse a trained student's LoRA adapter into its base model and save a plain
Hugging Face model folder (weights, config, generation config, the student's tokenizer) that loads
with ``AutoModelForCausalLM`` alone -- no PEFT, no bitsandbytes.

**Quantised runs.** A 4-bit (or 8-bit) student was trained against its *quantised* base, so its
adapter is fused into the **de-quantised** base: the base is loaded quantised exactly as in training
(:func:`distill.students.load.load_base_model`), every bitsandbytes layer's weight is de-quantised
to float32 and copied into a full-precision copy of the base, and the adapter is merged there
(``merge_and_unload``). Why not the original float weights: the adapter learned to correct the
quantised ones; why not merge inside the 4-bit model: PEFT would re-quantise the sum, losing the
adapter's small updates. The merged model is float32.

Before saving, the merged model's logits on a fixed probe are compared with the PEFT model as
trained (quantised base + adapter, as ``distill eval`` runs it); :func:`merge_student` returns the
max absolute difference.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from distill.errors import ConfigError

#: token ids of the logit probe (clipped to the vocabulary)
PROBE_IDS = (1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45)


def check_out(out: Path, run_dir: Path, student_dir: Path, force: bool) -> None:
    """``--out`` must be a new or empty folder (``--force``: a non-empty one is replaced), and never
    the run folder, a folder holding it, the student's folder or one inside it."""
    out_r, run_r, st_r = out.resolve(), run_dir.resolve(), student_dir.resolve()
    if out_r == run_r or out_r in run_r.parents or out_r == st_r or st_r in out_r.parents:
        raise ConfigError(f"--out {out}: would overwrite the run {run_dir} or its student; pick another folder")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"--out {out}: folder exists and is not empty (pass --force to replace it)")


def _dequantised_weights(quantised) -> dict[str, Any]:
    """module name -> float32 weight of every bitsandbytes layer of ``quantised`` (on the CPU)."""
    import bitsandbytes as bnb
    import torch
    from peft.utils.integrations import dequantize_bnb_weight

    out = {}
    for name, m in quantised.named_modules():
        if isinstance(m, bnb.nn.Linear4bit):
            w = dequantize_bnb_weight(m.weight)
        elif isinstance(m, bnb.nn.Linear8bitLt):
            w = dequantize_bnb_weight(m.weight, state=m.state)
        else:
            continue
        out[name] = w.detach().to("cpu", torch.float32)
    return out


def _full_precision_base(base: str, quant: dict[str, bool], flag: str):
    """(float32 base to merge into, the base as trained: quantised, or None for a float run)."""
    import torch

    from distill.students.load import load_base_model

    fp = load_base_model(base, flag=flag)
    if not (quant["load_in_4bit"] or quant["load_in_8bit"]):
        return fp, None
    trained = load_base_model(base, flag=flag, **quant)
    # before any forward: bitsandbytes' CPU backend repacks 4-bit weights at the first forward, after
    # which the standard de-quantisation reads them wrongly
    weights = _dequantised_weights(trained)
    if not weights:
        raise ConfigError(f"{flag} {base}: the quantised base has no bitsandbytes layer to de-quantise")
    with torch.no_grad():
        for name, w in weights.items():
            target = fp.get_submodule(name).weight
            if tuple(w.shape) != tuple(target.shape) and tuple(w.t().shape) == tuple(target.shape):
                w = w.t()  # GPT-2's Conv1D keeps its weight transposed
            target.copy_(w)
    return fp, trained


def _probe(model, vocab: int):
    import torch

    ids = torch.tensor([[i % vocab for i in PROBE_IDS]])
    dev = next(model.parameters()).device
    with torch.no_grad():
        return model(input_ids=ids.to(dev)).logits.float().cpu()


def merge_student(run_dir: str | Path, student: int, out: str | Path, *, force: bool = False) -> dict[str, Any]:
    """Fuse ``RUN/student{student}``'s adapter into its base and save the plain model to ``out``
    (written to a temporary sibling first, then moved into place). Returns ``{"out", "base",
    "quantised", "max_logit_diff"}``."""
    import json
    from types import SimpleNamespace

    from peft import PeftModel

    from distill.students.load import check_model_ref, check_quantization, read_run_config
    from distill.students.tokenizer import load_tokenizer

    if student not in (1, 2):
        raise ConfigError(f"--student must be 1 or 2, got {student}")
    run_dir, out = Path(run_dir), Path(out)
    folder = run_dir / f"student{student}"
    cfg_file = folder / "adapter_config.json"
    if not cfg_file.is_file():
        raise ConfigError(f"--run {run_dir}: no student{student}/adapter_config.json (not a finished run, or an "
                          f"--is_sft run without student 2)")
    check_out(out, run_dir, folder, force)
    settings = read_run_config(run_dir)
    quant = {k: bool(settings.get(k, False)) for k in ("load_in_4bit", "load_in_8bit")}
    check_quantization(SimpleNamespace(**quant))
    base = json.loads(cfg_file.read_text())["base_model_name_or_path"]
    flag = f"{cfg_file}: base_model_name_or_path"
    check_model_ref(base, flag)
    tok = load_tokenizer(folder)
    fp, trained = _full_precision_base(base, quant, flag)
    vocab = fp.get_input_embeddings().weight.shape[0]
    peft_model = PeftModel.from_pretrained(fp, str(folder)).eval()
    # the reference: the student exactly as trained (the quantised base + adapter, else this model)
    as_trained = peft_model if trained is None else PeftModel.from_pretrained(trained, str(folder)).eval()
    reference = _probe(as_trained, vocab)
    del as_trained, trained
    merged = peft_model.merge_and_unload()
    if merged.config.pad_token_id is None:
        merged.config.pad_token_id = tok.pad_token_id
    diff = float((_probe(merged, vocab) - reference).abs().max())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        merged.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if out.exists():
            shutil.rmtree(out)  # checked above: empty, or --force
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return {"out": str(out), "base": base, "quantised": "4bit" if quant["load_in_4bit"] else
            "8bit" if quant["load_in_8bit"] else None, "max_logit_diff": diff}
