"""Loading a student's tokenizer the same way everywhere (training, evaluation, peer losses).

Why not ``AutoTokenizer``: for a local folder whose ``config.json`` says ``qwen2`` it
swaps in the slow ``Qwen2Tokenizer`` class, which has no offsets mapping and a different
segmentation from the saved ``tokenizer.json``. A folder with a ``tokenizer.json`` is
therefore loaded as :class:`PreTrainedTokenizerFast`; hub names fall back to
``AutoTokenizer`` (fast).
"""

from __future__ import annotations

import os
from pathlib import Path


def load_tokenizer(path: str | os.PathLike, *, truncation_side: str | None = None):
    """Load a fast tokenizer for a local folder or hub name, with a pad token guaranteed.

    A tokenizer without a pad token gets ``eos`` as pad (the attention mask, not the
    token, is what hides padding). ``truncation_side`` overrides the saved one if given.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    p = Path(path)
    kwargs = {} if truncation_side is None else {"truncation_side": truncation_side}
    if p.is_dir() and (p / "tokenizer.json").is_file():
        tok = PreTrainedTokenizerFast.from_pretrained(str(p), **kwargs)
    else:
        tok = AutoTokenizer.from_pretrained(str(path), use_fast=True, **kwargs)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok
