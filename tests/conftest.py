"""Shared fixtures: tiny local students (built once per test session).

Each tiny model has its own locally trained tokenizer (``distill.models.tiny``), so
tests that need two students with *different* tokenizers take ``tiny_llama`` and
``tiny_qwen2`` (or ``tiny_gpt2``).
"""

from __future__ import annotations

import pytest


def _make(tmp_path_factory, arch: str, **kw):
    from distill.models.tiny import make_tiny_student

    return make_tiny_student(tmp_path_factory.mktemp(f"tiny_{arch}"), arch, **kw)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    """Path to a tiny Llama (byte-level BPE tokenizer, 512 tokens, [INST] template)."""
    return _make(tmp_path_factory, "llama")


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory):
    """Path to a tiny Qwen2 (byte-level Unigram tokenizer, ChatML template)."""
    return _make(tmp_path_factory, "qwen2")


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory):
    """Path to a tiny GPT-2 (byte-level BPE, 384 tokens, separate <|pad|>)."""
    return _make(tmp_path_factory, "gpt2")
