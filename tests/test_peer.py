"""Peer teaching with real tiny students: character-offset alignment across tokenizers, the learned
ensemble-weight network and projections, co-routing, mode selection and the three losses."""

from __future__ import annotations


import pytest
import torch

from distill.errors import ConfigError
from distill.losses import IGNORE_INDEX
from distill.peer.align import align_spans, aligned_positions
from distill.peer.build import build_peer, same_vocabulary
from distill.peer.config import PeerConfig

RESPONSES = [
    "Ann starts with 12 apples. After buying 30, Ann has 12 + 30 = 42. The answer is \\boxed{42}.",
    "Step 1: Ben has 7 pens and buys 5 more, so 7 + 5 = 12. Giving away 3 * 3 = 9 leaves 3.",
    "We write code:\ndef solution():\n    x = 3 * 4\n    return x\nThe answer is \\boxed{12}.",
]
QUESTION = "Ann has 12 apples. Ann buys 30 more. How many apples does Ann have?"


def _examples(responses=RESPONSES):
    return [{"id": f"q{i}", "path_idx": i, "style": "cot", "correct": True, "question_text": QUESTION,
             "response": r} for i, r in enumerate(responses)]


def _load(path, seed=None):
    from transformers import AutoConfig, AutoModelForCausalLM

    from distill.students.tokenizer import load_tokenizer

    if seed is None:
        m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    else:  # a different student with the same tokenizer
        torch.manual_seed(seed)
        m = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    return m, load_tokenizer(path)


def _batch(tok1, tok2, examples=None):
    from distill.students.data import PathDataset

    ds = PathDataset(examples or _examples(), {"s1": tok1, "s2": tok2}, {"s1": 256, "s2": 256})
    return ds.collate(list(range(len(ds))))


def _run(model, part):
    return model(input_ids=part["input_ids"], attention_mask=part["attention_mask"], output_hidden_states=True)


@pytest.fixture(scope="module")
def llama_qwen(tiny_llama, tiny_qwen2):
    m1, t1 = _load(tiny_llama)
    m2, t2 = _load(tiny_qwen2)
    return m1, t1, m2, t2


def test_align_spans_unit():
    s1 = [(0, 3), (3, 4), (4, 9), (9, 9)]  # "abc" "d" "efghi" + EOS (empty)
    s2 = [(0, 2), (2, 4), (4, 6), (6, 9), (9, 9)]
    assert align_spans(s1, s2, "end") == [(1, 1), (2, 3)]
    assert align_spans(s1, s2, "start") == [(0, 0), (2, 2)]
    assert align_spans(s1, s2, "span") == []
    assert align_spans(s1, s1, "span") == [(0, 0), (1, 1), (2, 2)]
    with pytest.raises(ValueError):
        align_spans(s1, s2, "index")


def test_cross_tokenizer_alignment_maps_identical_characters(llama_qwen):
    _, t1, _, t2 = llama_qwen
    batch = _batch(t1, t2)
    s1, s2 = batch["s1"], batch["s2"]
    assert s1["input_ids"].shape != s2["input_ids"].shape or not torch.equal(s1["input_ids"], s2["input_ids"])
    for key in ("end", "start"):
        pos = aligned_positions(s1["labels"], s1["offsets"], s2["labels"], s2["offsets"], key)
        not_by_index = False
        for b, (p1, p2) in enumerate(pos):
            resp = RESPONSES[b]
            first1 = int((s1["labels"][b] != IGNORE_INDEX).nonzero()[0])
            first2 = int((s2["labels"][b] != IGNORE_INDEX).nonzero()[0])
            assert len(p1) >= 5, "real tokenizations share many boundaries"
            for a, c in zip(p1, p2):
                # the response text each student has read up to (and including) the aligned token
                upto1 = t1.decode(s1["input_ids"][b, first1:a + 1])
                upto2 = t2.decode(s2["input_ids"][b, first2:c + 1])
                if key == "end":
                    assert upto1 == upto2 == resp[: int(s1["offsets"][b, a, 1])]
                else:  # same start: the text *before* the aligned tokens is identical
                    before1 = t1.decode(s1["input_ids"][b, first1:a])
                    before2 = t2.decode(s2["input_ids"][b, first2:c])
                    assert before1 == before2 == resp[: int(s1["offsets"][b, a, 0])]
                not_by_index |= (a - first1) != (c - first2)
        assert not_by_index, "the tokenizers segment differently, so alignment is not positional"


def test_hidden_peer_trains_weight_net_and_projections(llama_qwen):
    m1, t1, m2, t2 = llama_qwen
    cfg = PeerConfig(mode="auto", weight=1.0, temperature=2.0)
    peer = build_peer(cfg, m1, m2, t1, t2)
    assert peer.mode == "hidden", "different vocabularies -> hidden-state distillation"
    batch = _batch(t1, t2)
    before = {n: p.detach().clone() for n, p in peer.named_parameters()}
    s_before = m2.lm_head.weight.detach().clone()  # Qwen2ForCausalLM: always has an lm_head
    opt = torch.optim.Adam(list(peer.parameters()), lr=1e-2)
    mask = torch.ones(3, 2)
    losses = []
    for step in range(4):
        out = peer(_run(m1, batch["s1"]), _run(m2, batch["s2"]), batch, mask)
        loss = out.loss
        opt.zero_grad()
        m1.zero_grad()
        m2.zero_grad()
        loss.backward()
        if step == 0:
            for name in ("weight_net.0.weight", "weight_net.2.weight", "proj1.weight", "proj2.weight"):
                g = dict(peer.named_parameters())[name].grad
                assert g is not None and g.abs().sum() > 0, name
            # the students are taught too: the peer loss reaches both students' layers
            g1 = m1.model.layers[-1].mlp.down_proj.weight.grad
            g2 = m2.model.layers[-1].mlp.down_proj.weight.grad
            assert g1.abs().sum() > 0 and g2.abs().sum() > 0
            assert out.logs["pairs"] >= 15 and out.logs["co_routed"] == 3
        opt.step()
        losses.append(float(loss.detach()))
    for n, p in peer.named_parameters():
        assert not torch.equal(before[n], p), f"{n} did not change"
    assert torch.equal(s_before, m2.lm_head.weight), "only the peer optimizer stepped"


def test_weight_net_learns_to_favour_the_better_student(tiny_llama, llama_qwen):
    """Student 1 is pre-fitted on the paths; the weight network (students frozen) must learn to
    put more weight on it, in both the same-vocabulary and the cross-tokenizer modes."""
    from distill.losses import per_example_nll

    for mode in ("kl", "hidden"):
        m1, t1 = _load(tiny_llama)
        if mode == "kl":
            m2, t2 = _load(tiny_llama, seed=7)
        else:
            _, _, m2, t2 = llama_qwen
        batch = _batch(t1, t2)
        opt1 = torch.optim.Adam(m1.parameters(), lr=3e-3)
        for _ in range(15):
            nll = per_example_nll(m1(input_ids=batch["s1"]["input_ids"],
                                     attention_mask=batch["s1"]["attention_mask"]).logits, batch["s1"]["labels"])
            opt1.zero_grad()
            nll.mean().backward()
            opt1.step()
        peer = build_peer(PeerConfig(mode="auto", weight=1.0), m1, m2, t1, t2)
        assert peer.mode == mode
        with torch.no_grad():
            o1, o2 = _run(m1, batch["s1"]), _run(m2, batch["s2"])
        w0 = peer.ensemble_weights(o1, o2, batch)[:, 0].mean().item()
        opt = torch.optim.Adam(peer.weight_net.parameters(), lr=2e-2)
        for _ in range(30):
            loss = peer(o1, o2, batch, torch.ones(3, 2)).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        w1 = peer.ensemble_weights(o1, o2, batch)[:, 0].mean().item()
        assert abs(w0 - 0.5) < 0.05 and w1 > 0.8, (mode, w0, w1)


def test_kl_peer_pulls_students_together(tiny_llama):
    m1, t1 = _load(tiny_llama)
    m2, t2 = _load(tiny_llama, seed=3)
    assert same_vocabulary(m1, m2, t1, t2)
    peer = build_peer(PeerConfig(mode="auto", weight=1.0, temperature=1.0),
                      m1, m2, t1, t2)
    assert peer.mode == "kl"
    batch = _batch(t1, t2)

    def divergence():
        with torch.no_grad():
            l1, l2 = _run(m1, batch["s1"]).logits, _run(m2, batch["s2"]).logits
        keep = batch["s1"]["labels"][:, 1:] != IGNORE_INDEX
        p1 = l1[:, :-1][keep].log_softmax(-1)
        p2 = l2[:, :-1][keep].log_softmax(-1)
        return float((p1.exp() * (p1 - p2)).sum(-1).mean())

    d0 = divergence()
    opt = torch.optim.Adam(list(m1.parameters()) + list(m2.parameters()), lr=2e-3)
    for _ in range(8):
        loss = peer(_run(m1, batch["s1"]), _run(m2, batch["s2"]), batch, torch.ones(3, 2)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert divergence() < 0.5 * d0, (d0, divergence())


def test_only_co_routed_paths_contribute(llama_qwen):
    m1, t1, m2, t2 = llama_qwen
    torch.manual_seed(0)
    peer = build_peer(PeerConfig(mode="uld", weight=1.0), m1, m2, t1, t2)
    batch = _batch(t1, t2)
    with torch.no_grad():
        o1, o2 = _run(m1, batch["s1"]), _run(m2, batch["s2"])
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    full = peer(o1, o2, batch, mask).loss
    one = _batch(t1, t2, _examples()[1:2])
    with torch.no_grad():
        q1, q2 = _run(m1, one["s1"]), _run(m2, one["s2"])
    alone = peer(q1, q2, one, torch.ones(1, 2)).loss
    assert full.item() == pytest.approx(alone.item(), rel=1e-4, abs=1e-6)
    assert full.item() > 0
    # nobody co-routed: zero loss, zero gradient to the students
    m1.zero_grad()
    o1 = _run(m1, batch["s1"])
    none = peer(o1, o2, batch, torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])).loss
    none.backward()
    assert none.item() == 0.0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in m1.parameters())


def test_uld_peer_reaches_both_students(llama_qwen):
    m1, t1, m2, t2 = llama_qwen
    peer = build_peer(PeerConfig(mode="uld", weight=1.0), m1, m2, t1, t2)
    assert peer.mode == "uld" and not hasattr(peer, "proj1")
    batch = _batch(t1, t2)
    m1.zero_grad()
    m2.zero_grad()
    out = peer(_run(m1, batch["s1"]), _run(m2, batch["s2"]), batch, torch.ones(3, 2))
    out.loss.backward()
    assert out.logs["pairs"] >= 15
    assert m1.lm_head.weight.grad.abs().sum() > 0 and m2.model.embed_tokens.weight.grad.abs().sum() > 0


def test_build_peer_modes(tiny_llama, llama_qwen):
    m1, t1, m2, t2 = llama_qwen
    assert build_peer(PeerConfig(mode="none"), m1, m2, t1, t2) is None
    with pytest.raises(ConfigError, match="share one vocabulary"):
        build_peer(PeerConfig(mode="kl"), m1, m2, t1, t2)
    with pytest.raises(ConfigError, match="--peer must be one of"):
        PeerConfig(mode="magic")
    with pytest.raises(ConfigError, match="--peer_weight"):
        PeerConfig(weight=-1.0)
    a, ta = _load(tiny_llama)
    assert build_peer(PeerConfig(mode="hidden"), a, a, ta, ta).mode == "hidden"
    assert not same_vocabulary(m1, m2, t1, t2)


# -- peer scope: which student is taught on which path ------------------------------------------
#
# Gradients are compared on the *same* student forward: the full batch is run once per call and the
# students' real outputs are then cut to a subset of rows, so "without row r" differs from the full
# batch only in what the peer module sees (no padding or recomputation noise).

#: row 0 routed to student 1 only, row 1 to both, row 2 to student 2 only
MIXED_MASK = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])


def _take_out(out, rows):
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return CausalLMOutputWithPast(logits=out.logits[rows], hidden_states=tuple(h[rows] for h in out.hidden_states))


def _take_batch(batch, rows):
    return {key: {k: v[rows] for k, v in batch[key].items()} for key in ("s1", "s2")}


def _flat_grad(model):
    return torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).flatten() for p in model.parameters()])


def _peer_grads(peer, m1, m2, batch, mask, rows):
    """Students' gradients ``(g1, g2, PeerOutput)`` from the peer loss on ``rows`` of ``batch``."""
    assert m1 is not m2, "two model objects, or the students' gradients cannot be told apart"
    for m in (m1, m2, peer):
        m.zero_grad(set_to_none=True)
    o1, o2 = _run(m1, batch["s1"]), _run(m2, batch["s2"])
    out = peer(_take_out(o1, rows), _take_out(o2, rows), _take_batch(batch, rows), mask[rows])
    out.loss.backward()
    return _flat_grad(m1), _flat_grad(m2), out


def _same(a, b):
    # atol relative to the gradient's scale: an absolute 1e-9 failed once under load on float noise of
    # near-zero entries (make test, 2026-12-03); a leak shows as > 1e-3 of the scale (_differs)
    return torch.allclose(a, b, rtol=1e-5, atol=1e-6 * float(b.abs().max()))


def _differs(a, b):
    return float((a - b).abs().max()) > 1e-3 * float(b.abs().max())


@pytest.fixture(scope="module")
def llama_llama(tiny_llama):
    m1, t1 = _load(tiny_llama)
    m2, t2 = _load(tiny_llama, seed=3)
    return m1, t1, m2, t2


def _students(mode, llama_llama, llama_qwen):
    """kl: two llamas sharing a tokenizer (different weights); hidden / uld: llama vs qwen2."""
    m1, t1, m2, t2 = llama_llama if mode == "kl" else llama_qwen
    m1.eval()
    m2.eval()
    return m1, t1, m2, t2


def test_peer_scope_is_validated_mirrors_the_config_and_reaches_the_module(llama_qwen):
    from distill.peer.module import PEER_SCOPES, PeerTeacher

    # the module accepts exactly the scopes the config (--peer_scope) accepts
    assert [PeerConfig(scope=scope).scope for scope in PEER_SCOPES] == list(PEER_SCOPES)
    with pytest.raises(ConfigError, match="peer_scope"):
        PeerConfig(scope="everything")
    with pytest.raises(ValueError, match="peer scope"):
        PeerTeacher("kl", 8, 8, scope="everything")
    assert PeerTeacher("kl", 8, 8).scope == "co_routed"
    m1, t1, m2, t2 = llama_qwen
    for scope in PEER_SCOPES:
        assert build_peer(PeerConfig(mode="uld", scope=scope), m1, m2, t1, t2).scope == scope


@pytest.mark.parametrize("mode", ["kl", "hidden", "uld"])
def test_co_routed_scope_ignores_single_routed_paths(mode, llama_llama, llama_qwen):
    """(1) scope co_routed: a path routed to one student teaches neither student anything."""
    m1, t1, m2, t2 = _students(mode, llama_llama, llama_qwen)
    torch.manual_seed(0)
    peer = build_peer(PeerConfig(mode=mode, scope="co_routed"), m1, m2, t1, t2)
    assert peer.mode == mode
    batch = _batch(t1, t2)
    g1, g2, out = _peer_grads(peer, m1, m2, batch, MIXED_MASK, [0, 1, 2])
    assert out.logs["co_routed"] == 1 and out.logs["rows_s1"] == out.logs["rows_s2"] == 1
    c1, c2, _ = _peer_grads(peer, m1, m2, batch, MIXED_MASK, [1])  # the co-routed path alone
    assert c1.abs().sum() > 0 and c2.abs().sum() > 0
    assert _same(g2, c2) and _same(g1, c1), "rows 0 and 2 must not change either student's gradient"
    for row in (0, 2):  # a single-routed path alone: no loss, exactly zero student gradients
        z1, z2, alone = _peer_grads(peer, m1, m2, batch, MIXED_MASK, [row])
        assert alone.loss.item() == 0.0 and alone.logs["rows_s1"] == alone.logs["rows_s2"] == 0
        assert z1.abs().max() == 0 and z2.abs().max() == 0


@pytest.mark.parametrize("mode", ["kl", "hidden", "uld"])
def test_all_scope_teaches_only_the_student_not_routed(mode, llama_llama, llama_qwen):
    """(2) scope all: on a path routed only to A, B gets the peer term and A gets none from it."""
    m1, t1, m2, t2 = _students(mode, llama_llama, llama_qwen)
    torch.manual_seed(0)
    peer = build_peer(PeerConfig(mode=mode, scope="all"), m1, m2, t1, t2)
    batch = _batch(t1, t2)
    g1, g2, out = _peer_grads(peer, m1, m2, batch, MIXED_MASK, [0, 1, 2])
    # student 1 is taught on rows 1 and 2 (routed to student 2), student 2 on rows 0 and 1
    assert out.logs["rows_s1"] == 2 and out.logs["rows_s2"] == 2 and out.logs["co_routed"] == 1
    # row 0 (student 1 only) alone: student 2 learns from it, student 1 gets exactly nothing
    a1, a2, alone = _peer_grads(peer, m1, m2, batch, MIXED_MASK, [0])
    assert alone.logs["rows_s1"] == 0 and alone.logs["rows_s2"] == 1
    assert a1.abs().max() == 0 and a2.abs().sum() > 0
    # row 2 (student 2 only) alone: the mirror image
    b1, b2, alone = _peer_grads(peer, m1, m2, batch, MIXED_MASK, [2])
    assert alone.logs["rows_s1"] == 1 and alone.logs["rows_s2"] == 0
    assert b2.abs().max() == 0 and b1.abs().sum() > 0
    # in the batch: dropping row 0 leaves student 1's gradient unchanged and changes student 2's
    d1, d2, _ = _peer_grads(peer, m1, m2, batch, MIXED_MASK, [1, 2])
    assert _same(g1, d1) and _differs(g2, d2)
    # dropping row 2 leaves student 2's gradient unchanged and changes student 1's
    e1, e2, _ = _peer_grads(peer, m1, m2, batch, MIXED_MASK, [0, 1])
    assert _same(g2, e2) and _differs(g1, e1)
    # on the co-routed rows both scopes agree exactly
    co = build_peer(PeerConfig(mode=mode, scope="co_routed"), m1, m2, t1, t2)
    co.load_state_dict(peer.state_dict())
    both = torch.ones(3, 2)
    f1, f2, fo = _peer_grads(peer, m1, m2, batch, both, [0, 1, 2])
    h1, h2, ho = _peer_grads(co, m1, m2, batch, both, [0, 1, 2])
    assert _same(f1, h1) and _same(f2, h2) and fo.loss.item() == pytest.approx(ho.loss.item(), rel=1e-6)


@pytest.mark.parametrize("scope", ["co_routed", "all"])
@pytest.mark.parametrize("mode", ["kl", "hidden", "uld"])
def test_peer_never_uses_the_teacher_tokens_of_a_path_the_student_was_not_routed(mode, scope, llama_llama,
                                                                                 llama_qwen):
    """(3) Relabelling student 2's teacher tokens on row 0 (routed to student 1 only) and student 1's on
    row 2 (student 2 only) -- same labelled positions, other token ids -- changes no student gradient
    and no student term, although every one of those tokens changed, so any NLL of them would change
    (control). Only the weight network may read them (the detached sequence mixture NLL of the
    cross-tokenizer modes)."""
    from distill.losses import sequence_nll

    m1, t1, m2, t2 = _students(mode, llama_llama, llama_qwen)
    torch.manual_seed(0)
    peer = build_peer(PeerConfig(mode=mode, scope=scope), m1, m2, t1, t2)
    batch = _batch(t1, t2)
    other = {k: {n: v.clone() for n, v in batch[k].items()} for k in ("s1", "s2")}
    gen = torch.Generator().manual_seed(1)
    for key, row, model in (("s2", 0, m2), ("s1", 2, m1)):
        lab = other[key]["labels"]
        on = lab[row] != IGNORE_INDEX
        vocab = model.get_output_embeddings().weight.shape[0]
        lab[row, on] = (lab[row, on] + torch.randint(1, vocab, (int(on.sum()),), generator=gen)) % vocab
        # control: every teacher token of the path changed, so an NLL of them (value and gradient) would too
        assert on.sum() > 10 and bool((lab[row, on] != batch[key]["labels"][row, on]).all())
        with torch.no_grad():
            logits = _run(model, batch[key]).logits[row:row + 1]
            assert abs(float(sequence_nll(logits, batch[key]["labels"][row:row + 1]) -
                             sequence_nll(logits, lab[row:row + 1]))) > 0.1
    g1, g2, out = _peer_grads(peer, m1, m2, batch, MIXED_MASK, [0, 1, 2])
    r1, r2, rel = _peer_grads(peer, m1, m2, other, MIXED_MASK, [0, 1, 2])
    assert g2.abs().sum() > 0 and g1.abs().sum() > 0
    assert torch.equal(g1, r1) and torch.equal(g2, r2)
    assert out.logs["student_loss"] == rel.logs["student_loss"] and out.logs["pairs"] == rel.logs["pairs"]


def test_kl_all_scope_teaches_an_unrouted_path_only_from_the_ensemble(tiny_llama):
    """(3, kl) Two identical students: on a path routed to student 1 only, the ensemble equals
    student 2's own distribution, so its peer gradient vanishes, while any NLL of the teacher
    tokens would give a large one (shown). So student 2 learns that path from the ensemble only."""
    from distill.losses import per_example_nll

    m1, t1 = _load(tiny_llama)
    m2, t2 = _load(tiny_llama)  # same weights, separate object
    peer = build_peer(PeerConfig(mode="kl", scope="all"), m1, m2, t1, t2)
    batch = _batch(t1, t2)
    _, g2, out = _peer_grads(peer, m1, m2, batch, MIXED_MASK, [0])
    assert out.logs["rows_s2"] == 1 and out.logs["pairs"] >= 15
    m2.zero_grad(set_to_none=True)
    per_example_nll(_run(m2, batch["s2"]).logits[:1], batch["s2"]["labels"][:1]).sum().backward()
    nll_grad = _flat_grad(m2)
    assert float(nll_grad.abs().max()) > 1e-2
    assert float(g2.abs().max()) < 1e-5 * float(nll_grad.abs().max()), float(g2.abs().max())


@pytest.mark.parametrize("mode", ["kl", "hidden", "uld"])
def test_every_peer_parameter_gets_a_gradient_in_every_case(mode, llama_llama, llama_qwen):
    """DDP: each call reaches every peer parameter, whatever the routing (zero where unused)."""
    m1, t1, m2, t2 = _students(mode, llama_llama, llama_qwen)
    batch = _batch(t1, t2)
    for scope in ("co_routed", "all"):
        peer = build_peer(PeerConfig(mode=mode, scope=scope), m1, m2, t1, t2)
        for mask, rows in ((MIXED_MASK, [0]), (MIXED_MASK, [2]), (torch.zeros(3, 2), [0, 1, 2]),
                           (MIXED_MASK, [0, 1, 2])):
            _peer_grads(peer, m1, m2, batch, mask, rows)
            missing = [n for n, p in peer.named_parameters() if p.grad is None]
            assert not missing, (scope, mask[rows].tolist(), missing)
