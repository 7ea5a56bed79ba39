"""What the loop records: per-step metrics, router-log rows, throughput and peak memory.

- ``metrics.jsonl``: one line per ``log_every`` optimizer steps, each value the mean over
  accumulated micro-batches and over ranks (also sent to the ``--report_to`` tracker).
- ``router_logs_epoch{e}.jsonl``: one row per path and epoch, gathered from every rank: where the
  router sent it, its probabilities and both students' loss on it (the evidence behind the decision).
- ``train_summary.json``: steps, tokens/s, mean step time and peak memory (see :func:`peak_memory_gib`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch


def router_log_rows(meta: dict[str, list], out) -> list[dict[str, Any]]:
    """One router-log row per path of a micro-batch (``meta``: the batch's ``meta`` lists; ``out``: the
    mixture's :class:`~distill.train.mixture.MixtureOutput`). ``route`` is 1, 2 or ``"both"``."""
    probs = out.route_probs.detach().float().cpu().tolist() if out.route_probs is not None else None
    # each student's loss on every path (routed or not): what the router's decision was based on
    nlls = torch.stack([out.nll1, out.nll2], dim=-1).detach().float().cpu().tolist()
    rows = []
    for j, (i, p, s, r, c) in enumerate(zip(meta["ids"], meta["path_idx"], meta["styles"], out.route.tolist(),
                                            meta["correct"])):
        rows.append({"id": i, "path_idx": p, "style": s, "route": "both" if int(r) == 3 else int(r),
                     "probs": probs[j] if probs is not None else None,
                     "nll": [None if x != x else round(x, 5) for x in nlls[j]], "correct": c})  # None: not run
    return rows


def route_shares(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Share of an epoch's paths that trained each student (``"both"`` counts for both)."""
    n = max(1, len(rows))
    return {f"s{k}": sum(r["route"] in (k, "both") for r in rows) / n for k in (1, 2)}


#: a student that receives fewer than this share of an epoch's paths has been starved by the router
STARVED_SHARE = 0.05


class MetricsLog:
    """Accumulates micro-batch scalars and writes one record per logged optimizer step.

    Every rank calls :meth:`add` and :meth:`step` (the reduction is collective); only the main
    process writes the file and updates the progress bar.
    """

    def __init__(self, accelerator, path: Path, *, grad_accum: int, log_every: int, total_steps: int,
                 tracker: bool, bar=None):
        self.accelerator = accelerator
        self.grad_accum = grad_accum
        self.log_every = log_every
        self.total_steps = total_steps
        self.tracker = tracker
        self.bar = bar
        self.acc: dict[str, float] = {}
        self.fh = open(path, "a", encoding="utf-8") if accelerator.is_main_process else None

    def add(self, out) -> None:
        for k, v in (("loss", float(out.loss.detach())), ("nll1", float(out.nll1.detach().nanmean())),
                     ("nll2", float(out.nll2.detach().nanmean())), *out.logs.items()):
            self.acc[k] = self.acc.get(k, 0.0) + v / self.grad_accum

    def step(self, step: int, epoch: int, step_time: float, optimizer) -> None:
        """Close optimizer step ``step``: write its record when it is a logging step, then reset."""
        if step % self.log_every == 0 or step == self.total_steps:
            rec = {"step": step, "epoch": epoch + 1, **self._mean_over_ranks(), "step_time_s": step_time}
            for g in optimizer.param_groups:
                rec[f"lr_{g.get('name', 'group')}"] = g["lr"]
            if self.fh is not None:
                self.fh.write(json.dumps(rec) + "\n")
                self.fh.flush()
                if self.bar is not None:  # the students' losses (the total holds the router cost, can be < 0)
                    self.bar.set_postfix({k: f"{rec[k]:.4f}" for k in ("loss_s1", "loss_s2") if k in rec}
                                         or {"loss": f"{rec['loss']:.4f}"})
            if self.tracker:
                self.accelerator.log({k: v for k, v in rec.items() if k != "step"}, step=step)
        self.acc = {}
        if self.bar is not None:
            self.bar.update(1)

    def _mean_over_ranks(self) -> dict[str, float]:
        """Each metric's mean over the ranks that recorded it. Ranks may hold different keys (a peer
        statistic exists only where a batch had aligned pairs), so the key sets are gathered first and
        every rank reduces the same tensor: sums and counts of the union of keys."""
        if self.accelerator.num_processes == 1:
            return dict(sorted(self.acc.items()))
        from accelerate.utils import gather_object

        keys = sorted(set().union(*gather_object([sorted(self.acc)])))
        vals = [self.acc.get(k, 0.0) for k in keys] + [float(k in self.acc) for k in keys]
        red = self.accelerator.reduce(torch.tensor(vals, dtype=torch.float64, device=self.accelerator.device), "sum")
        sums, counts = red[: len(keys)].tolist(), red[len(keys):].tolist()
        return {k: s / c for k, s, c in zip(keys, sums, counts) if c > 0}

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None
        if self.bar is not None:
            self.bar.close()


class Throughput:
    """Optimizer-step wall times and tokens seen by this rank."""

    def __init__(self) -> None:
        self.step_times: list[float] = []
        self.tokens = 0
        self._t = time.perf_counter()

    def tick(self) -> float:
        now = time.perf_counter()
        self.step_times.append(now - self._t)
        self._t = now
        return self.step_times[-1]

    def summary(self, world: int) -> dict[str, float]:
        """``tokens_this_run`` and, after two steps or more, ``mean_step_time_s`` (first step excluded:
        it pays warm-up) and ``tokens_per_s``."""
        out: dict[str, float] = {"tokens_this_run": self.tokens * world}
        if len(self.step_times) > 1:
            out["mean_step_time_s"] = sum(self.step_times[1:]) / (len(self.step_times) - 1)
            out["tokens_per_s"] = self.tokens * world / max(1e-9, sum(self.step_times))
        return out


def peak_memory_gib(accelerator) -> dict[str, float]:
    """Peak memory over all processes, in GiB: the resident set (CPU) and, on CUDA, the allocator's peak.

    Why: machines are sized by the worst rank, so this is the number a user needs to pick a GPU or
    decide on ``--load_in_4bit`` / ZeRO; it lands in ``train_summary.json`` next to tokens/s.
    """
    import resource

    vals = [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20]  # ru_maxrss is KiB on Linux
    on_cuda = accelerator.device.type == "cuda"
    if on_cuda:
        vals.append(torch.cuda.max_memory_allocated(accelerator.device) / 2**30)
    peak = accelerator.gather(torch.tensor([vals], dtype=torch.float64, device=accelerator.device))
    peak = peak.view(-1, len(vals)).max(dim=0).values.tolist()
    out = {"peak_rss_gib": round(peak[0], 3)}
    if on_cuda:
        out["peak_gpu_mem_gib"] = round(peak[1], 3)
    return out
