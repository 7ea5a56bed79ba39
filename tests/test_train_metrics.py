"""What the loop records: route shares and the routing-collapse warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from distill.train.engine import _collapse_warnings
from distill.train.metrics import route_shares


def _rows(routes):
    return [{"route": r} for r in routes]


def test_route_shares_count_both_for_both_students():
    assert route_shares(_rows([1, 1, 2, "both"])) == {"s1": 0.75, "s2": 0.5}


def test_a_starved_student_is_warned_about_once_per_epoch(capsys):
    printed = []
    run = SimpleNamespace(unwrapped=SimpleNamespace(router=object(), student2=object()),
                          cfg=SimpleNamespace(router=SimpleNamespace(balance_weight=0.1)),
                          accelerator=SimpleNamespace(print=printed.append))
    rows = _rows([1] * 97 + [2] * 3)  # student 2: 3% < 5%
    msgs = _collapse_warnings(run, rows, epoch=1)
    assert len(msgs) == 1 and "student 2 received 3.0%" in msgs[0] and "epoch 2" in msgs[0]
    assert "--balance_weight" in msgs[0] and printed == [f"warning: {msgs[0]}"]
    assert _collapse_warnings(run, _rows([1] * 90 + [2] * 10), epoch=0) == []  # 10% is fed
    no_router = SimpleNamespace(unwrapped=SimpleNamespace(router=None, student2=object()))
    assert _collapse_warnings(no_router, rows, epoch=0) == []  # routing all: nothing to warn about


@pytest.mark.slow
def test_metrics_of_two_ranks_with_different_keys_are_averaged_per_key(tmp_path):
    """A peer statistic exists only on a rank whose batch had aligned pairs: the per-step reduction
    must not mismatch (it used to abort gloo: "Received data size doesn't match") and each key is
    the mean over the ranks that recorded it."""
    out = tmp_path / "metrics.jsonl"
    proc = subprocess.run([str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu",
                           "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                           "--dynamo_backend", "no", str(Path(__file__).parent / "metrics_ddp_worker.py"), str(out)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "ACCELERATE_USE_CPU": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = json.loads(out.read_text())
    assert rec["loss_s1"] == 1.5 and rec["loss"] == 3.0 and rec["nll2"] == 3.0
    assert rec["peer_w1"] == 0.25  # only rank 1 had it: its own value, not halved
    assert rec["lr_student1"] == 0.1 and rec["step"] == 1
