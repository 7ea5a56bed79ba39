#!/usr/bin/env python
"""GPU figures: tokens/s, step time, peak memory and MFU of real-shaped students, alone and as the mixture.

Two randomly initialised students of real shapes with *different* vocabularies (no hub on the GPU machine):
Qwen2.5-0.5B's (hidden 896, 24 layers, vocabulary 151,936, tied) and a ~1.1B Llama (TinyLlama's: hidden 2048,
22 layers, 32 / 4 heads, MLP 5632, vocabulary 32,000), each with a tokenizer trained locally
(``bench_qlora_zero2.make_shaped_student``), loaded by ``distill.students.load.load_student`` (LoRA r 16
all-linear, as ``distill train``), trained with the engine's step (``MixtureModel`` forward under bf16 autocast,
backward, clip 1.0, AdamW) on paths of ``--seq`` tokens. Arms: each student alone, the two-student mixture with
no interaction (``separate``) and the routed mixture (learned router + peer teaching, ``full``); each without and,
when bitsandbytes is importable, with 4-bit NF4 base weights. Single GPU. Installs nothing.

MFU = achieved model FLOP/s / the device's dense bf16 peak. Model FLOPs per token of a LoRA step: 2N forward +
2N backward (activation gradients only: the base is frozen) + causal attention 6 L s d (forward + backward),
N the non-embedding parameters plus the LM head. Targets: student MFU >= 40%; mixture (full) <= 0.8 x the two
students' separate step times.

    python bench/bench_gpu.py                      # GPU: real shapes, --seq 512,1024
    python bench/bench_gpu.py --tiny               # CPU check: the same harness at test size (seconds)
    python bench/bench_gpu.py --out runs/bench_gpu/results.json

Prints a markdown table and one JSON line (``--json``: only the JSON). Exits 1 when a student run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

QWEN05 = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
              num_key_value_heads=2, vocab_size=151936, max_position_embeddings=4096, tie_word_embeddings=True)
LLAMA1B = dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
               num_key_value_heads=4, vocab_size=32000, max_position_embeddings=4096, tie_word_embeddings=False)
TINY_Q = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=2048, max_position_embeddings=512, tie_word_embeddings=True)
TINY_L = dict(hidden_size=96, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=1024, max_position_embeddings=512, tie_word_embeddings=False)
#: dense bf16 peak FLOP/s by device name fragment (no sparsity)
PEAKS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12}


def peak_flops(name: str, override: float | None) -> float | None:
    if override:
        return override * 1e12
    return next((v for k, v in PEAKS.items() if k in name), None)


def flops_per_token(model, seq: int) -> float:
    cfg = model.config
    emb = model.get_input_embeddings().weight.numel()
    base = sum(p.numel() for p in model.parameters()) - emb  # the LM head stays (tied: counted once below)
    if getattr(cfg, "tie_word_embeddings", False):
        base += emb
    return 4 * base + 6 * cfg.num_hidden_layers * seq * cfg.hidden_size


def examples(tok, seq: int, n: int) -> list[dict[str, Any]]:
    """``n`` paths of about ``seq`` tokens for ``tok`` (the corpus text repeated), distinct per path."""
    from distill.models.tiny import default_corpus

    corpus = default_corpus(200)
    out = []
    for i in range(n):
        parts, j = [], i
        while len(tok("\n".join(parts))["input_ids"]) < seq - 40:
            parts.append(corpus[j % len(corpus)])
            j += 7
        out.append({"id": str(i), "path_idx": 0, "style": "cot", "correct": True,
                    "question_text": corpus[(i * 3) % len(corpus)][:200], "response": "\n".join(parts)})
    return out


def measure(model, batches, steps: int, warmup: int, device, router=None) -> dict[str, Any]:
    import torch

    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    on_cuda = device.type == "cuda"
    if on_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times, tokens = [], 0
    for i in range(warmup + steps):
        batch = batches[i % len(batches)]
        if router is not None:
            router.set_progress(i / (warmup + steps))
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_cuda):
            out = model(batch)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if on_cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            tokens += int(sum(batch[k]["attention_mask"].sum() for k in ("s1", "s2") if k in batch))
    step = statistics.median(times)
    res = {"step_s": round(step, 4), "tokens_per_s": round(tokens / sum(times), 1), "tokens_per_step": tokens // steps}
    if on_cuda:
        res["peak_gpu_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    return res


def run_config(paths, seq: int, four_bit: bool, args, device, peak: float | None) -> list[dict[str, Any]]:
    import torch

    from distill.peer.build import build_peer
    from distill.router.build import build_router
    from distill.students.data import PathDataset
    from distill.students.load import load_student
    from distill.train.config import TrainConfig
    from distill.train.mixture import MixtureModel
    from distill.train.setup import _to_device

    cfg = TrainConfig.from_flat(task="gsm8k", model1=str(paths[0]), model2=str(paths[1]), load_in_4bit=four_bit,
                                gradient_checkpointing=args.gradient_checkpointing)
    dev_idx = 0 if device.type == "cuda" else None
    torch.manual_seed(0)
    (s1, t1), (s2, t2) = (load_student(str(p), cfg.students, cfg.lora, device_index=dev_idx) for p in paths)
    if not four_bit:
        s1, s2 = s1.to(device), s2.to(device)
    exs = examples(t1, seq, args.bs * 2)
    ds = PathDataset(exs, {"s1": t1, "s2": t2}, {"s1": seq, "s2": seq})
    emb = torch.randn(len(ds), 384, generator=torch.Generator().manual_seed(0))
    ds.route_emb = emb / emb.norm(dim=-1, keepdim=True)
    batches = [_to_device(ds.collate(list(range(i, i + args.bs))), device) for i in (0, args.bs)]
    solo = {k: [{"s1": b[k], "meta": b["meta"], "route_emb": None} for b in batches] for k in ("s1", "s2")}
    router = build_router(cfg.router, 384, seed=0).to(device)
    peer = build_peer(cfg.peer, s1, s2, t1, t2).to(device)
    arms = {"student1": (MixtureModel(s1, None), solo["s1"], None), "student2": (MixtureModel(s2, None), solo["s2"], None),
            "mixture_separate": (MixtureModel(s1, s2), batches, None),
            "mixture_full": (MixtureModel(s1, s2, router, peer), batches, router)}
    rows = []
    for arm, (model, bl, r) in arms.items():
        res = measure(model, bl, args.steps, args.warmup, device, r)
        if arm.startswith("student") and peak:
            m = s1 if arm == "student1" else s2
            width = bl[0]["s1"]["input_ids"].shape[1]
            res["mfu"] = round(flops_per_token(m, width) * res["tokens_per_s"] / peak, 4)
        rows.append({"arm": arm, "seq": seq, "bs": args.bs, "four_bit": four_bit, **res})
    sep = rows[0]["step_s"] + rows[1]["step_s"]
    for r in rows[2:]:
        r["over_separate_runs"] = round(r["step_s"] / sep, 3)
    del s1, s2, arms
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="test-sized shapes, CPU allowed (checks the harness)")
    ap.add_argument("--seq", default=None, help="comma list of path lengths (default 512,1024; --tiny 64)")
    ap.add_argument("--bs", type=int, default=None, help="paths per step (default 4; --tiny 2)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per arm (default 5; --tiny 2)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps per arm (default 2; --tiny 1)")
    ap.add_argument("--four_bit", choices=("auto", "on", "off"), default="auto",
                    help="also run 4-bit NF4 (auto: when bitsandbytes imports and CUDA is there)")
    ap.add_argument("--gradient_checkpointing", action="store_true")
    ap.add_argument("--peak_tflops", type=float, default=None, help="the device's dense bf16 peak (default: by name)")
    ap.add_argument("--json", action="store_true", help="print only the JSON object")
    ap.add_argument("--out", default=None, help="also write the JSON object here")
    args = ap.parse_args(argv)
    args.bs = args.bs or (2 if args.tiny else 4)
    args.steps = args.steps or (2 if args.tiny else 5)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 2)
    seqs = [int(s) for s in (args.seq or ("64" if args.tiny else "512,1024")).split(",")]
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    try:
        import bitsandbytes  # noqa: F401
        has_bnb = True
    except Exception:  # any import failure means: no 4-bit arm
        has_bnb = False
    quant = {"off": [False], "on": [False, True], "auto": [False, True] if has_bnb and device.type == "cuda" else [False]}
    peak = peak_flops(name, args.peak_tflops)
    doc: dict[str, Any] = {"bench": "gpu", "device": name, "peak_flops": peak, "bitsandbytes": has_bnb,
                           "torch": torch.__version__, "command": " ".join(sys.argv), "rows": [],
                           "shapes": {"student1": "tiny qwen2" if args.tiny else "Qwen2.5-0.5B",
                                      "student2": "tiny llama" if args.tiny else "Llama ~1.1B (TinyLlama)"}}
    t0 = time.perf_counter()
    saved = None
    if args.json:  # stdout carries only the JSON object (DeepSpeed's import-time log line goes to stdout)
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(2, 1)
    try:
        _run_all(doc, args, seqs, quant, device, peak, t0)
    finally:
        if saved is not None:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    if not args.json:
        print(f"device {name}, peak {peak or 0:.3g} FLOP/s, bitsandbytes {has_bnb}\n")
        print("| arm | seq | bs | 4-bit | step s | tokens/s | peak GiB | MFU | / separate |\n|---|---|---|---|---|---|---|---|---|")
        for r in doc["rows"]:
            print(f"| {r['arm']} | {r['seq']} | {r['bs']} | {r['four_bit']} | {r['step_s']} | {r['tokens_per_s']} | "
                  f"{r.get('peak_gpu_mem_gib', '-')} | {r.get('mfu', '-')} | {r.get('over_separate_runs', '-')} |")
    print(json.dumps(doc))
    return 0


def _run_all(doc: dict[str, Any], args, seqs: list[int], quant: dict, device, peak, t0: float) -> None:
    from bench_qlora_zero2 import make_shaped_student
    from distill.models.tiny import default_corpus

    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
        corpus = default_corpus(400)
        paths = (make_shaped_student(Path(tmp) / "s1", "qwen2", TINY_Q if args.tiny else QWEN05, corpus)[0],
                 make_shaped_student(Path(tmp) / "s2", "llama", TINY_L if args.tiny else LLAMA1B, corpus)[0])
        for q in quant[args.four_bit]:
            for seq in seqs:
                doc["rows"].extend(run_config(paths, seq, q, args, device, peak))
                print(f"[{time.perf_counter() - t0:.0f}s] seq {seq} 4-bit {q}: done", file=sys.stderr, flush=True)
    studs = [r for r in doc["rows"] if "mfu" in r]
    mixes = [r for r in doc["rows"] if r["arm"] == "mixture_full"]
    doc["targets"] = {"student_mfu_min": min((r["mfu"] for r in studs), default=None), "mfu_target": 0.4,
                      "mixture_full_over_separate_max": max((r["over_separate_runs"] for r in mixes), default=None),
                      "mixture_target": 0.8}
    doc["wall_s"] = round(time.perf_counter() - t0, 1)


if __name__ == "__main__":
    sys.exit(main())
