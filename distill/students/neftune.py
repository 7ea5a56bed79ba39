"""NEFTune (Jain et al. 2023, "NEFTune: Noisy Embeddings Improve Instruction Finetuning"): uniform
noise on a student's input embeddings during training only.

The noise added to the embedding output ``[B, L, d]`` is ``U(-1, 1) * alpha / sqrt(L * d)``, drawn
fresh at every forward, with ``d`` the hidden size and ``L`` the **padded** sequence length of the
batch (the embedding output's second dimension), as TRL and Hugging Face's ``neftune_noise_alpha``
use it. Why padded and not each row's own length: the embedding layer does not see the attention
mask; with dynamic padding (:meth:`distill.students.data.PathDataset.collate`) ``L`` is the batch's
longest row, so shorter rows get slightly less noise than on their own. Padding positions get noise
too; the attention mask hides them and their labels are ignored.

It is a forward hook on the input embedding module, active only while that module is in training
mode: ``model.eval()`` (evaluation, ``generate``) sees the plain embeddings, and the hook is never
saved with the adapter. The noise comes from torch's global RNG, so a seeded run (and a resumed one,
which restores every RNG state) draws the same noise.
"""

from __future__ import annotations

import math

#: the attribute under which the hook's handle is kept on the embedding module
_HANDLE = "_distill_neftune_handle"


def neftune_scale(alpha: float, seq_len: int, hidden: int) -> float:
    """The noise bound ``alpha / sqrt(L * d)``: every noise value lies in ``[-scale, scale]``."""
    return float(alpha) / math.sqrt(seq_len * hidden)


def _hook(alpha: float):
    def add_noise(module, args, output):
        if not module.training:
            return output
        import torch

        scale = neftune_scale(alpha, output.shape[1], output.shape[2])
        with torch.no_grad():
            noise = torch.empty_like(output).uniform_(-scale, scale)
        return output + noise

    return add_noise


def add_neftune(model, alpha: float):
    """Install NEFTune noise with ``alpha`` on ``model``'s input embeddings (a PEFT model or a plain
    HF model); returns the embedding module. ``alpha == 0`` installs nothing. Installing again
    replaces the previous hook (never two noises)."""
    if not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"NEFTune alpha must be a finite number >= 0, got {alpha}")
    emb = model.get_input_embeddings()
    remove_neftune(model)
    if alpha > 0:
        setattr(emb, _HANDLE, emb.register_forward_hook(_hook(alpha)))
    return emb


def remove_neftune(model) -> bool:
    """Take NEFTune off ``model``'s input embeddings; True if it was on."""
    emb = model.get_input_embeddings()
    handle = getattr(emb, _HANDLE, None)
    if handle is None:
        return False
    handle.remove()
    delattr(emb, _HANDLE)
    return True
