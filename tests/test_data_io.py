"""The shared data layer: task registry, JSONL validation errors, atomic writes, correct-only projection."""

import json
import os

import pytest

from distill.data.jsonl import (
    DataError,
    atomic_write_jsonl,
    correct_only,
    correct_path,
    enriched_path,
    is_output_file,
    read_rows,
)
from distill.data.tasks import TASKS, UnknownTaskError, get_task

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets")


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_unknown_task_lists_valid_ones():
    with pytest.raises(UnknownTaskError) as exc:
        get_task("gsm9k")
    assert "gsm8k" in str(exc.value) and "anli" in str(exc.value)


def test_malformed_line_names_file_and_line(tmp_path):
    p = write_lines(tmp_path / "t.jsonl", ['{"id": 1, "question": "q", "gold_answer": "1"}', '{"id": 2, "question": '])
    with pytest.raises(DataError) as exc:
        read_rows(p, "gsm8k")
    assert str(exc.value).startswith(f"{p}:2:")
    assert "malformed JSON" in str(exc.value)


def test_missing_field_names_the_field(tmp_path):
    p = write_lines(tmp_path / "t.jsonl", ['{"id": "a", "question": "q", "gold_answer": "B"}'])
    with pytest.raises(DataError) as exc:
        read_rows(p, "arc_challenge")
    assert f"{p}:1:" in str(exc.value) and "'choices'" in str(exc.value)


def test_enriched_lists_must_be_parallel(tmp_path):
    row = {"id": "x", "question": "q", "gold_answer": "1", "prompts": ["a", "b"], "styles": ["cot"],
           "responses": ["r1", "r2"]}
    p = write_lines(tmp_path / "t.enriched.jsonl", [json.dumps(row)])
    with pytest.raises(DataError) as exc:
        read_rows(p, "gsm8k", enriched=True)
    assert "'styles'" in str(exc.value)


def test_atomic_write_keeps_old_file_on_crash(tmp_path):
    p = tmp_path / "out.jsonl"
    atomic_write_jsonl(p, [{"a": 1}])

    def rows():
        yield {"a": 2}
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        atomic_write_jsonl(p, rows())
    assert p.read_text() == '{"a": 1}\n'
    assert [f.name for f in tmp_path.iterdir()] == ["out.jsonl"]  # no temp file left behind


def test_correct_only_keeps_path_indices():
    row = {"id": "q1", "gold_answer": "4", "question": "2+2?", "prompts": ["p0", "p1", "p2"],
           "styles": ["cot", "program", "plain"], "responses": ["4", "5", "4"], "preds": ["4", "5", "4"],
           "correct_flags": [True, False, True]}
    out = correct_only(row)
    assert out["path_idx"] == [0, 2]
    assert out["styles"] == ["cot", "plain"]
    assert out["responses"] == ["4", "4"]
    assert "question" not in out


def test_output_names():
    assert enriched_path("d/test.jsonl").name == "test.enriched.jsonl"
    assert correct_path("d/test.enriched.jsonl").name == "test.correct.jsonl"
    assert is_output_file("d/test.correct.jsonl") and not is_output_file("d/test.jsonl")


@pytest.mark.parametrize("task", sorted(t for t in TASKS if t != "arith"))
def test_shared_datasets_validate(task):
    """The real benchmark files in ../shared/datasets satisfy our schema."""
    path = os.path.join(SHARED, task, "test.jsonl")
    if not os.path.exists(path):
        pytest.skip(f"shared dataset not present beside the repo: {path}")
    rows = read_rows(path, task)
    assert len(rows) >= 200
