"""``distill data import``: small local files in each public format (written here, with the real
``datasets`` / ``pyarrow`` writers) converted to our schema, checked field by field and read back by
our own validator; reports with row numbers; ``--map``; ``--limit/--seed``; one-line errors (exit 2);
the hub path offline. No network is used."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distill.commands import main
from distill.data.jsonl import read_rows

datasets = pytest.importorskip("datasets", reason="distill data import reads sources with the datasets library")


@pytest.fixture(autouse=True)
def _no_progress(monkeypatch):
    monkeypatch.setenv("DISTILL_NO_PROGRESS", "1")  # `--no-progress` sets it; this restores it afterwards


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows) -> Path:
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    return path


def imp(capsys, root: Path, task: str, *args: str) -> tuple[int, str, str]:
    rc = main(["data", "import", task, *args, "--root", str(root), "--no-progress"])
    out = capsys.readouterr()
    return rc, out.out, out.err


def imported(root: Path, task: str, name: str, split: str = "test") -> list[dict]:
    """The written rows, read through our reader and validator (every row must pass)."""
    path = root / task / split / f"{name}.jsonl"
    assert read_rows(path, task) is not None
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def sidecar(root: Path, task: str, name: str, split: str = "test") -> dict:
    return json.loads((root / task / split / f"{name}.source.json").read_text(encoding="utf-8"))


def test_gsm8k_jsonl_strips_notes_keeps_rationale_and_reports_missing_gold(tmp_path, capsys):
    src = write_jsonl(tmp_path / "test.jsonl", [
        {"question": "Ducks lay 16 eggs. How many?", "answer": "16 - 3 = <<16-3=13>>13\n#### 1,013"},
        {"question": "No final line", "answer": "just prose"},
        {"question": "Q3", "answer": "2*3=<<2*3=6>>6 and 6+1=<<6+1=7>>7\n#### 7"},
    ])
    rc, out, err = imp(capsys, tmp_path / "data", "gsm8k", "--from", str(src))
    assert rc == 0, err
    assert imported(tmp_path / "data", "gsm8k", "test") == [
        {"id": "gsm8k-test-00000", "question": "Ducks lay 16 eggs. How many?", "gold_answer": "1013",
         "solution": "16 - 3 = 13\n#### 1,013"},
        {"id": "gsm8k-test-00002", "question": "Q3", "gold_answer": "7", "solution": "2*3=6 and 6+1=7\n#### 7"},
    ]
    assert f"{src} row 2: id 'gsm8k-test-00001': no '#### N' line in column 'answer'" in err
    assert "wrote 2 rows" in out and "3 source rows" in out and "skipped 1: 1 missing gold" in out
    side = sidecar(tmp_path / "data", "gsm8k", "test")
    assert side["rows"] == {"source": 3, "convertible": 2, "written": 2, "skipped": 1}
    assert side["skipped"][0]["row"] == 2 and side["skipped"][0]["kind"] == "no_gold"
    assert side["license"] is None and "licence: unknown" in out


def test_math500_parquet_nested_boxed_level_type_and_card_licence(tmp_path, capsys):
    (tmp_path / "README.md").write_text("---\nlicense: mit\n---\n# MATH-500\n", encoding="utf-8")
    src = write_parquet(tmp_path / "math500.parquet", [
        {"problem": "Half of one?", "solution": "First \\boxed{2} is wrong; it is $\\boxed{\\frac{1}{2}}$.",
         "answer": "\\frac12", "subject": "Algebra", "level": 2, "unique_id": "test/algebra/1.json"},
        {"problem": "No box", "solution": "The answer is 5.", "answer": "5", "subject": "Geometry", "level": 5,
         "unique_id": "test/geometry/2.json"},
    ])
    rc, out, err = imp(capsys, tmp_path / "data", "math", "--from", str(src))
    assert rc == 0, err
    assert imported(tmp_path / "data", "math", "math500") == [
        {"id": "test/algebra/1.json", "question": "Half of one?", "gold_answer": "\\frac{1}{2}", "level": 2,
         "type": "Algebra", "solution": "First \\boxed{2} is wrong; it is $\\boxed{\\frac{1}{2}}$."},
        {"id": "test/geometry/2.json", "question": "No box", "gold_answer": "5", "level": 5, "type": "Geometry",
         "solution": "The answer is 5."},
    ]
    side = sidecar(tmp_path / "data", "math", "math500")
    assert side["license"] == "mit" and side["license_from"].endswith("README.md")
    assert side["source"]["files"][0]["sha256"] and "licence: mit" in out


def test_original_math_json_list_level_words_and_missing_box(tmp_path, capsys):
    src = tmp_path / "train.json"
    src.write_text(json.dumps([
        {"problem": "P1", "level": "Level 3", "type": "Number Theory", "solution": "So $\\boxed{\\{1,2\\}}$."},
        {"problem": "P2", "level": "Level ?", "type": "Algebra", "solution": "no box here"},
    ]), encoding="utf-8")
    rc, out, err = imp(capsys, tmp_path / "data", "math", "--from", str(src), "--split", "train")
    assert rc == 0, err
    assert imported(tmp_path / "data", "math", "train", "train") == [
        {"id": "math-train-00000", "question": "P1", "gold_answer": "\\{1,2\\}", "level": 3, "type": "Number Theory",
         "solution": "So $\\boxed{\\{1,2\\}}$."}]
    assert f"{src} row 2: id 'math-train-00001': no \\boxed{{}} in column 'solution' and no 'answer'" in err


def test_arc_arrow_numeric_labels_mapped_and_duplicate_ids_reported(tmp_path, capsys):
    ds = datasets.Dataset.from_list([
        {"id": "Q1", "question": "Which?", "choices": {"text": ["a", "b", "c", "d"], "label": ["1", "2", "3", "4"]},
         "answerKey": "3"},
        {"id": "Q2", "question": "Or?", "choices": {"text": ["x", "y"], "label": ["A", "B"]}, "answerKey": "B"},
        {"id": "Q1", "question": "Again", "choices": {"text": ["p", "q"], "label": ["A", "B"]}, "answerKey": "A"},
    ])
    ds.save_to_disk(str(tmp_path / "saved"))
    arrow = next((tmp_path / "saved").glob("*.arrow"))
    rc, out, err = imp(capsys, tmp_path / "data", "arc_challenge", "--from", str(arrow), "--name", "arc")
    assert rc == 0, err
    assert imported(tmp_path / "data", "arc_challenge", "arc") == [
        {"id": "Q1", "question": "Which?", "choices": {"label": ["A", "B", "C", "D"], "text": ["a", "b", "c", "d"]},
         "gold_answer": "C"},
        {"id": "Q2", "question": "Or?", "choices": {"label": ["A", "B"], "text": ["x", "y"]}, "gold_answer": "B"},
    ]
    assert f"{arrow} row 3: duplicate id 'Q1' (first at {arrow} row 1)" in err
    assert "skipped 1: 1 duplicate id" in out


def test_commonsense_qa_official_jsonl_and_hf_parquet(tmp_path, capsys):
    official = write_jsonl(tmp_path / "dev_rand_split.jsonl", [
        {"answerKey": "A", "id": "c1", "question": {"question_concept": "door", "stem": "A door at a what?",
                                                    "choices": [{"label": "A", "text": "bank"},
                                                                {"label": "B", "text": "mall"}]}}])
    rc, out, err = imp(capsys, tmp_path / "data", "commonsense_qa", "--from", str(official), "--name", "dev")
    assert rc == 0, err
    assert imported(tmp_path / "data", "commonsense_qa", "dev") == [
        {"id": "c1", "question": "A door at a what?", "choices": {"label": ["A", "B"], "text": ["bank", "mall"]},
         "gold_answer": "A", "question_concept": "door"}]
    hf = write_parquet(tmp_path / "hf.parquet", [
        {"id": "h1", "question": "Q?", "question_concept": "c", "choices": {"label": ["A", "B"], "text": ["u", "v"]},
         "answerKey": "B"},
        {"id": "h2", "question": "Q2?", "question_concept": "c", "choices": {"label": ["A", "B"], "text": ["u", "v"]},
         "answerKey": ""}])
    rc, out, err = imp(capsys, tmp_path / "data", "commonsense_qa", "--from", str(hf))
    assert rc == 0, err
    assert imported(tmp_path / "data", "commonsense_qa", "hf") == [
        {"id": "h1", "question": "Q?", "choices": {"label": ["A", "B"], "text": ["u", "v"]}, "gold_answer": "B",
         "question_concept": "c"}]
    assert f"{hf} row 2: id 'h2': empty 'answerKey'" in err


def test_strategy_qa_json_and_csv_booleans_to_yes_no(tmp_path, capsys):
    src = tmp_path / "dev.json"
    src.write_text(json.dumps([
        {"qid": "s1", "term": "Albany", "description": "d", "question": "Is it?", "answer": True,
         "facts": ["f1", "f2"], "decomposition": ["d1"]},
        {"qid": "s2", "term": "X", "description": "d", "question": "Is it not?", "answer": False,
         "facts": ["f"], "decomposition": ["d"]}]), encoding="utf-8")
    rc, _, err = imp(capsys, tmp_path / "data", "strategy_qa", "--from", str(src))
    assert rc == 0, err
    assert imported(tmp_path / "data", "strategy_qa", "dev") == [
        {"id": "s1", "question": "Is it?", "gold_answer": "Yes", "facts": ["f1", "f2"], "decomposition": ["d1"],
         "term": "Albany"},
        {"id": "s2", "question": "Is it not?", "gold_answer": "No", "facts": ["f"], "decomposition": ["d"], "term": "X"}]
    csv = tmp_path / "sqa.csv"
    csv.write_text("qid,question,answer\nc1,Can fish fly?,False\nc2,Is water wet?,True\n", encoding="utf-8")
    rc, _, err = imp(capsys, tmp_path / "data", "strategy_qa", "--from", str(csv))
    assert rc == 0, err
    rows = imported(tmp_path / "data", "strategy_qa", "sqa")
    assert [(r["id"], r["question"], r["gold_answer"]) for r in rows] == [
        ("c1", "Can fish fly?", "No"), ("c2", "Is water wet?", "Yes")]
    assert all(r["facts"] is None and r["decomposition"] is None and r["term"] is None for r in rows)


def test_anli_hf_integer_labels_and_official_letters(tmp_path, capsys):
    hf = write_parquet(tmp_path / "anli.parquet", [
        {"uid": "u0", "premise": " P0 ", "hypothesis": "H0 ", "label": 0, "reason": ""},
        {"uid": "u1", "premise": "P1", "hypothesis": "H1", "label": 1, "reason": "because"},
        {"uid": "u2", "premise": "P2", "hypothesis": "H2", "label": 2, "reason": ""},
        {"uid": "u3", "premise": "P3", "hypothesis": "H3", "label": -1, "reason": ""}])
    rc, _, err = imp(capsys, tmp_path / "data", "anli", "--from", str(hf))
    assert rc == 0, err
    assert imported(tmp_path / "data", "anli", "anli") == [
        {"id": "u0", "premise": "P0", "hypothesis": "H0", "gold_answer": "entailment", "reason": None,
         "source_split": "anli"},
        {"id": "u1", "premise": "P1", "hypothesis": "H1", "gold_answer": "neutral", "reason": "because",
         "source_split": "anli"},
        {"id": "u2", "premise": "P2", "hypothesis": "H2", "gold_answer": "contradiction", "reason": None,
         "source_split": "anli"}]
    assert f"{hf} row 4: id 'u3': 'label' is not 0/1/2 or e/n/c (-1: unlabelled)" in err
    official = write_jsonl(tmp_path / "test_r3.jsonl", [
        {"uid": "o1", "context": "C", "hypothesis": "H", "label": "c", "reason": "r", "model_label": "e"}])
    rc, _, err = imp(capsys, tmp_path / "data", "anli", "--from", str(official))
    assert rc == 0, err
    assert imported(tmp_path / "data", "anli", "test_r3") == [
        {"id": "o1", "premise": "C", "hypothesis": "H", "gold_answer": "contradiction", "reason": "r",
         "round": "R3", "source_split": "test_r3"}]


def test_bbh_date_options_parsed_from_the_input(tmp_path, capsys):
    src = tmp_path / "date_understanding.json"
    src.write_text(json.dumps({"canary": "x", "examples": [
        {"input": "Today is Christmas Eve of 1937. What is the date tomorrow in MM/DD/YYYY?\nOptions:\n"
                  "(A) 12/11/1937\n(B) 12/25/1937\n(C) 01/04/1938", "target": "(B)"},
        {"input": "No options here", "target": "(A)"}]}), encoding="utf-8")
    rc, out, err = imp(capsys, tmp_path / "data", "date", "--from", str(src))
    assert rc == 0, err
    assert imported(tmp_path / "data", "date", "date_understanding") == [
        {"id": "bbh-date-000", "question": "Today is Christmas Eve of 1937. What is the date tomorrow in MM/DD/YYYY?",
         "choices": {"label": ["A", "B", "C"], "text": ["12/11/1937", "12/25/1937", "01/04/1938"]},
         "gold_answer": "B"}]
    assert f"{src} row 2: id 'bbh-date-001': missing required field 'choices'" in err
    assert "1 invalid" in out


def test_tabmwp_records_keyed_by_pid(tmp_path, capsys):
    src = tmp_path / "problems_test1k.json"
    src.write_text(json.dumps({
        "16": {"question": "Mean?", "choices": None, "answer": "84", "unit": None, "table_title": "Coins",
               "table": "Name | Coins\nA | 84", "table_for_pd": {"Name": ["A"], "Coins": ["84"]}, "row_num": 2,
               "column_num": 2, "solution": "84.", "ques_type": "free_text", "ans_type": "integer_number",
               "grade": 5, "split": "test"},
        "17": {"question": "Which?", "choices": ["yes", "no"], "answer": "yes", "unit": "", "table_title": None,
               "table": "x | y\n1 | 2", "table_for_pd": {"x": ["1"]}, "row_num": 2, "column_num": 2,
               "solution": "Yes.", "ques_type": "multi_choice", "ans_type": "boolean_text", "grade": 3,
               "split": "test"}}), encoding="utf-8")
    rc, _, err = imp(capsys, tmp_path / "data", "table_mwp", "--from", str(src), "--name", "test1k")
    assert rc == 0, err
    assert imported(tmp_path / "data", "table_mwp", "test1k") == [
        {"id": "tabmwp-16", "table": "Name | Coins\nA | 84", "table_title": "Coins", "question": "Mean?",
         "gold_answer": "84", "choices": None, "unit": None, "ques_type": "free_text", "ans_type": "integer_number",
         "grade": 5, "solution": "84."},
        {"id": "tabmwp-17", "table": "x | y\n1 | 2", "table_title": None, "question": "Which?", "gold_answer": "yes",
         "choices": ["yes", "no"], "unit": None, "ques_type": "multi_choice", "ans_type": "boolean_text", "grade": 3,
         "solution": "Yes."}]


def test_map_names_columns_for_any_format(tmp_path, capsys):
    src = write_jsonl(tmp_path / "custom.jsonl", [
        {"key": "k1", "meta": {"prompt": "Pick one"}, "options": ["red", "blue"], "target": "B"},
        {"key": "k2", "meta": {"prompt": "Pick two"}, "options": ["x", "y", "z"], "target": "A"}])
    rc, _, err = imp(capsys, tmp_path / "data", "commonsense_qa", "--from", str(src), "--map", "id=key",
                     "--map", "question=meta.prompt", "--map", "choices=options", "--map", "gold_answer=target")
    assert rc == 0, err
    assert imported(tmp_path / "data", "commonsense_qa", "custom") == [
        {"id": "k1", "question": "Pick one", "choices": {"label": ["A", "B"], "text": ["red", "blue"]},
         "gold_answer": "B", "question_concept": None},
        {"id": "k2", "question": "Pick two", "choices": {"label": ["A", "B", "C"], "text": ["x", "y", "z"]},
         "gold_answer": "A", "question_concept": None}]
    assert sidecar(tmp_path / "data", "commonsense_qa", "custom")["map"]["question"] == "meta.prompt"


def test_our_own_schema_is_copied_and_a_hub_style_folder_picks_the_split(tmp_path, capsys):
    ours = [{"id": "gsm8k-test-00000", "question": "Q", "gold_answer": "18", "solution": "S\n#### 18"}]
    rc, _, err = imp(capsys, tmp_path / "data", "gsm8k", "--from", str(write_jsonl(tmp_path / "ours.jsonl", ours)))
    assert rc == 0, err
    assert imported(tmp_path / "data", "gsm8k", "ours") == ours
    repo = tmp_path / "gsm8k_clone"
    (repo / "main").mkdir(parents=True)
    write_parquet(repo / "main" / "train-00000-of-00001.parquet", [{"question": "T", "answer": "t\n#### 1"}])
    write_parquet(repo / "main" / "test-00000-of-00001.parquet", [{"question": "E", "answer": "e\n#### 2"}])
    rc, _, err = imp(capsys, tmp_path / "data", "gsm8k", "--from", str(repo))
    assert rc == 0, err
    assert imported(tmp_path / "data", "gsm8k", "gsm8k_clone") == [
        {"id": "gsm8k-test-00000", "question": "E", "gold_answer": "2", "solution": "e\n#### 2"}]


def test_limit_and_seed_are_deterministic_and_keep_source_order(tmp_path, capsys):
    src = write_jsonl(tmp_path / "big.jsonl", [{"question": f"Q{i}", "answer": f"#### {i}"} for i in range(50)])
    picks = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        rc, out, err = imp(capsys, tmp_path / "data", "gsm8k", "--from", str(src), "--limit", "7", "--seed",
                           str(seed), "--name", name)
        assert rc == 0, err
        assert "wrote 7 rows" in out and "sampled from 50" in out
        picks.append([int(r["gold_answer"]) for r in imported(tmp_path / "data", "gsm8k", name)])
    assert picks[0] == picks[1] and picks[0] != picks[2]
    assert all(p == sorted(p) and len(set(p)) == 7 for p in picks)
    import random
    assert picks[0] == sorted(random.Random(3).sample(range(50), 7))  # the shared datasets' sampling rule


def _one_line_error(rc: int, out: str, err: str) -> str:
    assert rc == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("distill data: error: "), err
    return lines[0]


@pytest.mark.parametrize("case", ["missing-file", "corrupt-parquet", "wrong-columns", "bad-map", "unknown-task",
                                  "exists", "strict", "root-is-a-file", "bad-name"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case):
    root = tmp_path / "data"
    good = write_jsonl(tmp_path / "g.jsonl", [{"question": "Q", "answer": "#### 1"}, {"question": "Q2", "answer": "x"}])
    args = {"missing-file": ["gsm8k", "--from", str(tmp_path / "nope.parquet")],
            "corrupt-parquet": ["gsm8k", "--from", str(tmp_path / "bad.parquet")],
            "wrong-columns": ["gsm8k", "--from", str(write_jsonl(tmp_path / "w.jsonl", [{"prompt": "p", "y": 1}]))],
            "bad-map": ["gsm8k", "--from", str(good), "--map", "question=nothere"],
            "unknown-task": ["gsm9k", "--from", str(good)],
            "exists": ["gsm8k", "--from", str(good)],
            "strict": ["gsm8k", "--from", str(good), "--strict"],
            "root-is-a-file": ["gsm8k", "--from", str(good)],
            "bad-name": ["gsm8k", "--from", str(good), "--name", "x.correct"]}[case]
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    if case == "exists":
        (root / "gsm8k" / "test").mkdir(parents=True)
        (root / "gsm8k" / "test" / "g.jsonl").write_text("keep me\n")
    if case == "root-is-a-file":
        root.write_text("a file where the data root should be")
    line = _one_line_error(*imp(capsys, root, *args))
    expect = {"missing-file": "no such file", "corrupt-parquet": "cannot read as parquet",
              "wrong-columns": "no column for question from question; gold_answer from answer",
              "bad-map": "has no column 'nothere'", "unknown-task": "unknown task 'gsm9k'",
              "exists": "exists; pass --force", "strict": "1 row(s) cannot be imported, first: ",
              "root-is-a-file": "cannot write", "bad-name": "--name 'x.correct'"}[case]
    assert expect in line, line
    if case == "exists":
        assert (root / "gsm8k" / "test" / "g.jsonl").read_text() == "keep me\n"
    if case in ("strict", "corrupt-parquet"):
        assert not (root / "gsm8k" / "test" / "g.jsonl").exists()


def test_force_replaces_and_licence_comes_from_saved_dataset_info(tmp_path, capsys):
    ds = datasets.Dataset.from_list([{"id": "a1", "question": "Q", "choices": {"label": ["A"], "text": ["t"]},
                                      "answerKey": "A"}], info=datasets.DatasetInfo(license="cc-by-sa-4.0"))
    ds.save_to_disk(str(tmp_path / "arc_saved"))
    for extra in ([], ["--force"]):
        rc, out, err = imp(capsys, tmp_path / "data", "arc_challenge", "--from", str(tmp_path / "arc_saved"), *extra)
        assert rc == 0, err
    side = sidecar(tmp_path / "data", "arc_challenge", "arc_saved")
    assert side["license"] == "cc-by-sa-4.0" and side["license_from"] == "the dataset info"
    assert imported(tmp_path / "data", "arc_challenge", "arc_saved")[0]["gold_answer"] == "A"


def _hub_run(tmp_path, env_extra: dict, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_ENDPOINT")}
    env.update(HF_HOME=str(tmp_path / "hf"), DISTILL_NO_PROGRESS="1", **env_extra)
    args = args or ("gsm8k", "--from", "openai/gsm8k", "--subset", "main")
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "distill.commands", "data", "import", *args,
                          "--root", str(tmp_path / "data")], capture_output=True, text=True, env=env, timeout=90)
    return out, time.monotonic() - t0


def _closed_port() -> int:
    with socket.socket() as s:  # a port nobody listens on: a connection is refused at once
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hub_name_downloads_with_card_licence_then_loads_from_the_cache_without_network(tmp_path):
    """A real hub round trip against a local stand-in of the Hub (tests/fake_hub_server.py): the parquet
    files of a repository clone layout, the card's licence in the sidecar; then, with the hub unreachable,
    the same name is read from the cache (no retries, no error)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from fake_hub_server import FakeHub

    def parquet(rows) -> bytes:
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), buf)
        return buf.getvalue()

    hub = FakeHub({"owner/toy": {
        "README.md": b"---\nlicense: cc-by-4.0\nconfigs:\n- config_name: main\n  data_files:\n"
                     b"  - split: test\n    path: main/test-*\n  - split: train\n    path: main/train-*\n---\n# toy\n",
        "main/test-00000-of-00001.parquet": parquet([{"question": "Q", "answer": "s <<1+1=2>>2\n#### 2"}]),
        "main/train-00000-of-00001.parquet": parquet([{"question": "T", "answer": "#### 3"}])}})
    try:
        out, _ = _hub_run(tmp_path, {"HF_ENDPOINT": hub.url}, "gsm8k", "--from", "owner/toy", "--subset", "main",
                          "--name", "online")
        assert out.returncode == 0, out.stderr
    finally:
        hub.close()
    assert any(line.endswith("main/test-00000-of-00001.parquet") and line.startswith("GET") for line in hub.log)
    rows = imported(tmp_path / "data", "gsm8k", "online")
    assert rows == [{"id": "gsm8k-test-00000", "question": "Q", "gold_answer": "2", "solution": "s 2\n#### 2"}]
    side = sidecar(tmp_path / "data", "gsm8k", "online")
    assert side["license"] == "cc-by-4.0" and side["source"]["name"] == "owner/toy" and side["source"]["subset"] == "main" and side["source"]["offline"] is None
    assert "licence: cc-by-4.0 (from the dataset card of owner/toy)" in out.stdout
    port = _closed_port()  # the hub is gone: the probe fails fast and the cached copy is used
    out, took = _hub_run(tmp_path, {"HF_ENDPOINT": f"http://127.0.0.1:{port}"}, "gsm8k", "--from", "owner/toy",
                         "--subset", "main", "--name", "cached")
    assert out.returncode == 0, out.stderr
    assert imported(tmp_path / "data", "gsm8k", "cached") == rows
    assert sidecar(tmp_path / "data", "gsm8k", "cached")["source"]["offline"].startswith("no network: cannot reach")
    assert took < 30, took


def test_hub_name_offline_says_so_in_one_line_quickly(tmp_path):
    out, took = _hub_run(tmp_path, {"HF_HUB_OFFLINE": "1"})
    line = _one_line_error(out.returncode, out.stdout, out.stderr)
    assert "openai/gsm8k: not in the Hugging Face cache and HF_HUB_OFFLINE is set" in line
    assert took < 30, took


def test_hub_name_without_network_fails_fast_not_after_retries(tmp_path):
    port = _closed_port()
    out, took = _hub_run(tmp_path, {"HF_ENDPOINT": f"http://127.0.0.1:{port}"})
    line = _one_line_error(out.returncode, out.stdout, out.stderr)
    assert f"no network: cannot reach 127.0.0.1:{port}" in line
    assert took < 30, took  # datasets' own retries take ~25 s before failing


SHARED_GSM8K_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "gsm8k" / "train.jsonl"


@pytest.mark.skipif(not SHARED_GSM8K_TRAIN.is_file(), reason="needs ../shared/datasets/gsm8k/train.jsonl beside the repo")
def test_made_ids_and_sampling_reproduce_the_shared_gsm8k_train_cut(tmp_path, capsys):
    """The shared cut is 2,000 of GSM8K's 7,473 train rows (random.Random(0).sample, source order kept,
    ids gsm8k-train-NNNNN): a 7,473-row train.jsonl imported with --limit 2000 --seed 0 keeps the same ids."""
    src = write_jsonl(tmp_path / "train.jsonl", [{"question": f"Q{i}", "answer": f"#### {i}"} for i in range(7473)])
    rc, _, err = imp(capsys, tmp_path / "data", "gsm8k", "--from", str(src), "--split", "train", "--limit", "2000")
    assert rc == 0, err
    shared = [json.loads(line)["id"] for line in SHARED_GSM8K_TRAIN.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in imported(tmp_path / "data", "gsm8k", "train", "train")] == shared


SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def _public_form(task: str, split: str, r: dict) -> dict:
    """A shared row (our schema) written back in its task's public format, as the source files have it."""
    labels, texts = (r["choices"]["label"], r["choices"]["text"]) if isinstance(r.get("choices"), dict) else ((), ())
    if task == "gsm8k":
        return {"question": r["question"], "answer": r["solution"]}
    if task == "math" and split == "test":  # MATH-500 on the hub
        return {"problem": r["question"], "solution": r["solution"], "answer": r["gold_answer"], "subject": r["type"],
                "level": r["level"], "unique_id": r["id"]}
    if task == "math":  # the original MATH files
        return {"problem": r["question"], "solution": r["solution"], "level": f"Level {r['level']}", "type": r["type"],
                "unique_id": r["id"]}
    if task == "arc_challenge":
        return {"id": r["id"], "question": r["question"], "choices": {"text": texts, "label": labels},
                "answerKey": r["gold_answer"]}
    if task == "commonsense_qa":  # the official JSONL
        return {"answerKey": r["gold_answer"], "id": r["id"],
                "question": {"question_concept": r["question_concept"], "stem": r["question"],
                             "choices": [{"label": lab, "text": t} for lab, t in zip(labels, texts)]}}
    if task == "strategy_qa":
        return {"qid": r["id"], "term": r["term"], "description": "", "question": r["question"],
                "answer": r["gold_answer"] == "Yes", "facts": r["facts"], "decomposition": r["decomposition"]}
    if task == "anli":  # the official anli_v1.0 files
        return {"uid": r["id"], "context": r["premise"], "hypothesis": r["hypothesis"], "label": r["gold_answer"][0],
                "reason": r["reason"] or ""}
    assert task == "date"
    return {"input": r["question"] + "\nOptions:\n" + "\n".join(f"({lab}) {t}" for lab, t in zip(labels, texts)),
            "target": f"({r['gold_answer']})"}


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/datasets (real rows in our schema) beside the repo")
@pytest.mark.parametrize("task,split", [("gsm8k", "test"), ("math", "test"), ("math", "train"), ("arc_challenge", "test"),
                                        ("commonsense_qa", "test"), ("strategy_qa", "test"), ("anli", "test"),
                                        ("date", "test"), ("table_mwp", "test")])
def test_real_rows_in_their_public_format_convert_back_to_the_shared_rows(tmp_path, capsys, task, split):
    """Every real row of ../shared/datasets, written back in its public format (TabMWP as problems_test1k.json,
    BBH as {"examples": [...]}), imports to the same row: ids, question, choices, gold (the last nested
    \\boxed{} of 2,500 MATH solutions), kept fields. The two deliberate differences: a GSM8K solution loses its
    <<a*b=c>> notes, and a MATH gold loses surrounding spaces."""
    import re

    shared = [json.loads(line) for line in (SHARED / task / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
    if task == "table_mwp":
        src = tmp_path / "problems_test1k.json"
        src.write_text(json.dumps({r["id"].removeprefix("tabmwp-"): {**{k: v for k, v in r.items() if k != "id"},
                                                                     "answer": r["gold_answer"]} for r in shared}))
    elif task == "date":
        src = tmp_path / "date_understanding.json"
        src.write_text(json.dumps({"examples": [_public_form(task, split, r) for r in shared]}))
    else:
        src = write_jsonl(tmp_path / f"{split}.jsonl", [_public_form(task, split, r) for r in shared])
    rc, out, err = imp(capsys, tmp_path / "data", task, "--from", str(src), "--split", split, "--name", "rt")
    assert rc == 0 and f"wrote {len(shared)} rows" in out, err
    got = imported(tmp_path / "data", task, "rt", split)
    for want, row in zip(shared, got, strict=True):
        want = {k: v for k, v in want.items() if k not in ("source_split", "round")}
        if task == "gsm8k":
            want["solution"] = re.sub(r"<<[^<>\n]*>>", "", want["solution"])
        if task == "math":
            want["gold_answer"] = want["gold_answer"].strip()
        assert {k: row.get(k) for k in want} == want
