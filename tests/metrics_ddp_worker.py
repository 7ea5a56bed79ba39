"""Worker for tests/test_train_metrics.py: two ranks record different metric keys; rank 0 writes the
record MetricsLog makes of them (run under ``accelerate launch --multi_gpu --num_processes 2``)."""

import sys
from pathlib import Path
from types import SimpleNamespace

import torch
from accelerate import Accelerator

from distill.train.metrics import MetricsLog

acc = Accelerator(cpu=True)
rank = acc.process_index
log = MetricsLog(acc, Path(sys.argv[1]), grad_accum=1, log_every=1, total_steps=1, tracker=False)
logs = {"loss_s1": 1.0 + rank} | ({"peer_w1": 0.25} if rank == 1 else {})  # rank 0: no aligned pairs
out = SimpleNamespace(loss=torch.tensor(2.0 * (rank + 1)), nll1=torch.tensor([1.0]), nll2=torch.tensor([3.0]),
                      logs=logs)
log.add(out)
opt = SimpleNamespace(param_groups=[{"name": "student1", "lr": 0.1}])
log.step(1, 0, 0.5, opt)
log.close()
# leave the process group before exit: a gloo rank that exits with it alive can abort at shutdown
# ("terminate called without an active exception", SIGABRT), seen under load
acc.wait_for_everyone()
acc.state.destroy_process_group()
