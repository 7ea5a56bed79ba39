"""NEFTune (``--neftune_alpha``): noisy input embeddings in training-mode forwards only, with the
paper's scale, on both students; and its composition with QLoRA (bitsandbytes' CPU backend) and
``--lora_top_layers``. Real tiny models, the real engine."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from distill.errors import ConfigError
from distill.students.neftune import _HANDLE, add_neftune, neftune_scale, remove_neftune


def _model(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)


def _capture(model):
    """A forward hook after NEFTune's that records what the embedding layer hands the model."""
    seen: list[torch.Tensor] = []
    handle = model.get_input_embeddings().register_forward_hook(lambda m, a, out: seen.append(out.detach().clone()))
    return seen, handle


def test_noise_in_training_forwards_only_and_generation_unchanged(tiny_llama):
    model = _model(tiny_llama)
    plain = _model(tiny_llama).eval()
    add_neftune(model, 5.0)
    seen, _ = _capture(model)
    ids = torch.tensor([[1, 5, 9, 13, 17, 21, 25, 29]])
    clean = model.get_input_embeddings().weight[ids].detach()
    model.train()
    model(input_ids=ids)
    model(input_ids=ids)
    assert not torch.equal(seen[0], seen[1]), "fresh noise at every training forward"
    assert not torch.equal(seen[0], clean)
    model.eval()
    with torch.no_grad():
        a, b = model(input_ids=ids).logits, model(input_ids=ids).logits
        ref = plain(input_ids=ids).logits
    assert torch.equal(seen[2], clean) and torch.equal(seen[3], clean)
    assert torch.equal(a, b) and torch.equal(a, ref)
    gen = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(model.generate(ids, **gen), plain.generate(ids, **gen))
    assert remove_neftune(model) and not remove_neftune(model)
    model.train()
    model(input_ids=ids)
    assert torch.equal(seen[-1], clean), "removed: no noise"


def test_noise_scale_matches_alpha_over_sqrt_padded_length_times_hidden(tiny_qwen2):
    model = _model(tiny_qwen2).train()
    alpha = 10.0
    add_neftune(model, alpha)
    add_neftune(model, alpha)  # installing twice replaces the hook: one noise, not two
    seen, _ = _capture(model)
    torch.manual_seed(0)
    B, L = 8, 48
    ids = torch.randint(5, 100, (B, L))
    att = torch.ones(B, L, dtype=torch.long)
    att[1:, 30:] = 0  # padded rows: L is the padded length (as TRL / HF), not each row's own
    model(input_ids=ids, attention_mask=att)
    noise = seen[0] - model.get_input_embeddings().weight[ids].detach()
    d = model.config.hidden_size
    bound = alpha / math.sqrt(L * d)
    assert bound == pytest.approx(neftune_scale(alpha, L, d))
    mx, std = float(noise.abs().max()), float(noise.std())
    assert mx <= bound * (1 + 1e-5) and mx > 0.99 * bound  # uniform on [-bound, bound]
    assert std == pytest.approx(bound / math.sqrt(3), rel=0.03), (std, bound / math.sqrt(3))
    assert abs(float(noise.mean())) < 0.02 * bound


def test_alpha_must_be_finite_and_non_negative():
    from distill.train.config import TrainConfig

    base = dict(task="arith", model1="/m1", model2="/m2")
    assert TrainConfig.from_flat(**base).optim.neftune_alpha == 0.0  # default: off
    assert TrainConfig.from_flat(**base, neftune_alpha="5").optim.neftune_alpha == 5.0
    for bad in ("-1", "nan", "inf"):
        with pytest.raises(ConfigError, match="--neftune_alpha"):
            TrainConfig.from_flat(**base, neftune_alpha=bad)
    with pytest.raises(ValueError):
        add_neftune(torch.nn.Module(), -1.0)


@pytest.fixture
def accel_reset():
    from accelerate.state import AcceleratorState, GradientState

    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def test_setup_puts_noise_on_both_students(tmp_path, tiny_llama, tiny_gpt2, tiny_train_data, accel_reset):
    from distill.train.config import parse_train_args
    from distill.train.setup import setup_run, validate_inputs

    def run_with(alpha):
        cfg = parse_train_args(["--task", "arith", "--data_root", str(tiny_train_data), "--outdir",
                                str(tmp_path / f"a{alpha}"), "--model1", str(tiny_llama), "--model2", str(tiny_gpt2),
                                "--routing", "all", "--peer", "none", "--eval_at_end", "false", "--lora_r", "4",
                                "--neftune_alpha", str(alpha)])
        return setup_run(cfg, validate_inputs(cfg))

    on, off = run_with(5), run_with(0)
    for run, hooked in ((on, True), (off, False)):
        for student in (run.unwrapped.student1, run.unwrapped.student2):
            assert hasattr(student.get_input_embeddings(), _HANDLE) == hooked
    batch = on.collate([0, 1])
    s2 = on.unwrapped.student2.train()
    emb = s2.get_input_embeddings()
    ids = batch["s2"]["input_ids"]
    assert not torch.equal(emb(ids), emb(ids))
    s2.eval()
    assert torch.equal(emb(ids), emb(ids))


# ------------------------------------------------------------- composes with QLoRA and top-N-layer LoRA
def test_qlora_top_layers_and_neftune_compose(tmp_path, tiny_llama, tiny_train_data, accel_reset):
    import bitsandbytes as bnb
    from peft.tuners.lora import LoraLayer
    from safetensors.torch import load_file

    from distill.students.load import load_student
    from distill.train.config import parse_train_args
    from distill.train.engine import train

    out = tmp_path / "run"
    cfg = parse_train_args(["--task", "arith", "--data_root", str(tiny_train_data), "--outdir", str(out),
                            "--model1", str(tiny_llama), "--is_sft", "true", "--load_in_4bit", "true",
                            "--lora_top_layers", "1", "--neftune_alpha", "5", "--lora_r", "4", "--bs", "4",
                            "--lr_s1", "5e-3", "--max_steps", "1", "--warmup_ratio", "0", "--eval_at_end", "false"])
    model, _ = load_student(str(tiny_llama), cfg.students, cfg.lora)
    lora = {n: m for n, m in model.named_modules() if isinstance(m, LoraLayer)}
    assert lora and {n.split(".layers.", 1)[1].split(".", 1)[0] for n in lora} == {"1"}  # top layer only
    assert all(isinstance(m.base_layer, bnb.nn.Linear4bit) for m in lora.values())
    add_neftune(model, cfg.optim.neftune_alpha)
    seen, _ = _capture(model)
    ids = torch.tensor([[1, 5, 9, 13, 17, 21]], device=next(model.parameters()).device)
    model.train()
    model(input_ids=ids)
    model(input_ids=ids)
    assert not torch.equal(seen[0], seen[1]), "noise on the 4-bit student's embeddings"
    del model

    summary = train(cfg)  # the real engine: one optimizer step with all three on
    assert summary["steps"] == 1
    saved = load_file(str(Path(out) / "student1" / "adapter_model.safetensors"))
    assert saved and all(".layers.1." in k for k in saved)
    assert any(float(v.abs().sum()) > 0 for k, v in saved.items() if "lora_B" in k), "the step changed lora_B"
