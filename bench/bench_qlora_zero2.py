#!/usr/bin/env python
"""QLoRA under DeepSpeed ZeRO-2: tokens/s and peak memory of a real ``accelerate launch``.

The GPU check of the engine issue: two students of **Qwen2.5-0.5B's shape** (hidden 896, 24 layers,
14 query / 2 KV heads, MLP 4864, vocabulary 151,936; ~0.5B parameters each, random weights because
the GPU machine has no hub) with *different* tokenizers (a qwen2-style Unigram one and a llama-style
BPE one, trained locally), 4-bit NF4 base weights + LoRA, trained on verified paths of the built-in
``arith`` task by

    accelerate launch --config_file "$(distill configs zero2)" --num_processes N -m distill.commands.train \\
        --load_in_4bit true ...

It reads the run's ``train_summary.json`` and prints tokens/s (both students' tokens), mean step time
and peak memory (max over ranks: CUDA allocator peak and resident set). ``--size tiny`` runs the same
harness on CPU (``DS_ACCELERATOR=cpu``, bitsandbytes' CPU backend) so it can be checked without a GPU.

    .venv/bin/python bench/bench_qlora_zero2.py                      # GPU: 0.5B shape; CPU: tiny shape
    .venv/bin/python bench/bench_qlora_zero2.py --num_processes 2    # 2 GPUs
    .venv/bin/python bench/bench_qlora_zero2.py --size 0.5b --steps 2 --bs 2  # 0.5B on CPU (~2.5 min)

Measured on this project's 2-core CPU machine (no GPU): the 0.5B shape (2 x 494M parameters, NF4 via
bitsandbytes' CPU backend, fp32 compute) ran 2 steps of bs 2 at 34-40 tokens/s, 30-36 s/step, peak RSS
13.9-14.1 GiB; with --gradient_checkpointing 35 tokens/s, 38 s/step, peak RSS 5.6 GiB. The peak is
activations, not weights (one student loaded: 1.4 GiB; its forward on 2 x 372 tokens: +4.7 GiB):
both students' activations live until the step's single backward.

Exits 1 if the launch fails, the run reports no throughput, or (on CUDA) the peak GPU memory
exceeds ``--max_gpu_mem_gib`` (default 16).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Qwen2.5-0.5B's published shape; "tiny" keeps the same layout at test size.
SHAPES = {
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151936, max_position_embeddings=2048, tie_word_embeddings=True),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=1024, max_position_embeddings=1024, tie_word_embeddings=True),
}


def make_shaped_student(out: Path, arch: str, shape: dict, corpus: list[str]) -> tuple[Path, int]:
    """A student folder with a locally trained tokenizer and a randomly initialised model of ``shape``.

    The embedding may be larger than the tokenizer (as in Qwen's own checkpoints): the extra rows are
    never indexed but cost memory and the LM head's FLOPs, which is what a size benchmark must include.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from distill.models.tiny import make_tiny_student

    make_tiny_student(out, arch, corpus=corpus, vocab_size=512)  # tokenizer + a tiny model we replace
    cfg = AutoConfig.from_pretrained(out)
    if shape["vocab_size"] < cfg.vocab_size:
        raise SystemExit(f"shape vocab {shape['vocab_size']} < tokenizer vocab {cfg.vocab_size}")
    fields = cfg.to_dict()
    for derived in ("layer_types", "head_dim"):  # sized by the old shape; the config re-derives them
        fields.pop(derived, None)
    cfg = type(cfg)(**{**fields, **shape})
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    n_params = sum(p.numel() for p in model.parameters())
    for f in out.glob("*.safetensors"):
        f.unlink()
    model.save_pretrained(out)
    return out, n_params


def write_paths(root: Path, n_rows: int) -> tuple[Path, Path, list[str]]:
    """Verified paths (every scripted style, all correct) beside their source rows, and test rows."""
    from distill.data.jsonl import atomic_write_jsonl, correct_only, correct_path
    from distill.demo.synthetic import ArithConfig, write_splits
    from distill.demo.teacher import STYLES, ScriptedBackend

    splits = write_splits(root / "data", ArithConfig(n_train=n_rows, n_test=8, seed=0))
    teacher = ScriptedBackend(wrong_rate=0.0)
    rows = [json.loads(line) for line in splits["train"].read_text().splitlines()]
    out, corpus = [], []
    for r in rows:
        responses = [teacher.answer(r, s) for s in STYLES]
        corpus += [r["question"], *responses]
        enriched = {**r, "styles": list(STYLES), "prompts": [""] * len(STYLES), "responses": responses,
                    "preds": [r["gold_answer"]] * len(STYLES), "correct_flags": [True] * len(STYLES)}
        out.append(correct_only(enriched))
    train = correct_path(splits["train"])
    atomic_write_jsonl(train, out)
    return train, splits["test"], corpus


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=["auto", *sorted(SHAPES)], default="auto",
                    help="auto: 0.5b on a CUDA machine, tiny on CPU (so `distill bench` stays quick there)")
    ap.add_argument("--num_processes", type=int, default=1)
    ap.add_argument("--steps", type=int, default=30, help="optimizer steps (the first is excluded from step time)")
    ap.add_argument("--bs", type=int, default=8, help="paths per micro-batch per process")
    ap.add_argument("--config", default="zero2", help="accelerate config: a built-in name (distill configs) or a file")
    ap.add_argument("--gradient_checkpointing", action="store_true")
    ap.add_argument("--workdir", default=None, help="keep models and the run here (default: a temp folder)")
    ap.add_argument("--max_gpu_mem_gib", type=float, default=16.0,
                    help="target: CUDA allocator peak (max over ranks) must stay at or below this (two NF4 "
                         "0.5B students + LoRA are far below their bf16 weights plus activations)")
    args = ap.parse_args()

    import torch

    cuda = torch.cuda.is_available()
    if args.size == "auto":
        args.size = "0.5b" if cuda else "tiny"
    if args.size == "0.5b" and not cuda:
        print("no CUDA GPU: the 0.5B shape runs on bitsandbytes' CPU backend (slow; --size tiny checks the harness)",
              file=sys.stderr)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_qlora_"))
    work.mkdir(parents=True, exist_ok=True)
    n_rows = max(16, (args.steps * args.bs * args.num_processes) // 6 + 1)  # 6 paths per row
    train, test, corpus = write_paths(work, n_rows)
    t0 = time.perf_counter()
    m1, p1 = make_shaped_student(work / "s1_qwen2", "qwen2", SHAPES[args.size], corpus)
    m2, p2 = make_shaped_student(work / "s2_llama", "llama", SHAPES[args.size], corpus)
    print(f"students: qwen2-shaped {p1 / 1e6:.1f}M + llama-shaped {p2 / 1e6:.1f}M params "
          f"(built in {time.perf_counter() - t0:.0f} s)")

    outdir = work / "run"
    from distill.configs import find_config

    cmd = [str(Path(sys.executable).parent / "accelerate"), "launch",
           "--config_file", str(find_config(args.config, "accelerate")),
           "--num_processes", str(args.num_processes), "-m", "distill.commands.train",
           "--task", "arith", "--model1", str(m1), "--model2", str(m2), "--train_file", str(train),
           "--test_file", str(test), "--outdir", str(outdir), "--load_in_4bit", "true",
           "--epochs", "1", "--bs", str(args.bs), "--max_steps", str(args.steps), "--max_len", "512",
           "--lora_r", "16", "--eval_at_end", "false", "--seed", "0"]
    if args.gradient_checkpointing:
        cmd += ["--gradient_checkpointing", "true"]
    env = dict(os.environ)
    if not cuda:
        env["DS_ACCELERATOR"] = "cpu"
    t0 = time.perf_counter()
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if run.returncode != 0:
        print(run.stdout[-3000:], run.stderr[-5000:], sep="\n", file=sys.stderr)
        print(f"launch failed (exit {run.returncode})", file=sys.stderr)
        return 1
    s = json.loads((outdir / "train_summary.json").read_text())
    dev = torch.cuda.get_device_name(0) if cuda else "CPU"
    print(json.dumps({"device": dev, "size": args.size, "processes": s["world"], "steps": s["steps"],
                      "bs_per_process": args.bs, "tokens_per_s": round(s.get("tokens_per_s", 0.0), 1),
                      "mean_step_time_s": round(s.get("mean_step_time_s", 0.0), 4),
                      "peak_gpu_mem_gib": s.get("peak_gpu_mem_gib"), "peak_rss_gib": s.get("peak_rss_gib"),
                      "launch_wall_s": round(wall, 1)}, indent=2))
    ok = s.get("tokens_per_s", 0) > 0
    gpu = s.get("peak_gpu_mem_gib")
    if gpu is not None:
        mem_ok = gpu <= args.max_gpu_mem_gib
        print(f"target: peak GPU memory <= {args.max_gpu_mem_gib:g} GiB: {gpu:.3f} GiB "
              f"{'PASS' if mem_ok else 'FAIL'}", file=sys.stderr)
        ok = ok and mem_ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
