"""Pure loss functions shared by the engine, the router and peer teaching.

Why per-example: routing decides per reasoning path which student learns it, so the
engine needs one NLL per path (``Tensor[B]``), and the student objective is a masked
mean over the paths routed to that student.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def per_example_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token NLL of each example over its labelled tokens.

    ``logits``: [B, T, V] (position t predicts token t+1); ``labels``: [B, T] with
    ``-100`` on prompt and padding tokens. Returns [B] float32. An example with no
    labelled token (its completion was truncated away) gets 0 rather than NaN, so it
    contributes nothing instead of poisoning the batch.
    """
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    tok = F.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
                          ignore_index=IGNORE_INDEX, reduction="none").view(shift_labels.shape)
    valid = (shift_labels != IGNORE_INDEX).to(tok.dtype)
    return (tok * valid).sum(dim=1) / valid.sum(dim=1).clamp_min(1.0)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum(values * mask) / sum(mask)``, and exactly 0 (with a graph) when the mask is empty.

    The mask may carry straight-through gradients (router decisions); they flow through
    both the numerator and the denominator.
    """
    mask = mask.to(values.dtype)
    denom = mask.sum()
    return (values * mask).sum() / denom.clamp_min(1.0)
