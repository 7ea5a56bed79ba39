"""Known-value tests of every pure loss in :mod:`distill.losses`.

Each expected number is worked out by hand in a comment from tiny tensors (V = 2 or 3) whose
softmaxes are exact fractions: logits ``[0, 0]`` give ``[1/2, 1/2]``, ``[ln 3, 0]`` give
``[3/4, 1/4]``, ``[ln 2, 0, 0]`` give ``[1/2, 1/4, 1/4]``. Nothing is compared against the function
under test computed another way.
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch
import torch.nn.functional as F

from distill.losses import (IGNORE_INDEX, balance_loss, completion_mask, coverage_loss, contrastive_hidden, ensemble_kl,
                            ensemble_nll, expected_cost, masked_mean, per_example_nll, routing_cost,
                            sequence_mixture_nll, sequence_nll, standardise, uld_distance)

LN2, LN3 = math.log(2.0), math.log(3.0)
HALF = [0.0, 0.0]  # softmax -> [1/2, 1/2]
THREE_QUARTERS = [LN3, 0.0]  # softmax -> [3/4, 1/4]


def approx(x, rel=1e-5, abs=1e-6):
    return pytest.approx(x, rel=rel, abs=abs)


# -- tokens -------------------------------------------------------------------------------------


def test_ignore_index_is_torch_cross_entropy_default_and_completion_mask():
    assert inspect.signature(F.cross_entropy).parameters["ignore_index"].default == IGNORE_INDEX
    labels = torch.tensor([[IGNORE_INDEX, 0, 5], [7, IGNORE_INDEX, IGNORE_INDEX]])
    assert completion_mask(labels).tolist() == [[False, True, True], [True, False, False]]


def _token_batch(requires_grad: bool = False):
    # logits [3, 3, 2]; position t predicts label t+1 (label at position 0 is never used).
    row = [HALF, THREE_QUARTERS, HALF]
    logits = torch.tensor([row, row, row], requires_grad=requires_grad)
    labels = torch.tensor([
        [1, 0, 1],  # pos0 [1/2,1/2] -> token 0: ln 2 ; pos1 [3/4,1/4] -> token 1: ln 4
        [IGNORE_INDEX, IGNORE_INDEX, 1],  # only pos1 -> token 1: ln 4
        [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX],  # fully truncated
    ])
    return logits, labels


def test_per_example_nll_known_values_and_all_masked_is_zero():
    logits, labels = _token_batch(requires_grad=True)
    nll = per_example_nll(logits, labels)
    assert nll.shape == (3,) and nll.dtype == torch.float32
    # ex0: mean(ln 2, ln 4) = 1.5 ln 2 ; ex1: ln 4 = 2 ln 2 ; ex2: no label -> exactly 0
    assert nll[0].item() == approx(1.5 * LN2)
    assert nll[1].item() == approx(2 * LN2)
    assert nll[2].item() == 0.0
    nll.sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad[2] == 0).all(), "an all-masked example sends no gradient"
    # ex1, pos1: d(CE)/dz = softmax - onehot(1) = [3/4, 1/4 - 1]; the mean over one token keeps it
    assert logits.grad[1, 1].tolist() == approx([0.75, -0.75])
    # ex0, pos0 -> token 0, halved by the mean over 2 tokens: ([1/2, 1/2] - [1, 0]) / 2
    assert logits.grad[0, 0].tolist() == approx([-0.25, 0.25])
    # the last position predicts nothing (and ex0's label at position 0, a 1, is never a target)
    assert (logits.grad[:, 2] == 0).all()


def test_sequence_nll_known_values_gradient_and_no_grad_wrapping():
    logits, labels = _token_batch(requires_grad=True)
    s = sequence_nll(logits, labels)
    assert s.shape == (3,) and s.dtype == torch.float32
    # summed: ex0 ln 2 + ln 4 = 3 ln 2 ; ex1 ln 4 = 2 ln 2 ; ex2 0
    assert s.tolist() == approx([3 * LN2, 2 * LN2, 0.0])
    # pure: differentiable; ex0 pos0 -> token 0: softmax - onehot(0) = [1/2 - 1, 1/2]
    s.sum().backward()
    assert logits.grad[0, 0].tolist() == approx([-0.5, 0.5])
    assert logits.grad[0, 1].tolist() == approx([0.75, -0.75])  # pos1 -> token 1
    assert (logits.grad[2] == 0).all()
    with torch.no_grad():  # how the peer module calls it
        assert not sequence_nll(logits, labels).requires_grad


def test_masked_mean_known_value_and_mask_gradient():
    v = torch.tensor([1.0, 3.0, 5.0], requires_grad=True)
    m = torch.tensor([1.0, 0.0, 1.0], requires_grad=True)
    out = masked_mean(v, m)
    assert out.item() == 3.0  # (1 + 5) / 2
    assert masked_mean(v, torch.tensor([True, False, True])).item() == 3.0  # bool masks cast
    out.backward()
    # d/dv_i = m_i / sum(m) = [1/2, 0, 1/2]; d/dm_i = (v_i - mean) / sum(m) = [-1, 0, 1]
    assert v.grad.tolist() == approx([0.5, 0.0, 0.5])
    assert m.grad.tolist() == approx([-1.0, 0.0, 1.0])


def test_masked_mean_empty_mask_is_exactly_zero_and_differentiable():
    v = torch.tensor([1.0, 3.0, 5.0], requires_grad=True)
    empty = masked_mean(v, torch.zeros(3))
    assert empty.item() == 0.0 and not torch.isnan(empty)
    assert empty.requires_grad
    empty.backward()
    assert v.grad.tolist() == [0.0, 0.0, 0.0]


# -- peer ---------------------------------------------------------------------------------------


def test_ensemble_kl_identical_students_is_zero():
    z = torch.tensor([[0.3, -1.2, 2.0], [1.0, 0.0, -0.5]])
    w = torch.tensor([[0.3, 0.7], [0.9, 0.1]])
    kl1, kl2 = ensemble_kl(z, z.clone(), w, temperature=1.7)
    assert kl1.item() == approx(0.0) and kl2.item() == approx(0.0)


def _kl_rows():
    z1 = torch.tensor([HALF, HALF])  # p1 = [1/2, 1/2]
    z2 = torch.tensor([THREE_QUARTERS, THREE_QUARTERS])  # p2 = [3/4, 1/4]
    w = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    return z1, z2, w


# row 0: target = (p1 + p2) / 2 = [5/8, 3/8]
#   KL(t||p1) = 5/8 ln(5/4) + 3/8 ln(3/4);  KL(t||p2) = 5/8 ln(5/6) + 3/8 ln(3/2)
# row 1: target = p1
#   KL(t||p1) = 0;                          KL(p1||p2) = 1/2 ln(2/3) + 1/2 ln 2
KL1_HAND = ((5 / 8 * math.log(5 / 4) + 3 / 8 * math.log(3 / 4)) + 0.0) / 2
KL2_HAND = ((5 / 8 * math.log(5 / 6) + 3 / 8 * math.log(3 / 2)) + (0.5 * math.log(2 / 3) + 0.5 * LN2)) / 2


def test_ensemble_kl_known_two_token_case():
    z1, z2, w = _kl_rows()
    kl1, kl2 = ensemble_kl(z1, z2, w)
    assert kl1.item() == approx(KL1_HAND)
    assert kl2.item() == approx(KL2_HAND)


def test_ensemble_kl_scales_by_temperature_squared():
    # at T = 2 the logits 2*z give the same distributions as z at T = 1, so the value is 4x
    z1, z2, w = _kl_rows()
    kl1, kl2 = ensemble_kl(2 * z1, 2 * z2, w, temperature=2.0)
    assert kl1.item() == approx(4 * KL1_HAND)
    assert kl2.item() == approx(4 * KL2_HAND)


def test_ensemble_kl_reduction_none_gives_the_per_row_values():
    # the per-row terms of KL1_HAND / KL2_HAND (see the comment above), not averaged
    z1, z2, w = _kl_rows()
    kl1, kl2 = ensemble_kl(z1, z2, w, reduction="none")
    assert kl1.shape == kl2.shape == (2,)
    assert kl1.tolist() == approx([5 / 8 * math.log(5 / 4) + 3 / 8 * math.log(3 / 4), 0.0])
    assert kl2.tolist() == approx([5 / 8 * math.log(5 / 6) + 3 / 8 * math.log(3 / 2), 0.5 * math.log(4 / 3)])
    # T**2 scaling applies per row too; the default is the mean of the rows
    kl1_t, kl2_t = ensemble_kl(2 * z1, 2 * z2, w, temperature=2.0, reduction="none")
    assert kl1_t.tolist() == approx([4 * v for v in kl1.tolist()])
    assert kl2_t.tolist() == approx([4 * v for v in kl2.tolist()])
    with pytest.raises(ValueError, match="reduction"):
        ensemble_kl(z1, z2, w, reduction="sum")


def test_ensemble_kl_reduction_none_row_gradient_is_local():
    # a row's per-row value depends only on that row: its gradient into the other row is exactly 0
    z1, z2, w = _kl_rows()
    z2 = z2.clone().requires_grad_(True)
    _, kl2 = ensemble_kl(z1, z2, w, reduction="none")
    (g,) = torch.autograd.grad(kl2[1], [z2])
    assert g[0].tolist() == [0.0, 0.0]
    # row 1: target = p1 = [1/2, 1/2], d KL / dz2 = p2 - t = [3/4 - 1/2, 1/4 - 1/2]
    assert g[1].tolist() == approx([1 / 4, -1 / 4])


def test_ensemble_kl_target_is_detached():
    z1 = torch.tensor([HALF], requires_grad=True)
    z2 = torch.tensor([THREE_QUARTERS], requires_grad=True)
    w = torch.tensor([[0.5, 0.5]], requires_grad=True)
    kl1, _ = ensemble_kl(z1, z2, w)
    g1, g2, gw = torch.autograd.grad(kl1, [z1, z2, w], allow_unused=True)
    assert g2 is None and gw is None, "nothing flows back through the target"
    # with t fixed, d KL(t || softmax(z1)) / dz1 = p1 - t = [1/2 - 5/8, 1/2 - 3/8]
    assert g1[0].tolist() == approx([-1 / 8, 1 / 8])


def test_ensemble_nll_known_value_and_gradient_only_into_w():
    z1 = torch.tensor([HALF], requires_grad=True)  # p1(0) = 1/2
    z2 = torch.tensor([THREE_QUARTERS], requires_grad=True)  # p2(0) = 3/4
    w = torch.tensor([[0.25, 0.75]], requires_grad=True)
    loss = ensemble_nll(z1, z2, w, torch.tensor([0]))
    # mix = 1/4 * 1/2 + 3/4 * 3/4 = 11/16 -> -ln(11/16)
    assert loss.item() == approx(math.log(16 / 11))
    g1, g2, gw = torch.autograd.grad(loss, [z1, z2, w], allow_unused=True)
    assert g1 is None and g2 is None, "students are detached"
    # d/dw_k = -p_k / mix: [-(1/2)/(11/16), -(3/4)/(11/16)] = [-8/11, -12/11]
    assert gw[0].tolist() == approx([-8 / 11, -12 / 11])


def test_sequence_mixture_nll_known_value_gradient_and_detached_s():
    s1 = torch.tensor([2.0], requires_grad=True)
    s2 = torch.tensor([3.0], requires_grad=True)
    w = torch.tensor([[0.5, 0.5]], requires_grad=True)
    loss = sequence_mixture_nll(s1, s2, w)
    # shifted by min = 2: s = [0, 1] -> -ln(1/2 + e^-1 / 2)
    e = math.exp(-1.0)
    assert loss.item() == approx(-math.log((1 + e) / 2))
    gs1, gs2, gw = torch.autograd.grad(loss, [s1, s2, w], allow_unused=True)
    assert gs1 is None and gs2 is None
    # d/dw_k = -e^{-s_k} / (1/2 + e^-1/2) = [-2/(1+e), -2e/(1+e)]
    assert gw[0].tolist() == approx([-2 / (1 + e), -2 * e / (1 + e)])


def test_sequence_mixture_nll_is_shift_invariant_and_stable():
    w = torch.tensor([[0.5, 0.5], [0.2, 0.8]])
    base = sequence_mixture_nll(torch.tensor([2.0, 0.0]), torch.tensor([3.0, 0.0]), w)
    # row 0 as above; row 1: s = [0, 0] -> -ln(0.2 + 0.8) = 0
    e = math.exp(-1.0)
    assert base.item() == approx(-math.log((1 + e) / 2) / 2)
    # adding a constant per example changes nothing, even where exp(-S) underflows float32
    big = sequence_mixture_nll(torch.tensor([1002.0, 500.0]), torch.tensor([1003.0, 500.0]), w)
    assert torch.isfinite(big) and big.item() == approx(base.item())


def test_contrastive_hidden_known_value_2x2():
    z = torch.tensor([[3.0, 0.0], [0.0, 2.0]])  # normalised -> identity
    t = torch.tensor([[1.0, 0.0], [0.0, 5.0]])
    # tau = 1: logits = I; each row CE = -ln(e / (e + 1)) = ln(1 + e^-1)
    assert contrastive_hidden(z, t, tau=1.0).item() == approx(math.log(1 + math.exp(-1.0)))
    # tau = 0.5: logits = 2I -> ln(1 + e^-2)
    assert contrastive_hidden(z, t, tau=0.5).item() == approx(math.log(1 + math.exp(-2.0)))
    # swapped targets: each row's positive is the orthogonal one -> ln(1 + e)
    assert contrastive_hidden(z, t.flip(0), tau=1.0).item() == approx(math.log(1 + math.e))


def test_contrastive_hidden_constant_projections_score_chance_and_target_detached():
    z = torch.ones(3, 2, requires_grad=True)
    t = torch.full((3, 2), 2.0, requires_grad=True)
    loss = contrastive_hidden(z, t, tau=0.1)
    # every similarity equal -> uniform softmax over N = 3 -> ln 3
    assert loss.item() == approx(LN3)
    gz, gt = torch.autograd.grad(loss, [z, t], allow_unused=True)
    assert gt is None, "target is detached"
    assert gz is not None


def test_uld_distance_known_value_with_different_vocab_sizes():
    z1 = torch.tensor([HALF])  # V1 = 2: sorted [1/2, 1/2] -> padded [1/2, 1/2, 0]
    z2 = torch.tensor([[0.0, LN2, 0.0]])  # V2 = 3: [1/4, 1/2, 1/4] -> sorted [1/2, 1/4, 1/4]
    w = torch.tensor([[0.25, 0.75]])
    # target = 1/4 p1 + 3/4 p2 = [1/2, 1/8 + 3/16, 3/16] = [1/2, 5/16, 3/16]
    # d1 = |1/2-5/16| + |0-3/16| = 3/8 ; d2 = |1/4-5/16| + |1/4-3/16| = 1/8
    d1, d2 = uld_distance(z1, z2, w)
    assert d1.item() == approx(3 / 8) and d2.item() == approx(1 / 8)
    # the temperature divides the logits: 2x logits at T = 2 is the same case
    d1, d2 = uld_distance(2 * z1, 2 * z2, w, temperature=2.0)
    assert d1.item() == approx(3 / 8) and d2.item() == approx(1 / 8)


def test_uld_distance_reduction_none_gives_the_per_row_values():
    z1 = torch.tensor([HALF, HALF])  # sorted, padded [1/2, 1/2, 0]
    z2 = torch.tensor([[0.0, LN2, 0.0], [0.0, LN2, 0.0]])  # sorted [1/2, 1/4, 1/4]
    w = torch.tensor([[0.25, 0.75], [1.0, 0.0]])
    # row 0: as in the known-value test above, d1 = 3/8, d2 = 1/8
    # row 1: target = p1 -> d1 = 0, d2 = |1/2-1/2| + |1/4-1/2| + |1/4-0| = 1/2
    d1, d2 = uld_distance(z1, z2, w, reduction="none")
    assert d1.tolist() == approx([3 / 8, 0.0]) and d2.tolist() == approx([1 / 8, 1 / 2])
    m1, m2 = uld_distance(z1, z2, w)  # the default is their mean
    assert m1.item() == approx(3 / 16) and m2.item() == approx(5 / 16)
    with pytest.raises(ValueError, match="reduction"):
        uld_distance(z1, z2, w, reduction="sum")


def test_uld_distance_identical_or_permuted_is_zero_and_target_detached():
    z = torch.tensor([[0.5, -1.0, 2.0]])
    w = torch.tensor([[0.4, 0.6]])
    for other in (z.clone(), z.flip(-1)):  # order of the vocabulary does not matter
        d1, d2 = uld_distance(z, other, w)
        assert d1.item() == approx(0.0) and d2.item() == approx(0.0)
    z1 = torch.tensor([HALF], requires_grad=True)
    z2 = torch.tensor([[0.0, LN2, 0.0]], requires_grad=True)
    d1, _ = uld_distance(z1, z2, torch.tensor([[0.25, 0.75]]))
    g1, g2 = torch.autograd.grad(d1, [z1, z2], allow_unused=True)
    assert g2 is None and g1 is not None


# -- routing ------------------------------------------------------------------------------------


def test_balance_loss_uniform_collapsed_and_known_value():
    assert balance_loss(torch.full((4, 3), 1 / 3)).item() == approx(0.0)
    # one-hot rows spread evenly over the options: the mean is uniform -> 0
    assert balance_loss(torch.eye(3)).item() == approx(0.0)
    collapsed = torch.tensor([[1.0, 0.0, 0.0]] * 5)
    assert balance_loss(collapsed).item() == approx(LN3, rel=1e-4)
    # K = 2, mean of [1, 0] and [1/2, 1/2] = [3/4, 1/4]: ln 2 + 3/4 ln(3/4) + 1/4 ln(1/4)
    want = LN2 + 0.75 * math.log(0.75) + 0.25 * math.log(0.25)
    assert balance_loss(torch.tensor([[1.0, 0.0], [0.5, 0.5]])).item() == approx(want)


def test_standardise_batch_and_given_stats():
    x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    out = standardise(x)
    # mean 2, population std sqrt(2/3): [-1, 0, 1] / sqrt(2/3)
    s = math.sqrt(2 / 3)
    assert out.tolist() == approx([-1 / s, 0.0, 1 / s])
    assert out.dtype == torch.float32 and not out.requires_grad
    # given center 1 and scale 2: (x - 1) / 2
    assert standardise(x, 1.0, 2.0).tolist() == approx([0.0, 0.5, 1.0])
    # a batch of one has no spread: zeros
    assert standardise(torch.tensor([7.0])).tolist() == [0.0]
    # eps keeps a zero scale finite
    assert standardise(torch.tensor([4.0, 4.0])).tolist() == [0.0, 0.0]


def test_routing_cost_columns_and_both_is_the_sum():
    nll1 = torch.tensor([1.0, 3.0])  # mean 2, std 1 -> [-1, 1]
    nll2 = torch.tensor([20.0, 10.0])  # mean 15, std 5 -> [1, -1]
    c = routing_cost(nll1, nll2)
    assert c.shape == (2, 3)
    assert c.tolist()[0] == approx([-1.0, 1.0, 0.0])
    assert c.tolist()[1] == approx([1.0, -1.0, 0.0])
    # running stats [[0, 1], [10, 2]]: c1 = nll1 = [1, 3]; c2 = (nll2 - 10) / 2 = [5, 0]; both = [6, 3]
    c = routing_cost(nll1, nll2, torch.tensor([[0.0, 1.0], [10.0, 2.0]]))
    assert c.tolist()[0] == approx([1.0, 5.0, 6.0])
    assert c.tolist()[1] == approx([3.0, 0.0, 3.0])


def test_routing_cost_margin_shifts_every_student_cost():
    nll1, nll2 = torch.tensor([1.0, 3.0]), torch.tensor([20.0, 10.0])  # z: [-1, 1] and [1, -1]
    c = routing_cost(nll1, nll2, margin=1.5)
    # c_k = z_k - 1.5; both = c1 + c2
    assert c.tolist()[0] == approx([-2.5, -0.5, -3.0])
    assert c.tolist()[1] == approx([-0.5, -2.5, -3.0])
    # margin 1.5: a path 1 std above one student's mean and 1 below the other's goes to both;
    # margin 0 would send it to the other student alone
    assert c.argmin(dim=-1).tolist() == [2, 2]
    assert routing_cost(nll1, nll2).argmin(dim=-1).tolist() == [0, 1]
    # an outlier for student 1 (z = 3 > margin) goes to student 2 only
    c = routing_cost(torch.tensor([3.0]), torch.tensor([0.0]), torch.tensor([[0.0, 1.0], [0.0, 1.0]]), margin=1.0)
    assert c.tolist()[0] == approx([2.0, -1.0, 1.0]) and int(c.argmin()) == 1


def test_coverage_loss_known_values_and_gradient():
    # uniform: each student's share is 2/3 >= 0.25 -> 0; everything to both -> 0 (no push away from both)
    assert coverage_loss(torch.full((4, 3), 1 / 3), 0.25).item() == approx(0.0)
    assert coverage_loss(torch.tensor([[0.0, 0.0, 1.0]] * 3), 0.25).item() == approx(0.0)
    # collapsed on s1 only: student 2's share is 0 -> (0.25 - 0) / 0.25 = 1
    assert coverage_loss(torch.tensor([[1.0, 0.0, 0.0]] * 3), 0.25).item() == approx(1.0)
    # shares: s1 = mean(0.9, 0.9) = 0.9, s2 = mean(0.1, 0.1) = 0.1 -> (0.25 - 0.1) / 0.25 = 0.6
    probs = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.0, 0.1]], requires_grad=True)
    out = coverage_loss(probs, 0.25)
    assert out.item() == approx(0.6)
    out.backward()
    # d/dp: only student 2's shortfall counts: -1 / (B * floor) = -2 on p_s2 and p_both, 0 on p_s1
    assert probs.grad.tolist() == [[0.0, -2.0, -2.0], [0.0, -2.0, -2.0]]


def test_expected_cost_known_value_and_gradient():
    probs = torch.tensor([[0.5, 0.25, 0.25], [0.0, 0.0, 1.0]], requires_grad=True)
    cost = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=torch.float64)
    out = expected_cost(probs, cost)
    # row 0: 1/2 + 2/4 + 3/4 = 1.75 ; row 1: 6 ; mean 3.875
    assert out.item() == approx(3.875)
    assert out.dtype == torch.float32
    out.backward()
    # d/dprobs = cost / B
    assert probs.grad.tolist() == [[0.5, 1.0, 1.5], [2.0, 2.5, 3.0]]
