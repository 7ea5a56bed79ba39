#!/usr/bin/env python
"""Mixture vs separate: epoch time of ``--recipe full`` against ``--recipe separate``, one process, and
where the time goes (torch.profiler), plus the peak RSS of the single vs per-student backward.

Builds the tiny llama + qwen2 pair of ``bench/suite_train.py`` (real GSM8K-length paths, hidden 64,
2 layers, LoRA) and runs engine steps (``MixtureModel`` forward + backward + clip 1.0 + AdamW) of:

- ``full_k{N}``: learned CoT router + peer teaching (the run config's defaults: ``peer auto`` -> hidden)
  with ``--router_cost_every N``, one arm per ``--cost_every`` value (``full_k1``: the full-information
  cost every step, the behaviour before the option existed);
- ``separate``: both students on every path in one mixture, no router, no peer (``--recipe separate``);
- ``solo1`` + ``solo2``: each student alone on every path (two separate runs).

Arms are interleaved epoch by epoch, ``--repeats`` times; the ratio of each repeat is taken and the
median reported, for wall time and for this process's CPU time (steadier on a shared machine), next to
the 1-minute load average. Exits 1 when no arm's median CPU ratio full / separate is <= 0.8.

    .venv/bin/python bench/bench_mixture_speed.py [--cost_every 1,4,8] [--paths 96] [--threads 1] [--repeats 3] [--profile] [--json]
    .venv/bin/python bench/bench_mixture_speed.py --memory [--bs 16] [--mem_size '{"hidden": 256, "layers": 4}']
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from suite_train import EMB_DIM, batches_of, build, epoch_time, profile_step, solo_batch  # noqa: E402


def arms_for(b, bs: int, seed: int, cost_every: list[int]):
    """name -> (model, batches, router) over one shared set-up (students shared across arms):
    ``full_k{N}`` for each ``--router_cost_every`` N (``full_k1``: the full information every step, as
    before the option existed), ``separate``, ``solo1``, ``solo2``."""
    from distill.peer.build import build_peer
    from distill.router.build import build_router
    from distill.train.mixture import MixtureModel

    ds, cfg, s1, s2 = b["ds"], b["cfg"], b["s1"], b["s2"]
    batches = [ds.collate(ix) for ix in batches_of(ds, bs, seed)]
    arms = {}
    for k in cost_every:
        rcfg = type(cfg.router)(**{**vars(cfg.router), "cost_every": k})
        router = build_router(rcfg, EMB_DIM, seed=seed)
        peer = build_peer(cfg.peer, s1, s2, b["t1"], b["t2"])
        arms[f"full_k{k}"] = (MixtureModel(s1, s2, router, peer, peer_scope=cfg.peer.scope), batches, router)
    arms.update({
        "separate": (MixtureModel(s1, s2), batches, None),
        "solo1": (MixtureModel(s1, None), [solo_batch(x, "s1") for x in batches], None),
        "solo2": (MixtureModel(s2, None), [solo_batch(x, "s2") for x in batches], None),
    })
    return arms


def epoch_cpu(model, batches, opt, router) -> tuple[float, float]:
    """(wall s, process CPU s) of one epoch of engine steps (``suite_train.epoch_time``'s step)."""
    t0, c0 = time.perf_counter(), time.process_time()
    epoch_time(model, batches, opt, router)
    return time.perf_counter() - t0, time.process_time() - c0


def timing(arms, repeats: int) -> dict:
    """Interleaved epochs; per repeat the ratios of wall time and of process CPU time (CPU time is
    the steadier one on a loaded machine: other users' jobs add wall time, not this process's CPU)."""
    import torch

    opts = {n: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4) for n, (m, _, _) in arms.items()}
    for n, (m, bl, r) in arms.items():
        epoch_time(m, bl[:1], opts[n], r)
    reps = []
    for _ in range(repeats):
        load = os.getloadavg()[0]
        t = {n: epoch_cpu(m, bl, opts[n], r) for n, (m, bl, r) in arms.items()}
        rep: dict = {"load_1min": round(load, 2)}
        for i, kind in ((0, "wall"), (1, "cpu")):
            rep.update({f"{k}_{kind}_s": round(v[i], 3) for k, v in t.items()})
            for k in [k for k in t if k.startswith("full_k")]:
                rep[f"{k}_over_separate_{kind}"] = round(t[k][i] / t["separate"][i], 3)
                rep[f"{k}_over_solo_sum_{kind}"] = round(t[k][i] / (t["solo1"][i] + t["solo2"][i]), 3)
        reps.append(rep)
    keys = [k for k in reps[0] if k.startswith("full_k") and "_over_" in k]
    return {"repeats": reps, **{f"median_{k}": statistics.median(r[k] for r in reps) for k in keys}}


def mem_child(mode: str, size: dict, bs: int, steps: int = 3) -> dict:
    """One process, one mode: peak RSS of ``separate`` steps (both students, every path, no peer) with
    the single backward (``combined``) or the per-student one (``split``); RSS before the first step too."""
    import resource

    import torch

    from distill.train.mixture import MixtureModel

    with tempfile.TemporaryDirectory() as d:
        b = build(Path(d), bs * steps, size=size)
        batches = [b["ds"].collate(list(range(i * bs, (i + 1) * bs))) for i in range(steps)]
        model = MixtureModel(b["s1"], b["s2"]).train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        for batch in batches:
            out = model(batch, backward=(lambda loss: loss.backward()) if mode == "split" else None)
            if not out.backward_done:
                out.loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        tokens = int(sum(batches[0][k]["attention_mask"].sum() for k in ("s1", "s2")))
    return {"mode": mode, "peak_rss_gib": round(peak, 3), "rss_before_steps_gib": round(before, 3),
            "step_increment_gib": round(peak - before, 3), "tokens_per_batch": tokens}


def memory(size: dict, bs: int) -> dict:
    """``mem_child`` of each mode in a fresh process (a peak RSS is per process)."""
    import subprocess

    res = {}
    for mode in ("combined", "split"):
        cmd = [sys.executable, __file__, "--_mem_child", mode, "--bs", str(bs), "--mem_size", json.dumps(size)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        res[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    res["split_over_combined_increment"] = round(res["split"]["step_increment_gib"]
                                                 / max(res["combined"]["step_increment_gib"], 1e-9), 3)
    res["size"], res["bs"] = size, bs
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=64)
    ap.add_argument("--bs", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cost_every", default="1,4", help="comma list of --router_cost_every values, one arm each")
    ap.add_argument("--profile", action="store_true", help="print torch.profiler's top ops of one step per arm")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--memory", action="store_true", help="also: peak RSS, single vs per-student backward")
    ap.add_argument("--mem_size", default='{"hidden": 256, "layers": 4}', help="student size (JSON) for --memory")
    ap.add_argument("--_mem_child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args._mem_child:
        print(json.dumps(mem_child(args._mem_child, json.loads(args.mem_size), args.bs)))
        return 0
    if args.memory:
        mem = memory(json.loads(args.mem_size), args.bs)
        print(json.dumps(mem, indent=None if not args.json else 2))
        return 0
    with tempfile.TemporaryDirectory() as d:
        b = build(Path(d), args.paths, seed=args.seed)
        ks = [int(k) for k in str(args.cost_every).split(",")]
        arms = arms_for(b, args.bs, args.seed, ks)
        out = {"inputs": {"paths": args.paths, "bs": args.bs, "seed": args.seed, "threads": args.threads,
                          "cost_every": ks, "cores": os.cpu_count(), "peer": b["cfg"].peer.mode,
                          "students": "tiny llama + tiny qwen2 (hidden 64, 2 layers, vocab 512), LoRA r 8",
                          "paths_source": "gsm8k train solutions", "router_init": "untrained (random)"}}
        if args.profile:
            out["profile"] = {}
            for n, (m, bl, r) in arms.items():
                if r is not None:
                    r.set_progress(0.5)
                profile_step(m, bl[0])  # warm-up
                out["profile"][n] = profile_step(m, bl[len(bl) // 2], top=10)
        out["timing"] = timing(arms, args.repeats)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(json.dumps(out["inputs"]))
        for n, rows in out.get("profile", {}).items():
            print(f"profile {n}:")
            for row in rows:
                print(f"   {row['self_cpu_ms']:9.2f} ms  {row['calls']:5d}  {row['op']}")
        for r in out["timing"]["repeats"]:
            print(json.dumps(r))
        t = out["timing"]
        for k in [k for k in t if k.startswith("median_")]:
            print(f"{k} {t[k]:.3f}")
    best = min(v for k, v in out["timing"].items() if k.startswith("median_") and k.endswith("over_separate_cpu"))
    return 0 if best <= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
