"""``distill regen-correct``: re-scores enriched logs, rewrites both files, validates before writing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill.commands import main

REPO = Path(__file__).resolve().parents[1]
DATA = Path("/work/shared/datasets")
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="needs /work/shared/datasets (real benchmark rows)")


def _real_rows(task: str, n: int) -> list[dict]:
    out = []
    with open(DATA / task / "test.jsonl", encoding="utf-8") as fh:
        for line in fh:
            out.append(json.loads(line))
            if len(out) == n:
                break
    return out


def _enrich(row: dict, responses: list[str], stale_flag: bool) -> dict:
    n = len(responses)
    return {**row, "prompts": ["p"] * n, "styles": ["cot"] * n, "responses": responses,
            "preds": ["stale"] * n, "correct_flags": [stale_flag] * n}


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/gsm8k/run1/test.enriched.jsonl (real rows; stale flags all True) + root/strategy_qa/..."""
    gsm = []
    for r in _real_rows("gsm8k", 4):
        gsm.append(_enrich(r, [f"The answer is \\boxed{{{r['gold_answer']}}}.",
                               f"The answer is {int(r['gold_answer']) + 5}.", ""], stale_flag=True))
    _write(tmp_path / "gsm8k" / "run1" / "test.enriched.jsonl", gsm)
    sqa = [_enrich(r, ["So the answer is yes.", "I know. The answer is no."], stale_flag=False)
           for r in _real_rows("strategy_qa", 3)]
    _write(tmp_path / "strategy_qa" / "test.enriched.jsonl", sqa)
    return tmp_path


@needs_data
def test_regen_root_all(tree: Path, capsys):
    assert main(["regen-correct", "--root", str(tree), "--dataset", "all", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    gsm = _read(tree / "gsm8k" / "run1" / "test.enriched.jsonl")
    for r in gsm:
        assert r["correct_flags"] == [True, False, False]
        assert r["preds"][0] == r["gold_answer"] and r["preds"][2] == "N/A"
        assert "question" in r and "solution" in r  # source fields survive the rewrite
    cor = _read(tree / "gsm8k" / "run1" / "test.correct.jsonl")
    assert [c["path_idx"] for c in cor] == [[0]] * 4
    assert cor[0]["responses"] == [gsm[0]["responses"][0]]
    sqa = _read(tree / "strategy_qa" / "test.enriched.jsonl")
    for r in sqa:
        assert r["preds"] == ["Yes", "No"]
        assert r["correct_flags"] == [r["gold_answer"] == "Yes", r["gold_answer"] == "No"]
    assert (tree / "strategy_qa" / "test.correct.jsonl").exists()
    assert "7 rows" in out and "18 paths" in out and "0 timeouts" in out and "paths/s" in out


@needs_data
def test_regen_single_input_and_dataset_filter(tree: Path):
    f = tree / "strategy_qa" / "test.enriched.jsonl"
    assert main(["regen-correct", "--input", str(f)]) == 0  # task taken from the folder name
    assert _read(f)[0]["preds"] == ["Yes", "No"]
    g = tree / "gsm8k" / "run1" / "test.enriched.jsonl"
    before = g.read_bytes()
    assert main(["regen-correct", "--root", str(tree), "--dataset", "strategy_qa"]) == 0
    assert g.read_bytes() == before  # other tasks untouched


@needs_data
def test_bad_line_names_file_line_field_and_writes_nothing(tree: Path, capsys):
    g = tree / "gsm8k" / "run1" / "test.enriched.jsonl"
    rows = _read(g)
    del rows[2]["gold_answer"]
    _write(g, rows)
    s = tree / "strategy_qa" / "test.enriched.jsonl"
    before_g, before_s = g.read_bytes(), s.read_bytes()
    assert main(["regen-correct", "--root", str(tree), "--dataset", "all"]) == 2
    err = capsys.readouterr().err
    assert f"{g}:3:" in err and "gold_answer" in err
    assert g.read_bytes() == before_g and s.read_bytes() == before_s
    assert not (tree / "strategy_qa" / "test.correct.jsonl").exists()
    assert not [p for p in g.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("line,needle", [
    ("{not json\n", ":1: malformed JSON"),
    (json.dumps({"id": "x", "question": "q", "gold_answer": "1", "prompts": ["p"], "styles": ["cot"],
                 "responses": [3]}) + "\n", "'responses'[0]"),
    (json.dumps({"id": "x", "question": "q", "gold_answer": "1", "prompts": ["p"], "styles": [],
                 "responses": ["1"]}) + "\n", "'styles'"),
    (json.dumps({"id": "x", "question": "q", "gold_answer": "1", "task": "chess", "prompts": [], "styles": [],
                 "responses": []}) + "\n", "field 'task': unknown task 'chess'"),
])
def test_malformed_inputs(tmp_path: Path, capsys, line, needle):
    f = tmp_path / "gsm8k" / "a.enriched.jsonl"
    f.parent.mkdir(parents=True)
    f.write_text(line, encoding="utf-8")
    assert main(["regen-correct", "--input", str(f), "--dataset", "gsm8k"]) == 2
    err = capsys.readouterr().err
    assert f"{f}:1:" in err and needle in err
    assert f.read_text(encoding="utf-8") == line
    assert not (tmp_path / "gsm8k" / "a.correct.jsonl").exists()


def test_unknown_dataset_and_empty_root(tmp_path: Path, capsys):
    assert main(["regen-correct", "--root", str(tmp_path), "--dataset", "chess"]) == 2
    assert "unknown task 'chess'" in capsys.readouterr().err
    assert main(["regen-correct", "--root", str(tmp_path), "--dataset", "gsm8k"]) == 2
    assert "no *.enriched.jsonl" in capsys.readouterr().err


@needs_data
def test_subprocess_does_not_import_torch(tree: Path):
    code = ("import sys; from distill.commands import main; rc = main(sys.argv[1:]); "
            "bad = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]; "
            "print('HEAVY', bad); sys.exit(rc)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code, "regen-correct", "--root", str(tree), "--dataset", "gsm8k"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout
    assert "4 rows" in proc.stdout


@needs_data
def test_regen_never_counts_a_path_cut_by_the_token_limit(tmp_path: Path):
    """A right answer in a path the teacher's token limit cut off stays wrong after re-scoring."""
    rows = []
    for r in _real_rows("gsm8k", 2):
        row = _enrich(r, [f"The answer is \\boxed{{{r['gold_answer']}}}."] * 2, stale_flag=False)
        row["finish_reasons"] = ["stop", "length"]
        rows.append(row)
    f = tmp_path / "gsm8k" / "test.enriched.jsonl"
    _write(f, rows)
    assert main(["regen-correct", "--input", str(f)]) == 0
    assert [r["correct_flags"] for r in _read(f)] == [[True, False], [True, False]]
