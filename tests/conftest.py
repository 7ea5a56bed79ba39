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


def write_tiny_train_data(root, task: str = "arith", n_rows: int = 8, n_test: int = 4):
    """Write ``<root>/<task>/train/{train.jsonl, train.correct.jsonl}`` (2 correct paths per row, so
    ``2 * n_rows`` training paths) and ``<root>/<task>/test/test.jsonl`` in the research layout."""
    import json
    import random
    from pathlib import Path

    rng = random.Random(0)
    root = Path(root)
    (root / task / "train").mkdir(parents=True, exist_ok=True)
    (root / task / "test").mkdir(parents=True, exist_ok=True)
    src, cor = [], []
    for i in range(n_rows):
        a, b = rng.randint(2, 50), rng.randint(2, 50)
        src.append({"id": f"q{i}", "question": f"Ann has {a} apples and buys {b} more. How many apples?",
                    "gold_answer": str(a + b)})
        cor.append({"id": f"q{i}", "gold_answer": str(a + b), "styles": ["cot", "pot"], "path_idx": [0, 2],
                    "prompts": ["p", "p"], "preds": [str(a + b)] * 2, "correct_flags": [True, True],
                    "responses": [f"Ann starts with {a}. {a} + {b} = {a + b}. The answer is \\boxed{{{a + b}}}.",
                                  f"x = {a} + {b}\nprint(x)  # {a + b}\nThe answer is \\boxed{{{a + b}}}."]})
    (root / task / "train" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in src))
    (root / task / "train" / "train.correct.jsonl").write_text("".join(json.dumps(r) + "\n" for r in cor))
    (root / task / "test" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in src[:n_test]))
    return root


@pytest.fixture(scope="session")
def tiny_train_data(tmp_path_factory):
    """A data root with 16 training paths (8 rows x 2 correct paths) and 4 test rows of task ``arith``."""
    return write_tiny_train_data(tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture
def demo_students(tmp_path):
    """``build(cfg, arith) -> (rows, teacher, m1, m2, tok1, tok2)``: the demo's two tiny students for a
    ``DemoConfig``, built as ``distill demo`` builds them (tokenizers trained on train questions plus
    the scripted teacher's answers in every style of ``cfg``), on ``arith``'s train split."""
    import json

    def build(cfg, arith):
        from distill.demo.students import build_students, tokenizer_corpus
        from distill.demo.synthetic import write_splits
        from distill.demo.teacher import ScriptedBackend
        from distill.students.tokenizer import load_tokenizer

        paths = write_splits(tmp_path / "data", arith)
        teacher = ScriptedBackend(wrong_rate=0.0)
        rows = [json.loads(line) for line in paths["train"].read_text().splitlines()]
        enriched = tmp_path / "enriched.jsonl"
        enriched.write_text("\n".join(json.dumps({"responses": [teacher.answer(r, s) for s in cfg.styles.split(",")]})
                                      for r in rows) + "\n")
        m1, m2 = build_students(cfg, tokenizer_corpus(paths["train"], enriched), tmp_path / "students")
        return rows, teacher, m1, m2, load_tokenizer(m1), load_tokenizer(m2)

    return build


@pytest.fixture(autouse=True)
def _progress_switch_per_test(monkeypatch):
    """``--no-progress`` sets ``DISTILL_NO_PROGRESS`` for the whole process (so child processes inherit it):
    keep that to the test whose command passed it, or every later test's progress bars would be off."""
    from distill.progress import NO_PROGRESS_ENV

    monkeypatch.setenv(NO_PROGRESS_ENV, "0")  # "0" = bars on; restored to the outer value after the test
