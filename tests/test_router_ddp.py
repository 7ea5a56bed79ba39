"""The router's state under real 2-process training (CPU gloo): DDP and DeepSpeed ZeRO-2.

The router's running loss statistics and its bank of recent paths are buffers updated inside
``aux_loss``. Each rank sees different paths, so those buffers must be built from every rank's
batch and be identical on every rank -- not rank 0's copy broadcast by DDP at each forward (which
drops rank 1's paths), nor a per-rank copy of which only rank 0's is checkpointed (DeepSpeed).
The worker (``tests/router_ddp_worker.py``) trains a MixtureModel with a CoTRouter, prepared by
Accelerate, with a different batch (and batch size) on each rank; here we compare both ranks' buffers
with each other and with one process fed the concatenated batches.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from distill.router.router import CoTRouter

ROOT = Path(__file__).resolve().parent.parent
ACCELERATE = Path(sys.executable).parent / "accelerate"
WORKER = Path(__file__).resolve().parent / "router_ddp_worker.py"

LAUNCH = {
    # --multi_gpu with ACCELERATE_USE_CPU starts 2 real gloo processes (--cpu would start one)
    "ddp": (["--multi_gpu"], {"ACCELERATE_USE_CPU": "1"}),
    # (the worker's GRAD_ACCUM; DDP takes it from make_accelerator, DeepSpeed's plugin from this flag)
    "zero2": (["--use_deepspeed", "--zero_stage", "2", "--gradient_accumulation_steps", "2"],
              {"DS_ACCELERATOR": "cpu"}),
}


def _launch(backend: str, out: Path) -> tuple[dict, dict]:
    flags, env = LAUNCH[backend]
    cmd = [str(ACCELERATE), "launch", *flags, "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", str(WORKER), str(out)]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=420,
                         env={**os.environ, "OMP_NUM_THREADS": "1", **env})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    return tuple(torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["ddp", "zero2"])
def test_router_buffers_hold_every_ranks_paths_identically(tmp_path, backend):
    if backend == "zero2" and importlib.util.find_spec("deepspeed") is None:
        pytest.skip("deepspeed not installed: the ZeRO-2 case needs it")
    r0, r1 = _launch(backend, tmp_path)

    # The launch is what the engine runs: Accelerate-wrapped, and DDP told not to overwrite buffers.
    if backend == "ddp":
        assert r0["wrapper"] == r1["wrapper"] == "DistributedDataParallel"
        assert r0["broadcast_buffers"] is False and r1["broadcast_buffers"] is False
    else:
        assert r0["wrapper"] == r1["wrapper"] == "DeepSpeedEngine"
    # The ranks really saw different paths (and different batch sizes).
    s0, s1 = r0["seen"], r1["seen"]
    assert len(s0["emb"]) == len(s0["loss_stats"]) == len(s1["emb"]) > 2  # aux_loss once per micro-batch
    assert [len(e) for e in s0["emb"]] == [r0["sizes"][0]] * len(s0["emb"]) != [len(e) for e in s1["emb"]]
    assert not torch.equal(s0["nll1"][0][:3], s1["nll1"][0][:3])

    # Identical on both ranks, after every micro-batch and at the end.
    for a, b in zip(s0["loss_stats"], s1["loss_stats"], strict=True):
        assert torch.equal(a, b), (a, b)
    assert s0["bank_fill"] == s1["bank_fill"]
    assert r0["final"].keys() == r1["final"].keys() >= {"loss_stats", "stats_ready", "bank", "bank_cost",
                                                         "bank_fill", "bank_next"}
    for k in r0["final"]:
        assert torch.equal(r0["final"][k], r1["final"][k]), k

    # Equal to one process fed the concatenated batches (rank order), step by step.
    ref = CoTRouter(r0["embed"], hidden=8, bank_size=r0["bank_size"], momentum=r0["momentum"]).train()
    rows = []
    for step in range(len(s0["emb"])):
        emb = torch.cat([s0["emb"][step], s1["emb"][step]])
        nll1 = torch.cat([s0["nll1"][step], s1["nll1"][step]])
        nll2 = torch.cat([s0["nll2"][step], s1["nll2"][step]])
        ref.aux_loss(ref(emb), nll1, nll2)
        rows.append(emb)
        torch.testing.assert_close(s0["loss_stats"][step], ref.loss_stats, rtol=1e-6, atol=1e-7)
        assert s0["bank_fill"][step] == int(ref.bank_fill) == min(len(torch.cat(rows)), r0["bank_size"])
    for k, v in ref.named_buffers():
        torch.testing.assert_close(r0["final"][k], v, rtol=1e-6, atol=1e-7, msg=k)

    # The bank (full, it wrapped around) holds rows of both ranks, each one a path some rank fed.
    bank = r0["final"]["bank"]
    mine = [torch.cat(s["emb"]) for s in (s0, s1)]
    owner = [[r for r in (0, 1) if (mine[r] == row).all(-1).any()] for row in bank]
    assert all(len(o) == 1 for o in owner), owner
    assert {o[0] for o in owner} == {0, 1}, owner

    # Resume: the buffers are module buffers, saved by save_state and restored on BOTH ranks.
    for r in (r0, r1):
        for k in r["final"]:
            assert torch.equal(r["restored"][k], r["final"][k]), (r["rank"], k)
