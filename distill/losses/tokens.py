"""Token-level losses over labelled completions: the students' own objective.

Why per-example: routing decides per reasoning path which student learns it, so the
engine needs one NLL per path (``Tensor[B]``), and the student objective is a masked
mean over the paths routed to that student.

Labels follow the Hugging Face convention: ``labels[b, t]`` is the token at position ``t``
(``input_ids``-aligned, *not* pre-shifted) or :data:`IGNORE_INDEX` on prompt and padding
tokens; logits at position ``t`` predict token ``t + 1``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Label of a token that is not trained on (prompt, padding); PyTorch's ``cross_entropy`` default.
IGNORE_INDEX = -100


def completion_mask(labels: torch.Tensor) -> torch.Tensor:
    """Where the labels are trained on.

    Args:
        labels: [B, T] long, :data:`IGNORE_INDEX` on prompt and padding tokens.

    Returns:
        [B, T] bool, ``True`` on completion (labelled) tokens. One spelling of the ignore
        test, so the students' data, the peer module and the losses cannot disagree.
    """
    return labels != IGNORE_INDEX


def per_example_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token NLL of each example over its labelled tokens.

    Args:
        logits: [B, T, V] (position t predicts token t+1), any float dtype.
        labels: [B, T] long with :data:`IGNORE_INDEX` on prompt and padding tokens.

    Returns:
        [B] float32. An example with no labelled token (its completion was truncated away)
        gets 0 rather than NaN, so it contributes nothing instead of poisoning the batch.
        The mean (not the sum) keeps long and short reasoning paths on one scale for routing.
    """
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    tok = F.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
                          ignore_index=IGNORE_INDEX, reduction="none").view(shift_labels.shape)
    valid = (shift_labels != IGNORE_INDEX).to(tok.dtype)
    return (tok * valid).sum(dim=1) / valid.sum(dim=1).clamp_min(1.0)


def sequence_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed next-token NLL of each example's labelled tokens.

    Args:
        logits: [B, T, V] (position t predicts token t+1), any float dtype.
        labels: [B, T] long with :data:`IGNORE_INDEX` on prompt and padding tokens.

    Returns:
        [B] float32; 0 for an example with no labelled token. The *sum* is ``-log p(response)``,
        the log-probability of the same string, so it is comparable across students with
        different tokenizers (a per-token mean is not: the token counts differ). Computed one
        example at a time so only its labelled rows are upcast to float32 (bounded memory on
        large vocabularies). Pure and differentiable: a caller that only needs the value (the
        peer module's weight-network target) wraps it in ``torch.no_grad()``.
    """
    out = []
    for b in range(labels.shape[0]):
        lab = labels[b, 1:]
        keep = lab != IGNORE_INDEX
        if not keep.any():
            out.append(logits.new_zeros((), dtype=torch.float32))
            continue
        lg = logits[b, :-1][keep].float()
        out.append(F.cross_entropy(lg, lab[keep], reduction="sum"))
    return torch.stack(out)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum(values * mask) / sum(mask)``, and exactly 0 (with a graph) when the mask is empty.

    Args:
        values: [B] per-example losses (e.g. from :func:`per_example_nll`).
        mask: [B] weights in {0, 1} (bool or float), cast to ``values.dtype``.

    Returns:
        Scalar. A student that receives no path this batch gets loss 0 that still backpropagates
        (zero gradients) instead of NaN, so distributed ranks stay in step. The mask may carry
        straight-through gradients (router decisions); they flow through both the numerator and
        the denominator.
    """
    mask = mask.to(values.dtype)
    denom = mask.sum()
    return (values * mask).sum() / denom.clamp_min(1.0)
