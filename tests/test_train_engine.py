"""The engine: one-line errors before training, kill-and-resume equals an uninterrupted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "launch" / "train_moe.py"


def _run_main(argv, capsys):
    sys.path.insert(0, str(TRAIN.parent))
    try:
        import train_moe
    finally:
        sys.path.pop(0)
    rc = train_moe.main(argv)
    return rc, capsys.readouterr().err.strip()


def test_bad_input_fails_with_one_line_before_training(tmp_path, tiny_llama, tiny_gpt2, tiny_train_data, capsys):
    base = ["--task", "arith", "--data_root", str(tiny_train_data), "--outdir", str(tmp_path / "o")]
    rc, err = _run_main(base + ["--model1", str(tmp_path / "nope"), "--model2", str(tiny_gpt2)], capsys)
    assert rc == 2 and "--model1" in err and "no such model folder" in err and len(err.splitlines()) == 1
    rc, err = _run_main(["--task", "gsm8k", "--data_root", str(tmp_path), "--model1", str(tiny_llama),
                         "--model2", str(tiny_gpt2)], capsys)
    assert rc == 2 and "no training data for task 'gsm8k'" in err and len(err.splitlines()) == 1
    rc, err = _run_main(base + ["--model1", str(tiny_llama), "--model2", str(tiny_gpt2), "--load_in_4bit", "true",
                                "--load_in_8bit", "true"], capsys)
    assert rc == 2 and "--load_in_4bit" in err and "--load_in_8bit" in err and len(err.splitlines()) == 1
    rc, err = _run_main(base + ["--model1", str(tiny_llama), "--model2", str(tiny_gpt2), "--bs", "0"], capsys)
    assert rc == 2 and "--bs must be >= 1" in err
    assert not (tmp_path / "o" / "checkpoints").exists()


def _train(outdir, models, data, *extra, env=None):
    cmd = [sys.executable, str(TRAIN), "--task", "arith", "--model1", str(models[0]), "--model2", str(models[1]),
           "--data_root", str(data), "--outdir", str(outdir), "--epochs", "2", "--bs", "4", "--seed", "7",
           "--lr_s1", "5e-3", "--lr_s2", "5e-3", "--lora_r", "4", "--eval_at_end", "false", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def _adapter(folder):
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "adapter_model.safetensors"))


@pytest.mark.slow
def test_killed_run_resumed_matches_uninterrupted(tmp_path, tiny_llama, tiny_qwen2, tiny_train_data):
    models = (tiny_llama, tiny_qwen2)
    full = _train(tmp_path / "full", models, tiny_train_data)
    assert full.returncode == 0, full.stderr[-2000:]
    killed = _train(tmp_path / "kr", models, tiny_train_data, "--save_every", "2",
                    env={"DISTILL_FAULT_AT_STEP": "3"})
    assert killed.returncode == 17, killed.stderr[-2000:]  # died after step 3; last checkpoint is step 2
    assert not (tmp_path / "kr" / "student1").exists()
    resumed = _train(tmp_path / "kr", models, tiny_train_data, "--save_every", "2", "--resume_from", "latest")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stdout + resumed.stderr
    for name in ("student1", "student2"):
        a, b = _adapter(tmp_path / "full" / name), _adapter(tmp_path / "kr" / name)
        assert a.keys() == b.keys() and a
        assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in a.items()), "adapters trained"
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    steps = [json.loads(l)["step"] for l in (tmp_path / "kr" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))  # the redone step 3 is logged once
    full_loss = [json.loads(l)["loss"] for l in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    kr_loss = [json.loads(l)["loss"] for l in (tmp_path / "kr" / "metrics.jsonl").read_text().splitlines()]
    assert full_loss == pytest.approx(kr_loss, rel=1e-5)
    logs = [json.loads(l) for l in (tmp_path / "kr" / "router_logs_epoch1.jsonl").read_text().splitlines()]
    assert sorted((r["id"], r["path_idx"]) for r in logs) == sorted((f"q{i}", p) for i in range(8) for p in (0, 2))
    # the default method routes: the resumed run made the same routing decisions, path by path
    full_logs = [json.loads(l) for l in (tmp_path / "full" / "router_logs_epoch1.jsonl").read_text().splitlines()]
    assert [(r["id"], r["path_idx"], r["route"]) for r in logs] == \
        [(r["id"], r["path_idx"], r["route"]) for r in full_logs]
    assert all(r["probs"] is not None for r in logs)


@pytest.mark.slow
def test_nan_loss_stops_with_step_and_ids_after_checkpoint(tmp_path, tiny_llama, tiny_gpt2, tiny_train_data):
    run = _train(tmp_path / "nan", (tiny_llama, tiny_gpt2), tiny_train_data, "--lr_s1", "1e30",
                 "--warmup_ratio", "0", "--max_grad_norm", "0")
    assert run.returncode == 2, run.stderr[-2000:]
    errs = [l for l in run.stderr.splitlines() if l.startswith("train_moe.py: error:")]
    assert len(errs) == 1, run.stderr[-2000:]
    err = errs[0]
    assert "non-finite loss at step" in err and "path ids" in err and "saved to" in err
    assert list((tmp_path / "nan" / "checkpoints").glob("nan_step_*/progress.json"))
