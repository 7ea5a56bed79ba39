"""Training options beyond the defaults: QLoRA on CPU, top-N-layer LoRA, a frozen student,
gradient checkpointing. Each test runs the real engine in-process (single process, CPU) on the
tiny fixtures and checks what the option must change -- and what it must not."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from distill.errors import ConfigError
from distill.train.config import parse_train_args


def _cfg(tmp_path, data, model1, model2=None, *extra):
    models = ["--model1", str(model1)] + (["--model2", str(model2)] if model2 else ["--is_sft", "true"])
    return parse_train_args(["--task", "arith", "--data_root", str(data), "--outdir", str(tmp_path), "--bs", "4",
                             "--seed", "7", "--lr_s1", "5e-3", "--lr_s2", "5e-3", "--lora_r", "4",
                             "--max_steps", "2", "--warmup_ratio", "0", "--eval_at_end", "false", *models, *extra])


@pytest.fixture
def run_train():
    """``train(cfg)`` in this process; Accelerate's process-wide state is reset afterwards so the
    next test's Accelerator starts clean."""
    from accelerate.state import AcceleratorState, GradientState

    from distill.train.engine import train

    yield train
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def _initial_students(cfg):
    """The students exactly as ``train`` creates them (same seed, same load order): their fresh LoRA
    weights are the reference for "changed" / "unchanged"."""
    from accelerate.utils import set_seed

    from distill.students.load import load_student

    set_seed(cfg.optim.seed)
    s1, _ = load_student(cfg.students.model1, cfg.students, cfg.lora, flag="--model1")
    s2 = None if cfg.students.is_sft else load_student(cfg.students.model2, cfg.students, cfg.lora, flag="--model2")[0]
    return s1, s2


def _lora_state(peft_model) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict

    return {k: v.detach().float().cpu().clone() for k, v in get_peft_model_state_dict(peft_model).items()}


def _saved(folder) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "adapter_model.safetensors"))


def _metrics(outdir) -> list[dict]:
    return [json.loads(l) for l in (Path(outdir) / "metrics.jsonl").read_text().splitlines() if l.strip()]


# --------------------------------------------------------------------------------------- QLoRA
def test_qlora_4bit_trains_on_cpu_and_adapter_reloads(tmp_path, tiny_llama, tiny_train_data, run_train):
    import bitsandbytes as bnb
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer
    from transformers import AutoModelForCausalLM

    cfg = _cfg(tmp_path / "q4", tiny_train_data, tiny_llama, None, "--load_in_4bit", "true")
    init, _ = _initial_students(cfg)
    lora_layers = [m for m in init.modules() if isinstance(m, LoraLayer)]
    assert len(lora_layers) == 14  # q,k,v,o,gate,up,down x 2 layers ("all-linear" skips lm_head)
    for m in lora_layers:  # the frozen base under every adapter really is a packed NF4 bnb layer
        assert isinstance(m.base_layer, bnb.nn.Linear4bit), type(m.base_layer)
        w = m.base_layer.weight
        assert w.bnb_quantized and w.quant_state.quant_type == "nf4"
        assert w.numel() * w.element_size() * 2 == m.base_layer.in_features * m.base_layer.out_features  # 4 bits each
        if not torch.cuda.is_available():
            assert m.base_layer.compute_dtype == torch.float32
    before = _lora_state(init)
    del init

    summary = run_train(cfg)
    assert summary["steps"] == 2
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in _metrics(cfg.runtime.outdir))
    saved = _saved(Path(cfg.runtime.outdir) / "student1")
    assert saved.keys() == before.keys()
    for k, v in saved.items():
        assert not torch.equal(v.float(), before[k]), f"{k} did not train"
    assert all(v.abs().sum() > 0 for k, v in saved.items() if "lora_B" in k)  # B starts at zero

    # the adapter loads onto a plain full-precision base and changes its outputs
    base = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    reloaded = PeftModel.from_pretrained(base, Path(cfg.runtime.outdir) / "student1").eval()
    for k, v in _lora_state(reloaded).items():
        torch.testing.assert_close(v, saved[k].float())
    ids = torch.tensor([[1, 5, 9, 13, 17, 21]])
    with torch.no_grad():
        with_adapter = reloaded(input_ids=ids).logits
        with reloaded.disable_adapter():
            without = reloaded(input_ids=ids).logits
    assert not torch.allclose(with_adapter, without)


def test_quantization_without_bitsandbytes_is_one_line_error(tmp_path, tiny_llama, tiny_train_data, monkeypatch):
    from distill.students.load import check_quantization

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # `import bitsandbytes` now raises ImportError
    for flag in ("--load_in_4bit", "--load_in_8bit"):
        cfg = _cfg(tmp_path, tiny_train_data, tiny_llama, None, flag, "true")
        with pytest.raises(ConfigError) as info:
            check_quantization(cfg.students)
        msg = str(info.value)
        assert msg.startswith(f"{flag} needs bitsandbytes") and "pip install" in msg and "\n" not in msg


# ------------------------------------------------------------------------------ lora_top_layers
@pytest.mark.parametrize("fixture,layer_of", [("tiny_llama", ".layers."), ("tiny_gpt2", ".h.")])
def test_lora_top_layers_puts_adapters_only_on_top_layers(request, tmp_path, tiny_train_data, fixture, layer_of):
    from peft.tuners.lora import LoraLayer

    from distill.students.load import load_student

    model = request.getfixturevalue(fixture)

    def adapted_layers(*extra):
        cfg = _cfg(tmp_path, tiny_train_data, model, None, *extra)
        peft_model, _ = load_student(str(model), cfg.students, cfg.lora)
        names = [n for n, m in peft_model.named_modules() if isinstance(m, LoraLayer)]
        assert names
        return {int(n.split(layer_of, 1)[1].split(".", 1)[0]) for n in names}, len(names)

    all_layers, n_all = adapted_layers()
    assert all_layers == {0, 1}
    top, n_top = adapted_layers("--lora_top_layers", "1")
    assert top == {1} and n_top == n_all // 2
    assert adapted_layers("--lora_top_layers", "5")[0] == {0, 1}  # more than the model has: all of them
    with pytest.raises(ConfigError, match="--lora_top_layers must be >= 1"):
        _cfg(tmp_path, tiny_train_data, model, None, "--lora_top_layers", "0")


# ----------------------------------------------------------------------------------- freeze_s1
def test_freeze_s1_trains_only_student2(tmp_path, tiny_llama, tiny_gpt2, tiny_train_data, run_train):
    from distill.train.setup import param_groups as _param_groups
    from distill.train.mixture import MixtureModel

    cfg = _cfg(tmp_path / "fz", tiny_train_data, tiny_llama, tiny_gpt2, "--freeze_s1", "true")
    s1, s2 = _initial_students(cfg)
    before1, before2 = _lora_state(s1), _lora_state(s2)
    groups = _param_groups(MixtureModel(s1, s2, None, None), cfg)
    assert [g["name"] for g in groups] == ["student2"]
    assert not any(p.requires_grad for p in s1.parameters())
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in s2.parameters() if p.requires_grad}
    del s1, s2, groups

    run_train(cfg)
    for rec in _metrics(cfg.runtime.outdir):  # the real run's optimizer had no student1 group
        assert "lr_student2" in rec and "lr_student1" not in rec
    after1, after2 = _saved(Path(cfg.runtime.outdir) / "student1"), _saved(Path(cfg.runtime.outdir) / "student2")
    assert after1.keys() == before1.keys() and after2.keys() == before2.keys()
    for k in before1:
        assert torch.equal(after1[k].float(), before1[k]), f"frozen student1 changed: {k}"
    for k in before2:
        assert not torch.equal(after2[k].float(), before2[k]), f"student2 did not train: {k}"


# ------------------------------------------------------------------------- gradient checkpointing
def test_gradient_checkpointing_same_losses_as_without(tmp_path, tiny_qwen2, tiny_train_data, run_train):
    from distill.students.load import load_student

    cfg_gc = _cfg(tmp_path / "gc", tiny_train_data, tiny_qwen2, None, "--gradient_checkpointing", "true")
    probe, _ = load_student(str(tiny_qwen2), cfg_gc.students, cfg_gc.lora)
    base = probe.get_base_model()
    assert any(getattr(m, "gradient_checkpointing", False) for m in base.modules())  # what either HF property reads
    del probe, base

    run_train(_cfg(tmp_path / "plain", tiny_train_data, tiny_qwen2))
    run_train(cfg_gc)
    plain, gc = _metrics(tmp_path / "plain"), _metrics(tmp_path / "gc")
    assert [r["step"] for r in gc] == [1, 2]
    assert gc[0]["loss"] == pytest.approx(plain[0]["loss"], rel=1e-5)
    # step 2's loss depends on step 1's gradients: recomputed activations gave the same update
    assert gc[1]["loss"] == pytest.approx(plain[1]["loss"], rel=1e-4)
    assert gc[1]["loss"] != plain[0]["loss"]
    a, b = _saved(tmp_path / "plain" / "student1"), _saved(tmp_path / "gc" / "student1")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)


def test_report_to_tensorboard_logs_the_metrics(tmp_path, tiny_llama, tiny_qwen2, tiny_train_data, run_train):
    """``--report_to tensorboard`` goes through Accelerate's tracker: the event file holds the same
    per-step student losses as ``metrics.jsonl``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = _cfg(tmp_path / "tb", tiny_train_data, tiny_llama, tiny_qwen2, "--report_to", "tensorboard",
               "--log_every", "1")
    run_train(cfg)
    events = sorted((tmp_path / "tb" / "distill").glob("events.out.tfevents.*"))  # the run's scalars
    assert events, list((tmp_path / "tb").rglob("*"))
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    logged = [json.loads(line) for line in (tmp_path / "tb" / "metrics.jsonl").read_text().splitlines()]
    for key in ("loss_s1", "loss_s2"):
        scalars = acc.Scalars(key)
        assert [s.step for s in scalars] == [m["step"] for m in logged]
        assert [s.value for s in scalars] == pytest.approx([m[key] for m in logged], rel=1e-5)


def test_report_to_without_the_package_is_one_line_error(tmp_path, tiny_llama, tiny_train_data, monkeypatch):
    import importlib.util

    from distill.train.setup import make_accelerator

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    cfg = _cfg(tmp_path, tiny_train_data, tiny_llama, None, "--report_to", "wandb")
    with pytest.raises(ConfigError, match=r"^--report_to wandb needs the wandb package .*--report_to none$"):
        make_accelerator(cfg)
