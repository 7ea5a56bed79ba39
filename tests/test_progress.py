"""Progress bars of the long stages: rate and ETA on stderr, nothing with ``DISTILL_NO_PROGRESS=1``, and a
one-line summary at each stage's end either way (real verifier pool, real encoder, real z3)."""

from __future__ import annotations

import re
import shutil

import pytest

from distill.progress import NO_PROGRESS_ENV

#: tqdm's ``[elapsed<remaining, rate]``: the ETA and the rate of a drawn bar
RATE_ETA = re.compile(r"\[\d\d:\d\d<\d\d:\d\d, +\d+(\.\d+)?(?:(?P<u1>[a-z]+)/s|s/(?P<u2>[a-z]+))\]")
BAR = re.compile(r"\d+%\|")


def _bar_units(err: str) -> set[str]:
    return {m.group("u1") or m.group("u2") for m in RATE_ETA.finditer(err)}


@pytest.fixture
def bars_on(monkeypatch):
    monkeypatch.delenv(NO_PROGRESS_ENV, raising=False)


@pytest.fixture
def bars_off(monkeypatch):
    monkeypatch.setenv(NO_PROGRESS_ENV, "1")


def _verify(n: int = 12):
    from distill.verify.batch import score_batch

    items = [(f"so the answer is \\boxed{{{i + (i % 3 == 0)}}}", {"gold_answer": str(i)}) for i in range(n)]
    return score_batch("arith", items, workers=1, progress=True)


def test_verify_bar_shows_rate_and_eta_then_one_summary_line(bars_on, capsys):
    res = _verify()
    err = capsys.readouterr().err
    assert "path" in _bar_units(err) and BAR.search(err), err
    summary = [line for line in err.splitlines() if line.startswith("verify arith: 12 paths in")]
    assert len(summary) == 1 and f"{res.correct} correct" in summary[0] and res.correct == 8


def test_no_progress_env_draws_no_bar_but_keeps_the_summary(bars_off, capsys):
    _verify()
    err = capsys.readouterr().err
    assert not BAR.search(err) and not RATE_ETA.search(err), err
    assert err.strip().splitlines() == [line for line in err.strip().splitlines() if line.startswith("verify arith:")]
    assert len(err.strip().splitlines()) == 1


def test_verify_without_progress_prints_nothing(bars_on, capsys):
    from distill.verify.batch import score_batch

    score_batch("arith", [("\\boxed{1}", {"gold_answer": "1"})], workers=1)  # library default: quiet
    assert capsys.readouterr().err == ""


def test_embedding_bar_and_summary_only_when_paths_are_encoded(bars_on, capsys, tmp_path):
    from distill.router.encoder import PathEmbedder

    texts = [f"question {i}\n\nreasoning {i}" for i in range(5)]
    PathEmbedder("minilm", tmp_path).embed(texts)
    err = capsys.readouterr().err
    assert "path" in _bar_units(err) and "embed paths: 5 new paths encoded" in err, err
    PathEmbedder("minilm", tmp_path).embed(texts)  # all cached now: no stage, no output
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(shutil.which("z3") is None, reason="needs the z3 binary")
@pytest.mark.parametrize("on", [True, False])
def test_formal_augmentation_bar(on, monkeypatch, capsys):
    from distill.verify.formal.augment import make_repair_pairs

    if on:
        monkeypatch.delenv(NO_PROGRESS_ENV, raising=False)
    else:
        monkeypatch.setenv(NO_PROGRESS_ENV, "1")
    rows = [{"id": "s1", "question": "x > 1", "gold_answer": "(declare-const x Int)\n(assert (> x 1))\n(check-sat)"}]
    pairs, _ = make_repair_pairs("smt", rows, workers=1, progress=True)
    err = capsys.readouterr().err
    assert pairs and re.search(r"smt corruptions: \d+ programs checked in", err), err
    assert bool(RATE_ETA.search(err)) is on and ("program" in _bar_units(err)) is on, err
