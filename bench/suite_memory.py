"""``peak_memory``: peak resident set (CPU; the CUDA allocator peak on a GPU) of training steps, one
configuration per child process (a process's peak only grows, so configurations cannot share one).

Configurations (same students, GSM8K paths, batch): student 1 alone, the two-student mixture
(``separate``: one forward of both, one backward), the mixture with the backward split per student
(student 1's forward + backward, then student 2's: the change the issue asks about, measured here with the
engine's own ``MixtureModel`` steps, not wired into the engine), each with and without gradient checkpointing.
``step_delta_gib`` is the peak minus the resident set after loading (what the steps added: activations,
gradients, optimizer state).

    python bench/suite_memory.py --child CONFIG.json    # one configuration, prints one JSON line
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from suite_common import ROOT, figure, make_pair, torch_threads

SIZE = {"hidden": 256, "layers": 4}
CONFIGS = (("solo1", False), ("solo1", True), ("mixture", False), ("mixture", True), ("mixture_split", False),
           ("mixture_split", True))
QUICK_CONFIGS = (("solo1", False), ("mixture", False), ("mixture", True), ("mixture_split", False))


def _rss_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def child(cfg_path: str) -> int:
    o = json.loads(Path(cfg_path).read_text())
    import torch

    from suite_common import gsm8k_paths, load_pair

    from distill.students.data import PathDataset
    from distill.train.mixture import MixtureModel

    torch.set_num_threads(o["threads"])
    two = o["mode"] != "solo1"
    _, s1, t1, s2, t2 = load_pair(Path(o["m1"]), Path(o["m2"]) if two else None,
                                  gradient_checkpointing=o["gradient_checkpointing"], seed=o["seed"])
    toks = {"s1": t1, "s2": t2} if two else {"s1": t1}
    ds = PathDataset(gsm8k_paths(o["bs"] * o["steps"]), toks, {k: o["max_len"] for k in toks})
    params = [p for m in (s1, s2) if m is not None for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    whole = MixtureModel(s1, s2 if two else None)
    parts = [MixtureModel(s1, None), MixtureModel(s2, None)] if two else []
    for m in (whole, *parts):
        m.train()  # as the engine does: checkpointing and dropout only act in training mode
    loaded = _rss_gib()
    for step in range(o["steps"]):
        batch = ds.collate(list(range(step * o["bs"], (step + 1) * o["bs"])))
        if o["mode"] == "mixture_split":
            for key, m in zip(("s1", "s2"), parts):
                m({"s1": batch[key], "meta": batch["meta"], "route_emb": None}).loss.backward()
        else:
            whole(batch).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    out = {"peak_rss_gib": round(peak, 3), "loaded_rss_gib": round(loaded, 3), "step_delta_gib": round(peak - loaded, 3)}
    if torch.cuda.is_available():
        out["peak_gpu_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    print(json.dumps(out), flush=True)
    return 0


def peak_memory_figure(tmp: Path, quick: bool, seed: int = 0) -> dict[str, Any]:
    p1, p2 = make_pair(tmp, SIZE)
    opts = {"m1": str(p1), "m2": str(p2), "bs": 8, "steps": 1 if quick else 3, "max_len": 512, "seed": seed,
            "threads": torch_threads()}
    rows: dict[str, Any] = {}
    for mode, gc in (QUICK_CONFIGS if quick else CONFIGS):
        name = f"{mode}{'+gc' if gc else ''}"
        cfg = tmp / f"mem_{name}.json"
        cfg.write_text(json.dumps({**opts, "mode": mode, "gradient_checkpointing": gc}))
        res = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(cfg)], capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}",
                                             "OMP_NUM_THREADS": str(opts["threads"])})
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
        if res.returncode or not lines:
            raise RuntimeError(f"peak_memory {name}: child failed (rc {res.returncode}): "
                               f"{res.stderr.strip().splitlines()[-2:]}")
        rows[name] = json.loads(lines[-1])
    mix, split = rows["mixture"]["step_delta_gib"], rows["mixture_split"]["step_delta_gib"]
    return figure("peak_memory", rows["mixture"]["peak_rss_gib"], None, "<=", unit="GiB peak RSS (mixture)",
                  inputs={**{k: v for k, v in opts.items() if k not in ("m1", "m2")},
                          "students": f"tiny llama + qwen2 {SIZE}, LoRA r 8", "source": "gsm8k train solutions"},
                  configs=rows, split_over_joint_step_delta=round(split / mix, 3) if mix > 0 else None,
                  note="per-student backward split halves the two-student step peak when this ratio is <= ~0.5")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.exit(child(sys.argv[2]))
    print(__doc__)
    sys.exit(2)
