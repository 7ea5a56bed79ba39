#!/usr/bin/env python
"""Training step time of the two-student MixtureModel on CPU (tiny llama + tiny qwen2 LoRA students).

Measures forward + backward + AdamW step of one micro-batch (both students, per-student
tokenisation, dynamic padding) at two sizes, and prints ms/step and tokens/s. Target: the
default tiny pair (hidden 64, 2 layers) at bs 4 under 1000 ms/step on a 2-core CPU (measured ~850 ms at load average 7), so the
tests' tiny runs stay fast. Exits 1 on a missed target.

    .venv/bin/python bench/bench_train_step.py [--steps 10] [--bs 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET_MS = 1000.0


def bench(size: dict, bs: int, steps: int, tmp: Path) -> tuple[float, float]:
    import torch

    from distill.models.tiny import default_corpus, make_tiny_student
    from distill.students.data import PathDataset
    from distill.students.load import load_student
    from distill.train.config import TrainConfig
    from distill.train.mixture import MixtureModel

    tag = "_".join(f"{k}{v}" for k, v in size.items())
    p1 = make_tiny_student(tmp / f"l_{tag}", "llama", **size)
    p2 = make_tiny_student(tmp / f"q_{tag}", "qwen2", **size)
    cfg = TrainConfig.from_flat(task="arith", model1=str(p1), model2=str(p2), lora_r=8)
    torch.manual_seed(0)
    s1, t1 = load_student(str(p1), cfg.students, cfg.lora)
    s2, t2 = load_student(str(p2), cfg.students, cfg.lora)
    corpus = default_corpus(40)
    exs = [{"id": str(i), "path_idx": 0, "style": "cot", "correct": True, "question_text": corpus[2 * i],
            "response": corpus[2 * i + 1]} for i in range(bs)]
    ds = PathDataset(exs, {"s1": t1, "s2": t2}, {"s1": 512, "s2": 512})
    batch = ds.collate(list(range(bs)))
    tokens = int(batch["s1"]["attention_mask"].sum() + batch["s2"]["attention_mask"].sum())
    model = MixtureModel(s1, s2)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        out = model(batch)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= 2:  # warm-up excluded
            times.append(time.perf_counter() - t0)
    ms = 1000 * sorted(times)[len(times) // 2]
    return ms, tokens / (ms / 1000)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--bs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    import os

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, {args.threads} torch threads")
    ok = True
    with tempfile.TemporaryDirectory() as d:
        for name, size in (("tiny (h64 L2)", {}), ("small (h256 L4)", {"hidden": 256, "layers": 4})):
            ms, tps = bench(size, args.bs, args.steps, Path(d))
            line = f"{name:16s} bs={args.bs}  median step {ms:8.1f} ms   {tps:9.0f} tokens/s (both students)"
            if not size:
                ok = ms <= TARGET_MS
                line += f"   target <= {TARGET_MS:.0f} ms: {'OK' if ok else 'MISSED'}"
            print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
