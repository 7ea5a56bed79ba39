"""The mixture through the engine's ``MixtureModel`` and ``train``: real LoRA students with different
tokenizers, the real MiniLM path encoder, the learned router and peer teaching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from distill.router.build import build_router
from distill.router.router import CoTRouter, RandomRouter


def _cfg(m1, m2, **kw):
    from distill.train.config import TrainConfig

    base = dict(task="arith", model1=str(m1), model2=str(m2), lora_dropout=0.0, lora_r=4, eval_at_end=False)
    base.update(kw)
    return TrainConfig.from_flat(**base)


def _examples(n=6):
    out = []
    for i in range(n):
        a, b = 3 + 7 * i, 11 + 5 * i
        resp = (f"Ann starts with {a}. {a} + {b} = {a + b}. The answer is \\boxed{{{a + b}}}." if i % 2 == 0
                else f"x = {a} + {b}\nprint(x)  # {a + b}\nThe answer is \\boxed{{{a + b}}}.")
        out.append({"id": f"q{i}", "path_idx": i % 2, "style": ["cot", "pot"][i % 2], "correct": True,
                    "question_text": f"Ann has {a} apples and buys {b} more. How many apples?", "response": resp})
    return out


@pytest.fixture(scope="module")
def parts(tiny_llama, tiny_qwen2, tmp_path_factory):
    """(cfg factory, students, tokenizers, dataset with cached MiniLM route embeddings)."""
    from distill.router.encoder import PathEmbedder, path_text
    from distill.students.data import PathDataset
    from distill.students.load import load_student

    cfg = _cfg(tiny_llama, tiny_qwen2)
    torch.manual_seed(0)
    s1, t1 = load_student(str(tiny_llama), cfg.students, cfg.lora)
    s2, t2 = load_student(str(tiny_qwen2), cfg.students, cfg.lora, flag="--model2")
    ds = PathDataset(_examples(), {"s1": t1, "s2": t2}, {"s1": 256, "s2": 256})
    emb = PathEmbedder("minilm", tmp_path_factory.mktemp("emb")).embed(
        [path_text(e["question_text"], e["response"]) for e in ds.examples])
    ds.route_emb = emb
    return (lambda **kw: _cfg(tiny_llama, tiny_qwen2, **kw)), s1, s2, t1, t2, ds


def _mixture(parts, **kw):
    from distill.peer.build import build_peer
    from distill.train.mixture import MixtureModel

    make, s1, s2, t1, t2, ds = parts
    cfg = make(**kw)
    torch.manual_seed(1)
    router = build_router(cfg.router, ds.route_emb.shape[1])
    peer = build_peer(cfg.peer, s1, s2, t1, t2)
    return MixtureModel(s1, s2, router, peer).train()


def _grads(module):
    return {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
            for n, p in module.named_parameters() if p.requires_grad}


def test_router_and_peer_learn_through_the_mixture(parts):
    *_, ds = parts
    model = _mixture(parts, routing="learned", use_kl=True, peer_loss="auto", kl_weight=1.0, balance_weight=0.1)
    assert isinstance(model.router, CoTRouter) and model.peer.mode == "hidden"
    # start every path at "both" (still stochastic) so the peer sees co-routed paths at step 0
    with torch.no_grad():
        model.router.net[-1].bias.copy_(torch.tensor([0.0, 0.0, 3.0]))
    watched = {**{f"router.{n}": p for n, p in model.router.named_parameters()},
               **{f"peer.{n}": p for n, p in model.peer.named_parameters()}}
    before = {n: p.detach().clone() for n, p in watched.items()}
    opt = torch.optim.Adam(list(model.router.parameters()) + list(model.peer.parameters()), lr=1e-2)
    batch = ds.collate(list(range(len(ds))))
    for step in range(3):
        model.zero_grad()
        out = model(batch)
        out.loss.backward()
        if step == 0:
            assert out.logs["peer_pairs"] > 0
            for n, p in watched.items():
                assert p.grad is not None and p.grad.abs().sum() > 0, f"{n} got no gradient"
        opt.step()
    for n, p in watched.items():
        assert not torch.equal(before[n], p), f"{n} did not change"
    assert out.route.shape == (len(ds),) and out.route_probs.shape == (len(ds), 3)


def test_router_gradient_comes_from_the_student_losses(parts):
    """No balance term, no peer: the router's gradient is exactly that of the expected routing cost
    of the students' own per-path losses, it is non-zero, and the students' losses do not send
    gradient into the router any other way."""
    from distill.losses import expected_cost, routing_cost

    *_, ds = parts
    model = _mixture(parts, routing="learned", use_kl=False, balance_weight=0.0)
    batch = ds.collate(list(range(len(ds))))
    out = model(batch)
    params = list(model.router.parameters())
    g = torch.autograd.grad(out.loss, params, retain_graph=True)
    assert all(x.abs().sum() > 0 for x in g)
    want = torch.autograd.grad(expected_cost(out.route_probs, routing_cost(out.nll1, out.nll2)), params)
    for a, b in zip(g, want):
        torch.testing.assert_close(a, b)


def test_path_routed_to_one_student_gives_no_gradient_in_the_other(parts):
    *_, ds = parts
    model = _mixture(parts, routing="random", use_kl=True, peer_loss="hidden", kl_weight=1.0)
    assert isinstance(model.router, RandomRouter)
    idx = list(range(len(ds)))
    routes = model.router(ds.route_emb).route.tolist()
    assert set(routes) == {1, 2, 3}, routes  # this seed exercises all three cases
    # student 2's gradient with the s1-only paths in the batch == without them
    model.zero_grad()
    model(ds.collate(idx)).loss.backward()
    g_all = _grads(model.student2)
    model.zero_grad()
    model(ds.collate([i for i in idx if routes[i] != 1])).loss.backward()
    g_sub = _grads(model.student2)
    assert any(v.abs().sum() > 0 for v in g_all.values())
    for n in g_all:
        assert torch.allclose(g_all[n], g_sub[n], atol=1e-6, rtol=1e-4), n
    # and a batch whose paths all go to student 1 leaves student 2 (and the peer) untouched
    model.zero_grad()
    only1 = [i for i in idx if routes[i] == 1]
    out = model(ds.collate(only1))
    out.loss.backward()
    assert all(v.abs().sum() == 0 for v in _grads(model.student2).values())
    assert any(v.abs().sum() > 0 for v in _grads(model.student1).values())
    assert out.logs["peer_co_routed"] == 0


def test_routing_all_and_no_kl_reproduce_the_plain_engine(parts):
    from distill.losses import per_example_nll

    make, s1, s2, t1, t2, ds = parts
    model = _mixture(parts, routing="all", use_kl=False)
    assert model.router is None and model.peer is None
    batch = ds.collate(list(range(len(ds))))
    model.zero_grad()
    out = model(batch)
    out.loss.backward()
    g_mix = {**_grads(model.student1), **{"2." + k: v for k, v in _grads(model.student2).items()}}
    # the plain objective: each student's mean NLL over every path
    model.zero_grad()
    plain = sum(per_example_nll(s(input_ids=batch[k]["input_ids"], attention_mask=batch[k]["attention_mask"]).logits,
                                batch[k]["labels"]).mean() for s, k in ((s1, "s1"), (s2, "s2")))
    plain.backward()
    g_plain = {**_grads(model.student1), **{"2." + k: v for k, v in _grads(model.student2).items()}}
    assert out.loss.item() == pytest.approx(plain.item(), rel=1e-6)
    assert (out.route == 3).all()
    for n in g_mix:
        assert torch.equal(g_mix[n], g_plain[n]), n


# ----------------------------------------------------------------------- end to end (engine)
def _train(tmp_path, tiny_llama, tiny_qwen2, data_root, **kw):
    from distill.train.engine import train

    cfg = _cfg(tiny_llama, tiny_qwen2, data_root=str(data_root), outdir=str(tmp_path / "run"), bs=4, **kw)
    return train(cfg), tmp_path / "run"


def test_full_method_end_to_end_with_posrate(tmp_path, tiny_llama, tiny_qwen2, tiny_train_data, capsys):
    from distill.commands import main

    summary, out = _train(tmp_path, tiny_llama, tiny_qwen2, tiny_train_data, routing="learned", use_kl=True,
                          epochs=2, kl_weight=0.5)
    assert summary["steps"] == 8
    for e in (1, 2):
        lines = [json.loads(x) for x in (out / f"router_logs_epoch{e}.jsonl").read_text().splitlines()]
        assert len(lines) == 16, "one line per routed path (8 rows x 2 paths)"
        assert {ln["route"] for ln in lines} <= {1, 2, "both"}
        assert all(abs(sum(ln["probs"]) - 1) < 1e-4 and ln["correct"] is True for ln in lines)
        assert {(ln["id"], ln["path_idx"]) for ln in lines} == {(f"q{i}", p) for i in range(8) for p in (0, 2)}
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(m.get("peer_pairs", 0) > 0 for m in metrics), "peer teaching ran on co-routed paths"
    assert main(["posrate", "--log_dir", str(out), "--json"]) == 0
    rates = json.loads(capsys.readouterr().out)
    assert sum(v["count"] for v in rates["all"].values()) == 32
    assert set(rates["per_epoch"]) == {"1", "2"} and set(rates["by_path_idx"]["all"]) == {"0", "2"}


def _enriched_root(tmp_path, base):
    """A copy of the tiny data with an enriched file that also holds a wrong path per row."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(base, root)
    rows = []
    for ln in (root / "arith/train/train.correct.jsonl").read_text().splitlines():
        r = json.loads(ln)
        src = {"id": r["id"], "gold_answer": r["gold_answer"],
               "question": f"Ann has some apples and buys more. How many apples? ({r['id']})"}
        src.update(styles=r["styles"] + ["cot"], prompts=["p"] * 3, preds=r["preds"] + ["0"],
                   correct_flags=[True, True, False], responses=r["responses"] + ["The answer is \\boxed{0}."])
        rows.append(json.dumps(src))
    (root / "arith/train/train.enriched.jsonl").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize("ablation", ["no_quality_filter", "no_routing", "random_routing", "no_collaboration",
                                      "frozen_peer"])
def test_ablations_run_from_a_flag(ablation, tmp_path, tiny_llama, tiny_qwen2, tiny_train_data):
    from safetensors.torch import load_file

    flags = {"no_quality_filter": dict(is_quality=False, routing="learned", use_kl=True),
             "no_routing": dict(routing="all", use_kl=True),
             "random_routing": dict(routing="random", use_kl=True),
             "no_collaboration": dict(routing="learned", use_kl=False),
             "frozen_peer": dict(routing="learned", use_kl=True, freeze_s2=True)}[ablation]
    root = _enriched_root(tmp_path, tiny_train_data) if ablation == "no_quality_filter" else tiny_train_data
    summary, out = _train(tmp_path, tiny_llama, tiny_qwen2, root, epochs=1, max_steps=2, **flags)
    assert summary["steps"] == 2
    assert summary["paths"] == (24 if ablation == "no_quality_filter" else 16)
    routes = {json.loads(x)["route"] for x in (out / "router_logs_epoch1.jsonl").read_text().splitlines()}
    if ablation == "no_routing":
        assert routes == {"both"}
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert ("peer" in metrics[0]) == flags["use_kl"]
    assert ("router_aux" in metrics[0]) == (flags["routing"] != "all")
    lora_b = {k: load_file(out / s / "adapter_model.safetensors") for k, s in (("s1", "student1"), ("s2", "student2"))}
    moved = {k: any(v.abs().sum() > 0 for n, v in sd.items() if "lora_B" in n) for k, sd in lora_b.items()}
    assert moved["s1"] is True
    assert moved["s2"] is (ablation != "frozen_peer"), moved


def test_a_student_pays_no_backward_for_paths_it_is_not_routed(parts):
    """Routing saves compute: on a router cost step (every step with the default --router_cost_every 1)
    student k runs its non-routed paths under no_grad (no activations kept, no backward), yet the
    router still gets k's loss on every path, equal to a full forward's."""
    *_, ds = parts
    model = _mixture(parts, routing="learned", use_kl=False)
    batch = ds.collate(list(range(len(ds))))
    for seed in range(20):  # a seed whose Gumbel draw uses all three options
        calls = []
        hooks = [getattr(model, name).register_forward_hook(
            lambda mod, args, kwargs, out, name=name: calls.append((name, kwargs["input_ids"].shape[0],
                                                                    torch.is_grad_enabled())),
            with_kwargs=True) for name in ("student1", "student2")]
        torch.manual_seed(seed)
        out = model(batch)
        for h in hooks:
            h.remove()
        routes = out.route
        if set(routes.tolist()) == {1, 2, 3}:
            break
    assert set(routes.tolist()) == {1, 2, 3}
    n1, n2 = int((routes != 2).sum()), int((routes != 1).sum())
    assert sorted(calls) == sorted([("student1", n1, True), ("student1", len(ds) - n1, False),
                                    ("student2", n2, True), ("student2", len(ds) - n2, False)])
    with torch.no_grad():  # the router's information: every path's loss under both students
        plain = model.__class__._forward(model.student2, batch["s2"], False)[1]
    torch.testing.assert_close(out.nll2.detach(), plain, rtol=1e-4, atol=1e-5)
    assert out.nll2.requires_grad
    out.loss.backward()


def _adapter_tensors(folder):
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "adapter_model.safetensors"))


@pytest.mark.parametrize("max_grad_norm", [0.05, 1.0])
def test_separate_students_do_not_touch_each_other_through_clipping(tmp_path, tiny_llama, tiny_qwen2,
                                                                     tiny_train_data, max_grad_norm):
    """``--recipe separate`` is the "two students trained separately" baseline: student 1's adapter must
    not depend on what student 2 does. Two runs that differ only in student 2's learning rate (5e-3 vs
    5e-1: very different student-2 gradients after the first step) must leave student 1 identical. One
    clipping norm over both students' gradients fails this (student 2's norm scales student 1's step):
    0.05 makes every step clip, 1.0 is the default."""
    from distill.train.engine import train

    runs = {}
    for lr2 in (5e-3, 5e-1):
        out = tmp_path / f"lr2_{lr2}"
        cfg = _cfg(tiny_llama, tiny_qwen2, data_root=str(tiny_train_data), outdir=str(out), bs=4, epochs=2,
                   lr_s1=5e-3, lr_s2=lr2, seed=3, recipe="separate", max_grad_norm=max_grad_norm)
        train(cfg)
        runs[lr2] = (_adapter_tensors(out / "student1"), _adapter_tensors(out / "student2"))
    (a1, a2), (b1, b2) = runs[5e-3], runs[5e-1]
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in a1.items()), "student 1 trained"
    assert any(not torch.allclose(a2[k], b2[k]) for k in a2), "student 2 trained differently in the two runs"
    for k in a1:
        torch.testing.assert_close(b1[k], a1[k], rtol=1e-6, atol=1e-8, msg=k)


@pytest.mark.parametrize("norm,noted", [(1.0, True), (0.0, False)])
def test_deepspeed_run_says_it_clips_one_norm_over_both_students(tiny_llama, tiny_qwen2, norm, noted):
    """Under DeepSpeed the engine clips (one norm over all parameters), unlike DDP: the run says so."""
    from types import SimpleNamespace

    from distill.train.setup import deepspeed_checks

    printed = []
    ds = {"gradient_clipping": "auto", "zero_optimization": {"stage": 2}}
    acc = SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=SimpleNamespace(deepspeed_config=ds)),
                          num_processes=2, print=printed.append)
    deepspeed_checks(acc, _cfg(tiny_llama, tiny_qwen2, max_grad_norm=norm))
    assert ds["gradient_clipping"] == norm
    assert any("DeepSpeed clips ONE gradient norm over both students" in p for p in printed) is noted


def test_style_routing_pins_a_style_to_one_student(parts):
    """``--routing styles --route_styles pot=2``: a ``pot`` path gives student 1 no gradient (the same
    gradient as the batch without it), a ``cot`` path still trains both."""
    from distill.router.router import StyleRouter

    *_, ds = parts
    model = _mixture(parts, routing="styles", route_styles="pot=2", use_kl=False)
    assert isinstance(model.router, StyleRouter)
    idx = list(range(len(ds)))
    out = model(ds.collate(idx))
    styles = [e["style"] for e in ds.examples]
    assert out.route.tolist() == [2 if s == "pot" else 3 for s in styles]
    model.zero_grad()
    out.loss.backward()
    g_all = _grads(model.student1)
    model.zero_grad()
    model(ds.collate([i for i in idx if styles[i] == "cot"])).loss.backward()
    g_cot = _grads(model.student1)
    assert any(v.abs().sum() > 0 for v in g_all.values())
    for n in g_all:
        assert torch.allclose(g_all[n], g_cot[n], atol=1e-6, rtol=1e-4), n
    model.zero_grad()
    model(ds.collate([i for i in idx if styles[i] == "pot"])).loss.backward()
    assert all(v.abs().sum() == 0 for v in _grads(model.student1).values())
    assert any(v.abs().sum() > 0 for v in _grads(model.student2).values())
