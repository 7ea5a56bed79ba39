"""Cross-tokenizer alignment by character offsets of the shared response text.

Why: two students with different tokenizers split the same response into different tokens, so
position ``i`` of one has nothing to do with position ``i`` of the other. Fast tokenizers give each
token its ``(start, end)`` character span in the response; tokens of the two students are paired
only when their spans agree on the characters that matter:

* ``"end"``   — both tokens end at the same character: the hidden states at the pair have read
  exactly the same response prefix (used for hidden-state distillation);
* ``"start"`` — both tokens start at the same character: the logits *before* them predict the
  continuation from the same point (used for ULD on aligned positions);
* ``"span"``  — identical ``(start, end)``: the same characters, as one token each (used for
  same-vocabulary token-level KL, where it pairs every token when the tokenizers agree).

Empty spans (special tokens such as EOS get ``(0, 0)`` or ``(n, n)``) never align.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from distill.losses import IGNORE_INDEX

Span = tuple[int, int]
ALIGN_KEYS = ("end", "start", "span")


def align_spans(spans1: Sequence[Span], spans2: Sequence[Span], key: str = "end") -> list[tuple[int, int]]:
    """Pairs ``(i, j)`` of indices into ``spans1`` / ``spans2`` whose spans agree on ``key``.

    Each index appears at most once; pairs are in increasing order of both indices (spans of a
    tokenisation are monotone), so the result is a monotone alignment.
    """
    if key not in ALIGN_KEYS:
        raise ValueError(f"alignment key must be one of {ALIGN_KEYS}, got {key!r}")

    def k(s: Span):
        return s[1] if key == "end" else s[0] if key == "start" else (s[0], s[1])

    index2: dict = {}
    for j, s in enumerate(spans2):
        if s[1] > s[0]:
            index2.setdefault(k(s), j)
    pairs, last_j = [], -1
    seen: set = set()
    for i, s in enumerate(spans1):
        if s[1] <= s[0]:
            continue
        kk = k(s)
        if kk in seen:
            continue
        j = index2.get(kk)
        if j is not None and j > last_j:
            pairs.append((i, j))
            seen.add(kk)
            last_j = j
    return pairs


def completion_spans(labels: torch.Tensor, offsets: torch.Tensor | Sequence) -> list[tuple[list[int], list[Span]]]:
    """Per example: the positions of completion tokens (``labels != IGNORE_INDEX``) and their spans.

    ``offsets`` is either ``[B, L, 2]`` aligned with ``input_ids`` (spans of non-completion tokens
    are ignored) or, per example, a list with one ``(start, end)`` per completion token in order.
    """
    out = []
    for b in range(labels.shape[0]):
        pos = torch.nonzero(labels[b] != IGNORE_INDEX, as_tuple=False).flatten().tolist()
        off = offsets[b]
        if isinstance(off, torch.Tensor):
            off = off.tolist()
        if len(off) == labels.shape[1]:
            spans = [(int(off[p][0]), int(off[p][1])) for p in pos]
        elif len(off) >= len(pos):
            spans = [(int(s), int(e)) for s, e in off[: len(pos)]]
        else:
            raise ValueError(f"example {b}: {len(off)} offsets for {len(pos)} completion tokens "
                             f"(sequence length {labels.shape[1]})")
        out.append((pos, spans))
    return out


def aligned_positions(labels1: torch.Tensor, offsets1, labels2: torch.Tensor, offsets2,
                      key: str = "end") -> list[tuple[list[int], list[int]]]:
    """Per example, parallel lists of sequence positions in student 1 and student 2 that align."""
    c1 = completion_spans(labels1, offsets1)
    c2 = completion_spans(labels2, offsets2)
    out = []
    for (pos1, sp1), (pos2, sp2) in zip(c1, c2):
        pairs = align_spans(sp1, sp2, key)
        out.append(([pos1[i] for i, _ in pairs], [pos2[j] for _, j in pairs]))
    return out
