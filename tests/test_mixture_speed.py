"""Routing saves compute without changing what is learned: real tiny LoRA students (llama + qwen2,
different tokenizers), the real CoT router, random router and hidden-state peer teaching.

- a partial step (``--router_cost_every`` > 1, or random routing) runs a student only on its own
  paths and gives the same losses, peer terms and gradients as the full step with the same routes;
- the router's cost steps come every ``cost_every`` training calls, it learns from its bank between
  them, and the counter is checkpointed;
- the per-student backward gives the gradients of the single backward.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from distill.errors import ConfigError
from distill.router.router import CoTRouter, RouteDecision, options_to_decision

EMB = 16


def _examples(n=8):
    out = []
    for i in range(n):
        a, b = 3 + 7 * i, 11 + 5 * i
        resp = (f"Ann starts with {a}. {a} + {b} = {a + b}. The answer is \\boxed{{{a + b}}}." if i % 2 == 0
                else f"x = {a} + {b}\nprint(x)  # {a + b}\nThe answer is \\boxed{{{a + b}}}.")
        out.append({"id": f"q{i}", "path_idx": i % 2, "style": ["cot", "pot"][i % 2], "correct": True,
                    "question_text": f"Ann has {a} apples and buys {b} more. How many apples?", "response": resp})
    return out


class FixedRouter(nn.Module):
    """A router with given routes (codes 1/2/3) that asks for a cost step or not: the same routes can be
    run as a full and as a partial step."""

    def __init__(self, routes: list[int], full_cost: bool):
        super().__init__()
        self.routes, self.full_cost = torch.tensor(routes), full_cost

    def set_progress(self, frac: float) -> float:
        return 0.0

    def forward(self, emb: torch.Tensor) -> RouteDecision:
        y = F.one_hot(self.routes - 1, 3).float()
        return options_to_decision(y, torch.zeros_like(y), torch.full_like(y, 1 / 3), full_cost=self.full_cost)

    def aux_loss(self, decision, nll1, nll2):
        return decision.mask.new_zeros(())


@pytest.fixture(scope="module")
def parts(tiny_llama, tiny_qwen2):
    from distill.students.data import PathDataset
    from distill.students.load import load_student
    from distill.train.config import TrainConfig

    cfg = TrainConfig.from_flat(task="arith", model1=str(tiny_llama), model2=str(tiny_qwen2), lora_dropout=0.0,
                                lora_r=4, eval_at_end=False)
    torch.manual_seed(0)
    s1, t1 = load_student(str(tiny_llama), cfg.students, cfg.lora)
    s2, t2 = load_student(str(tiny_qwen2), cfg.students, cfg.lora, flag="--model2")
    ds = PathDataset(_examples(), {"s1": t1, "s2": t2}, {"s1": 256, "s2": 256})
    emb = torch.randn(len(ds), EMB, generator=torch.Generator().manual_seed(0))
    ds.route_emb = emb / emb.norm(dim=-1, keepdim=True)
    return cfg, s1, s2, t1, t2, ds


def _peer(parts):
    from distill.peer.build import build_peer

    cfg, s1, s2, t1, t2, _ = parts
    torch.manual_seed(3)
    return build_peer(cfg.peer, s1, s2, t1, t2)


def _trainable(model):
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def _step(model, batch):
    """(output, {param: grad}) of one forward + backward, and which student forwards ran how many rows."""
    calls = []
    hooks = [getattr(model, k).register_forward_hook(
        lambda mod, args, kw, out, k=k: calls.append((k, kw["input_ids"].shape[0], torch.is_grad_enabled())),
        with_kwargs=True) for k in ("student1", "student2")]
    model.zero_grad(set_to_none=True)
    out = model(batch)
    out.loss.backward()
    for h in hooks:
        h.remove()
    grads = {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
             for n, p in _trainable(model).items()}
    return out, grads, sorted(calls)


ROUTES = [1, 2, 3, 1, 3, 2, 1, 3]  # s1 only, s2 only, both


@pytest.mark.parametrize("with_peer", [False, True])
def test_a_partial_step_learns_exactly_what_the_full_step_learns(parts, with_peer):
    """Same routes, full step (unrouted rows under no_grad) vs partial step (not run at all): the same
    student losses, peer loss and gradients, and only the routed rows were run."""
    from distill.train.mixture import MixtureModel

    *_, ds = parts
    _, s1, s2, *_ = parts
    peer = _peer(parts) if with_peer else None
    batch = ds.collate(list(range(len(ds))))
    res = {}
    for full in (True, False):
        model = MixtureModel(s1, s2, FixedRouter(ROUTES, full), peer).train()
        res[full] = _step(model, batch)
    (o_full, g_full, c_full), (o_part, g_part, c_part) = res[True], res[False]
    r = torch.tensor(ROUTES)
    n1, n2 = int((r != 2).sum()), int((r != 1).sum())
    assert c_full == sorted([("student1", n1, True), ("student1", 8 - n1, False),
                             ("student2", n2, True), ("student2", 8 - n2, False)])
    assert c_part == sorted([("student1", n1, True), ("student2", n2, True)])  # no forward on unrouted rows
    for k in ("loss_s1", "loss_s2") + (("peer", "peer_pairs", "peer_co_routed") if with_peer else ()):
        assert o_part.logs[k] == pytest.approx(o_full.logs[k], rel=1e-5, abs=1e-6), k
    if with_peer:
        assert o_part.logs["peer_pairs"] > 0
    assert set(g_full) == set(g_part)
    for n in g_full:
        torch.testing.assert_close(g_part[n], g_full[n], rtol=1e-4, atol=1e-6, msg=n)
    assert any(float(g.abs().sum()) > 0 for n, g in g_part.items() if "student2" in n)
    # routed rows keep their loss, unrouted ones read NaN (not run) and weigh nothing
    assert torch.isnan(o_part.nll1[r == 2]).all() and torch.isnan(o_part.nll2[r == 1]).all()
    torch.testing.assert_close(o_part.nll1[r != 2], o_full.nll1[r != 2].detach(), rtol=1e-4, atol=1e-6)


def test_random_routing_never_runs_the_paths_not_routed(parts):
    from distill.router.router import RandomRouter
    from distill.train.mixture import MixtureModel

    *_, ds = parts
    _, s1, s2, *_ = parts
    model = MixtureModel(s1, s2, RandomRouter(seed=0)).train()
    out, _, calls = _step(model, ds.collate(list(range(len(ds)))))
    routes = out.route
    assert all(grad for *_, grad in calls)
    assert calls == sorted([("student1", int((routes != 2).sum()), True), ("student2", int((routes != 1).sum()), True)])


def test_cost_steps_come_every_k_calls_and_the_router_learns_between_them(parts):
    """cost_every 3: calls 0 (statistics unset), 3, 6 are cost steps; between them the students run only
    their rows, the statistics and the bank stay as they were, and the router still gets a gradient."""
    from distill.train.mixture import MixtureModel

    *_, ds = parts
    _, s1, s2, *_ = parts
    torch.manual_seed(0)
    router = CoTRouter(EMB, hidden=8, cost_every=3)
    model = MixtureModel(s1, s2, router).train()
    batch = ds.collate(list(range(len(ds))))
    kinds = []
    for step in range(7):
        stats, fill = router.loss_stats.clone(), int(router.bank_fill)
        out, grads, calls = _step(model, batch)
        full = sum(n for _, n, _ in calls) == 2 * len(ds)
        kinds.append(full)
        if full:
            assert not torch.isnan(out.nll1).any() and not torch.isnan(out.nll2).any()
            assert int(router.bank_fill) == min(fill + len(ds), router.bank.shape[0])
        else:
            assert torch.equal(router.loss_stats, stats) and int(router.bank_fill) == fill
            assert torch.isnan(torch.cat([out.nll1, out.nll2])).any()
        assert float(sum(g.abs().sum() for n, g in grads.items() if n.startswith("router."))) > 0, step
    assert kinds == [True, False, False, True, False, False, True]
    assert int(router.calls) == 7
    b = CoTRouter(EMB, hidden=8, cost_every=3)
    b.load_state_dict(router.state_dict())  # a resumed run picks the same cost steps
    assert int(b.calls) == 7


def test_cost_every_is_validated_and_reaches_the_router(parts):
    from distill.router.build import build_router
    from distill.train.config import TrainConfig

    cfg, *_ = parts
    with pytest.raises(ConfigError, match="router_cost_every"):
        TrainConfig.from_flat(task="arith", model1="m", model2="n", router_cost_every=0)
    good = TrainConfig.from_flat(task="arith", model1="m", model2="n", router_cost_every=4)
    assert build_router(good.router, EMB).cost_every == 4
    assert build_router(cfg.router, EMB).cost_every == cfg.router.cost_every


@pytest.mark.parametrize("routing", ["all", "learned"])
def test_per_student_backward_gives_the_single_backwards_gradients(parts, routing):
    """forward(batch, backward=...) backpropagates student 1 before student 2 runs: the same gradients
    (students and router) as one backward of the summed loss, and student 1's backward came first."""
    from distill.train.mixture import MixtureModel

    *_, ds = parts
    _, s1, s2, *_ = parts
    batch = ds.collate(list(range(len(ds))))
    grads, losses = {}, {}
    for split in (False, True):
        torch.manual_seed(0)
        router = CoTRouter(EMB, hidden=8) if routing == "learned" else None
        model = MixtureModel(s1, s2, router).train()
        model.zero_grad(set_to_none=True)
        torch.manual_seed(5)  # the same Gumbel draw both ways
        order = []
        if split:
            def backward(loss):
                order.append([n for n, p in _trainable(model).items() if p.grad is not None])
                loss.backward()
            out = model(batch, backward=backward)
            assert out.backward_done and not out.loss.requires_grad
            assert order[0] == []  # student 1's backward ran before anything had a gradient
            assert order[1] and all(n.startswith("student1.") for n in order[1])  # then only student 1's
        else:
            out = model(batch)
            assert not out.backward_done
            out.loss.backward()
        losses[split] = float(out.loss)
        grads[split] = {n: p.grad.detach().clone() for n, p in _trainable(model).items() if p.grad is not None}
    assert losses[True] == pytest.approx(losses[False], abs=1e-6)
    assert set(grads[True]) == set(grads[False]) and any(n.startswith("student2.") for n in grads[True])
    if routing == "learned":
        assert any(n.startswith("router.") for n in grads[True])
    for n in grads[False]:
        torch.testing.assert_close(grads[True][n], grads[False][n], rtol=0, atol=1e-6, msg=n)


def test_with_peer_teaching_the_backward_stays_combined(parts):
    from distill.train.mixture import MixtureModel

    *_, ds = parts
    _, s1, s2, *_ = parts
    model = MixtureModel(s1, s2, FixedRouter(ROUTES, True), _peer(parts)).train()
    calls = []
    out = model(ds.collate(list(range(len(ds)))), backward=calls.append)
    assert calls == [] and not out.backward_done and out.loss.requires_grad


def test_the_step_kind_is_the_routers_not_this_batchs(parts):
    """Under DDP a cost step runs collectives in the router, so every rank must take the same branch:
    a partial step whose rows all go to both students (nothing to skip) still hands the router no costs."""
    from distill.train.mixture import MixtureModel

    *_, ds = parts
    _, s1, s2, *_ = parts
    seen = []

    class Recording(FixedRouter):
        def aux_loss(self, decision, nll1, nll2):
            seen.append((nll1 is None, nll2 is None))
            return super().aux_loss(decision, nll1, nll2)

    for full in (False, True):
        MixtureModel(s1, s2, Recording([3] * len(ds), full)).train()(ds.collate(list(range(len(ds)))))
    assert seen == [(True, True), (False, False)]


@pytest.mark.slow  # a real (tiny) training run: ~30-60 s on 2 shared cores
def test_engine_trains_separate_students_with_the_per_student_backward(tmp_path, tiny_llama, tiny_qwen2,
                                                                       tiny_train_data):
    """``distill train --recipe separate`` in one process takes the per-student backward path of the
    engine (no peer): it finishes and both students' adapters were trained."""
    import subprocess
    import sys

    from safetensors.torch import load_file

    cmd = [sys.executable, "-m", "distill.commands.train", "--recipe", "separate", "--task", "arith",
           "--model1", str(tiny_llama), "--model2", str(tiny_qwen2), "--data_root", str(tiny_train_data),
           "--outdir", str(tmp_path / "run"), "--epochs", "1", "--bs", "4", "--lora_r", "4", "--lr_s1", "5e-3",
           "--lr_s2", "5e-3", "--eval_at_end", "false"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("student1", "student2"):
        a = load_file(str(tmp_path / "run" / name / "adapter_model.safetensors"))
        assert any(k.endswith("lora_B.weight") and float(v.abs().sum()) > 0 for k, v in a.items()), name
