"""``distill merge``: a trained run's adapter fused into its base (float32 run: the base as is; 4-bit
run: the de-quantised base), saved as a plain HF folder that reloads with ``AutoModelForCausalLM``
and matches the PEFT student's logits. Real runs of the engine on the tiny students."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from distill.commands import main
from distill.errors import ConfigError

#: max |merged - PEFT student| logit tolerance, float32 runs (measured: ~1e-6; logits of scale ~1)
TOL = 1e-4
#: the same for a 4-bit run against the student as trained (4-bit base + adapter). Measured 1.2e-3: bitsandbytes'
#: CPU 4-bit kernel repacks the weights and computes with bf16-rounded values (~3e-4 per weight against the exact
#: de-quantised ones); merged into the *original* float weights instead, the difference is ~0.1
TOL_4BIT = 5e-3 if not torch.cuda.is_available() else 5e-2  # CUDA computes in bf16 (not measured here)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_llama, tiny_qwen2, tiny_train_data):
    """Two finished runs: llama + qwen2 in float32, and llama alone on a 4-bit base (QLoRA)."""
    from accelerate.state import AcceleratorState, GradientState

    from distill.train.config import parse_train_args
    from distill.train.engine import train

    root = tmp_path_factory.mktemp("merge_runs")
    common = ["--task", "arith", "--data_root", str(tiny_train_data), "--bs", "4", "--lora_r", "4", "--lr_s1", "5e-2",
              "--lr_s2", "5e-2", "--max_steps", "1", "--warmup_ratio", "0", "--eval_at_end", "false",
              "--model1", str(tiny_llama)]
    out = {}
    for name, extra in (("fp", ["--model2", str(tiny_qwen2), "--routing", "all", "--peer", "none"]),
                        ("q4", ["--is_sft", "true", "--load_in_4bit", "true"])):
        train(parse_train_args([*common, "--outdir", str(root / name), *extra]))
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
        out[name] = root / name
    return out


def _logits(model, tok, text: str):
    ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():  # a 4-bit student sits on the GPU when there is one
        return model(input_ids=ids.to(next(model.parameters()).device)).logits.float().cpu()


def _reload(folder):
    """The merged folder as a user loads it: no PEFT, no bitsandbytes; qwen2's tokenizer through
    PreTrainedTokenizerFast (AutoTokenizer would swap in the slow Qwen2Tokenizer)."""
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    return model, PreTrainedTokenizerFast.from_pretrained(folder)


TEXT = "Ann has 12 apples and buys 7 more. How many apples? The answer is \\boxed{19}."


@pytest.mark.parametrize("student,arch", [(1, "llama"), (2, "qwen2")])
def test_merged_float_run_reloads_and_matches_the_peft_student(tmp_path, runs, student, arch):
    from transformers import AutoModelForCausalLM

    from distill.students.load import load_trained_student

    out = tmp_path / "merged"
    assert main(["merge", "--run", str(runs["fp"]), "--student", str(student), "--out", str(out)]) == 0
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    assert not (out / "adapter_config.json").exists()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == arch and "quantization_config" not in cfg
    merged, tok = _reload(out)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    peft_model, peft_tok = load_trained_student(runs["fp"] / f"student{student}")
    assert tok(TEXT)["input_ids"] == peft_tok(TEXT)["input_ids"]  # the student's own tokenizer
    got, want = _logits(merged, tok, TEXT), _logits(peft_model, peft_tok, TEXT)
    diff = float((got - want).abs().max())
    assert diff < TOL, diff
    base = AutoModelForCausalLM.from_pretrained(json.loads(
        (runs["fp"] / f"student{student}" / "adapter_config.json").read_text())["base_model_name_or_path"])
    assert float((_logits(base, tok, TEXT) - want).abs().max()) > 100 * TOL  # the adapter mattered


def test_merged_4bit_run_uses_the_dequantised_base(tmp_path, runs):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from distill.students.load import load_trained_student
    from distill.students.merge import merge_student

    out = tmp_path / "merged4"
    info = merge_student(runs["q4"], 1, out)
    assert info["quantised"] == "4bit" and info["max_logit_diff"] < TOL_4BIT
    merged, tok = _reload(out)
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    assert all(p.dtype == torch.float32 for p in merged.parameters())
    peft_model, peft_tok = load_trained_student(runs["q4"] / "student1")  # 4-bit base + adapter, as trained
    want = _logits(peft_model, peft_tok, TEXT)
    diff = float((_logits(merged, tok, TEXT) - want).abs().max())
    assert diff < TOL_4BIT, diff
    # merged into the original float weights instead, the result would be off by the quantisation error
    naive = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(info["base"]), str(runs["q4"] / "student1"))
    naive_diff = float((_logits(naive.merge_and_unload().eval(), tok, TEXT) - want).abs().max())
    assert naive_diff > 10 * max(diff, 1e-7), (naive_diff, diff)


def test_out_folder_rules(tmp_path, runs, capsys):
    from distill.students.merge import merge_student

    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["merge", "--run", str(runs["fp"]), "--student", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not empty" in err and "--force" in err and "\n" not in err
    assert (out / "keep.txt").is_file()  # nothing touched
    assert main(["merge", "--run", str(runs["fp"]), "--student", "1", "--out", str(out), "--force"]) == 0
    assert not (out / "keep.txt").exists() and (out / "config.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".busy.")]  # no temporary left behind
    for bad in (runs["fp"], runs["fp"] / "student1", runs["fp"].parent):
        with pytest.raises(ConfigError, match="would overwrite the run"):
            merge_student(runs["fp"], 1, bad, force=True)
    with pytest.raises(ConfigError, match="no student2/adapter_config.json"):
        merge_student(runs["q4"], 2, tmp_path / "none")
    assert (runs["fp"] / "student1" / "adapter_config.json").is_file()
