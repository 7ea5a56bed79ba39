"""Bad input: one line naming FILE:LINE: field, exit 2, and no file created or changed (issue 12, items 9, 10, 21).

Every case runs the real command in its own process (``distill prompt --backend scripted``,
``distill regen-correct``, ``distill train``) on files the test writes, beside a *good* input file
that sorts first, so a command that writes file by file would already have touched it. ``prompt`` and
``regen-correct`` get the same bad lines (as a source row and as an enriched row): they validate
through the one row validator, :func:`distill.data.jsonl.validate_row`.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill.data.jsonl import DataError, read_rows
from distill.data.tasks import TASKS, TaskSpec, get_task
from distill.train.config import TrainConfig

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "datasets"

ARITH = [
    {"id": "q0", "question": "Dan has 7 stickers. Dan gets 3 more stickers. After that he loses 4 stickers. Next he "
                             "sells 3 stickers. How many stickers does Dan have now?", "gold_answer": "3"},
    {"id": "q1", "question": "Lena has 3 marbles. Lena buys 5 more marbles. Then she doubles the marbles. After that "
                             "she finds 3 more marbles. How many marbles does Lena have now?", "gold_answer": "19"},
]
CSQA = [
    {"id": "c0", "question": "Where would you keep money safe?",
     "choices": {"label": ["A", "B", "C"], "text": ["bank", "river", "oven"]}, "gold_answer": "A"},
    {"id": "c1", "question": "What do you read?",
     "choices": {"label": ["A", "B", "C"], "text": ["a book", "a shoe", "a spoon"]}, "gold_answer": "A"},
]
SQA = [{"id": "s0", "question": "Is water wet?", "gold_answer": "Yes"},
       {"id": "s1", "question": "Is fire cold?", "gold_answer": "No"}]
ANLI = [{"id": "n0", "premise": "A dog runs.", "hypothesis": "An animal moves.", "gold_answer": "entailment"},
        {"id": "n1", "premise": "A cat sleeps.", "hypothesis": "The cat is running.", "gold_answer": "contradiction"}]
GOOD = {"arith": ARITH, "commonsense_qa": CSQA, "strategy_qa": SQA, "anli": ANLI}
STYLES = ["cot", "plain"]


def enrich(row: dict) -> dict:
    """An enriched row (two paths) whose first path answers right."""
    if "choices" in row:
        right = f"The best answer is {row['gold_answer']}."
    elif row.get("gold_answer") in ("Yes", "No"):
        right = f"The answer is {row['gold_answer']}."
    elif "premise" in row:
        right = "The answer is True." if row["gold_answer"] == "entailment" else "The answer is False."
    else:
        right = f"So the answer is \\boxed{{{row['gold_answer']}}}."
    return {**row, "prompts": ["p0", "p1"], "styles": STYLES, "responses": [right, "I do not know."],
            "preds": ["N/A", "N/A"], "correct_flags": [False, False]}


def line(obj: dict) -> bytes:
    return (json.dumps(obj) + "\n").encode()


def _deep(row: dict, levels: int) -> bytes:
    return line({**row, "meta": "X"}).replace(b'"X"', b"[" * levels + b"]" * levels)


# (name, task, bad second line from the task's second good row, field named in the error)
CASES = [
    # item 9: tracebacks today
    ("non_utf8", "arith", lambda r: json.dumps({**r, "question": r["question"] + " caf\u00e9"},
                                               ensure_ascii=False).encode("latin-1") + b"\n", "question"),
    ("nested_5000", "arith", lambda r: _deep(r, 5000), "meta"),
    ("nested_200", "arith", lambda r: _deep(r, 200), "meta"),
    ("lone_surrogate", "arith", lambda r: line({**r, "question": "\ud800 " + r["question"]}), "question"),
    # item 10: accepted silently today
    ("gold_list", "arith", lambda r: line({**r, "gold_answer": [1, 2]}), "gold_answer"),
    ("gold_dict", "arith", lambda r: line({**r, "gold_answer": {"value": 19}}), "gold_answer"),
    ("gold_nan", "arith", lambda r: line({**r, "gold_answer": math.nan}), "gold_answer"),
    ("gold_bool", "arith", lambda r: line({**r, "gold_answer": True}), "gold_answer"),
    ("id_dict", "arith", lambda r: line({**r, "id": {"n": 1}}), "id"),
    ("id_duplicate", "arith", lambda r: line({**r, "id": "q0"}), "id"),
    ("question_number", "arith", lambda r: line({**r, "question": 42}), "question"),
    ("mcq_gold_not_a_label", "commonsense_qa", lambda r: line({**r, "gold_answer": "F"}), "gold_answer"),
    ("mcq_gold_text", "commonsense_qa", lambda r: line({**r, "gold_answer": "a book"}), "gold_answer"),
    ("mcq_empty_choices", "commonsense_qa", lambda r: line({**r, "choices": {"label": [], "text": []}}), "choices"),
    ("mcq_int_labels", "commonsense_qa", lambda r: line({**r, "choices": {"label": [1, 2, 3], "text": ["x", "y", "z"]},
                                                         "gold_answer": "1"}), "choices.label"),
    ("mcq_dict_text", "commonsense_qa", lambda r: line({**r, "choices": {"label": ["A", "B"], "text": [{}, "y"]}}),
     "choices.text"),
    ("yesno_gold_maybe", "strategy_qa", lambda r: line({**r, "gold_answer": "maybe"}), "gold_answer"),
    ("yesno_gold_list", "strategy_qa", lambda r: line({**r, "gold_answer": ["Yes"]}), "gold_answer"),
    ("nli_gold_int", "anli", lambda r: line({**r, "gold_answer": 0}), "gold_answer"),
]
IDS = [c[0] for c in CASES]


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file's bytes, except run locks (``.<stem>.lock``: the lock machinery's, not data or outputs)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


def distill(*args: str, cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "distill.commands", *args], cwd=cwd, capture_output=True,
                          timeout=timeout, env=env)


def assert_one_line(proc: subprocess.CompletedProcess, where: str, field: str) -> str:
    err = proc.stderr.decode("utf-8", "replace").strip()
    assert proc.returncode == 2, (proc.returncode, err[-2000:])
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err[-2000:]
    assert f"{where}: field {field!r}" in err, err
    return err


def write_case(folder: Path, task: str, make, *, enriched: bool) -> tuple[Path, Path]:
    """``a_good`` and ``b_bad`` files (source or enriched) in ``folder``; the bad one's line 2 is the case."""
    folder.mkdir(parents=True, exist_ok=True)
    good_rows, form = GOOD[task], (enrich if enriched else dict)
    suffix = ".enriched.jsonl" if enriched else ".jsonl"
    good = folder / f"a_good{suffix}"
    good.write_bytes(b"".join(line(form(r)) for r in good_rows))
    bad = folder / f"b_bad{suffix}"
    bad.write_bytes(line(form(good_rows[0])) + make(form(good_rows[1])))
    return good, bad


@pytest.mark.parametrize("name,task,make,field", CASES, ids=IDS)
def test_prompt_rejects_bad_source_line_before_anything_is_written(tmp_path, name, task, make, field):
    _, bad = write_case(tmp_path / "data" / task, task, make, enriched=False)
    before = snapshot(tmp_path)
    proc = distill("prompt", "--root", "data", "--dataset", task, "--backend", "scripted", "--model", "scripted",
                   "--n", "2", "--styles", "cot,plain", "--no-progress", "--summary-json", "summary.json",
                   cwd=tmp_path)
    assert_one_line(proc, f"data/{task}/{bad.name}:2", field)
    assert snapshot(tmp_path) == before  # no cache, enriched, correct or summary file, nothing changed


@pytest.mark.parametrize("name,task,make,field", CASES, ids=IDS)
def test_regen_correct_rejects_bad_enriched_line_and_touches_no_file(tmp_path, name, task, make, field):
    _, bad = write_case(tmp_path / "data" / task, task, make, enriched=True)
    before = snapshot(tmp_path)
    proc = distill("regen-correct", "--root", "data", "--dataset", task, "--workers", "1", cwd=tmp_path)
    assert_one_line(proc, f"data/{task}/{bad.name}:2", field)
    assert snapshot(tmp_path) == before  # the good file sorting first was not rewritten either


def test_regen_correct_single_input_names_the_field(tmp_path):
    """``--input`` takes the same validator (a nested duplicate id here)."""
    _, bad = write_case(tmp_path / "arith", "arith", lambda r: line({**r, "id": "q0"}), enriched=True)
    before = snapshot(tmp_path)
    proc = distill("regen-correct", "--input", str(bad), cwd=tmp_path)
    err = assert_one_line(proc, f"{bad}:2", "id")
    assert "duplicate id 'q0' (first on line 1)" in err
    assert snapshot(tmp_path) == before


def test_numeric_math_gold_is_accepted_as_its_canonical_string(tmp_path):
    """The choice made for math: a finite JSON number is a valid gold, stored as its canonical string
    (``19``, ``2.5``) in every output, so all stages compare text; NaN, lists and objects are not."""
    rows = [dict(ARITH[0], gold_answer=3), dict(ARITH[1], gold_answer=19.0)]
    src = tmp_path / "data" / "arith" / "test.jsonl"
    src.parent.mkdir(parents=True)
    src.write_bytes(b"".join(line(r) for r in rows))
    proc = distill("prompt", "--root", "data", "--dataset", "arith", "--backend", "scripted", "--model", "scripted",
                   "--n", "2", "--styles", "cot,plain", "--wrong-rate", "0", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    enriched = [json.loads(x) for x in src.with_name("test.enriched.jsonl").read_text().splitlines()]
    assert [r["gold_answer"] for r in enriched] == ["3", "19"]
    assert all(all(r["correct_flags"]) for r in enriched)
    p = tmp_path / "g.jsonl"
    p.write_text("".join(json.dumps({"id": str(i), "question": "q", "gold_answer": g}) + "\n"
                         for i, g in enumerate([2.50, 1e-05, 10**20, "7"])))
    assert [r["gold_answer"] for r in read_rows(p, "gsm8k")] == ["2.5", "0.00001", "100000000000000000000", "7"]


def test_closed_answer_golds_accept_what_the_verifiers_read(tmp_path):
    """Boolean StrategyQA golds, "(B)"-style and integer MCQ labels, and every NLI word stay valid."""
    from distill.data.tasks import GOLD_WORDS

    p = tmp_path / "s.jsonl"
    p.write_text("".join(json.dumps({"id": i, "question": "q", "gold_answer": g}) + "\n"
                         for i, g in enumerate([True, False, " yes ", "No"])))
    assert len(read_rows(p, "strategy_qa")) == 4
    p = tmp_path / "m.jsonl"
    p.write_text(json.dumps({"id": 1, "question": "q", "choices": {"label": ["1", "2"], "text": ["a", "b"]},
                             "gold_answer": 2}) + "\n"
                 + json.dumps({"id": 2, "question": "q", "choices": {"label": ["A", "B"], "text": ["a", "b"]},
                               "gold_answer": "(b)"}) + "\n")
    assert [r["gold_answer"] for r in read_rows(p, "arc_challenge")] == ["2", "(b)"]
    p = tmp_path / "n.jsonl"
    p.write_text("".join(json.dumps({"id": w, "premise": "p", "hypothesis": "h", "gold_answer": w}) + "\n"
                         for w in sorted(GOLD_WORDS["nli"])))
    assert len(read_rows(p, "anli")) == len(GOLD_WORDS["nli"])


def test_gold_vocabularies_match_the_verifiers():
    from distill.data.tasks import GOLD_WORDS
    from distill.verify.choice import NLI_WORDS, YESNO_WORDS

    assert GOLD_WORDS["yesno"] == set(YESNO_WORDS)
    assert GOLD_WORDS["nli"] == set(NLI_WORDS)


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs /work/shared/datasets (real benchmark rows)")
def test_every_real_dataset_row_still_validates():
    files = sorted(SHARED.glob("*/*.jsonl")) + sorted((REPO / "data").glob("*/*/*.jsonl"))
    n = 0
    for f in files:
        task = f.parent.name if f.parent.name in TASKS else f.parent.parent.name
        n += len(read_rows(f, task))
    assert n > 10000


# ------------------------------------------------------------------------------------ distill train
@pytest.mark.parametrize("text,where,field", [
    ("lr_s1: [1.0e-4, 2.0e-4]\n", "c.yaml:1", "lr_s1"),                         # float option: TypeError today
    ("epochs: 1\nlora_targets: [q_proj, v_proj]\n", "c.yaml:2", "lora_targets"),  # str option: accepted as a repr
    ("optim:\n  seed: 3\n  lr_s2:\n    - 1\n", "c.yaml:4", "optim.lr_s2"),       # inside a section
    ("is_quality: [true]\n", "c.yaml:1", "is_quality"),                         # bool option
])
def test_train_config_value_that_is_a_list_is_one_line(tmp_path, text, where, field):
    (tmp_path / "c.yaml").write_text(text)
    proc = distill("train", "--config", "c.yaml", "--task", "arith", "--model1", "m1", "--model2", "m2",
                   "--outdir", "out", cwd=tmp_path)
    assert_one_line(proc, where, field)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


@pytest.mark.parametrize("data,needle", [
    (b"epochs: 1\ntask: caf\xe9\n", "c.yaml:2: not valid UTF-8"),
    (b"epochs: " + b"[" * 3000 + b"]" * 3000 + b"\n", "c.yaml: invalid YAML (nested too deeply)"),
])
def test_train_config_that_is_not_utf8_or_too_deep_is_one_line(tmp_path, data, needle):
    (tmp_path / "c.yaml").write_bytes(data)
    proc = distill("train", "--config", "c.yaml", "--model1", "m1", "--model2", "m2", "--outdir", "out", cwd=tmp_path)
    err = proc.stderr.decode().strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1 and needle in err, err[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def _data_cfg(**kw):
    return TrainConfig.from_flat(model1="m", model2="m", **kw).data


def test_training_reads_rows_through_the_same_validator(tmp_path):
    """Training's reading of correct rows, source rows beside them and test rows: same checks, same lines."""
    from distill.students.paths import load_test_rows, load_train_paths

    train = tmp_path / "arith" / "train"
    train.mkdir(parents=True)
    (train / "train.jsonl").write_bytes(b"".join(line(r) for r in ARITH))
    cor = [{"id": r["id"], "gold_answer": r["gold_answer"], "styles": ["cot"], "path_idx": [0],
            "responses": [f"\\boxed{{{r['gold_answer']}}}"], "correct_flags": [True]} for r in ARITH]
    cases = [({**cor[1], "id": {"n": 1}}, "id"), ({**cor[1], "id": "q0"}, "id"),
             ({**cor[1], "gold_answer": [1, 9]}, "gold_answer"), ({**cor[1], "gold_answer": math.nan}, "gold_answer"),
             ({**cor[1], "path_idx": [{"i": 0}]}, "path_idx'[0"), ({**cor[1], "styles": "cot"}, "styles"),
             ({**cor[1], "responses": "\\boxed{19}"}, "responses")]
    for bad, field in cases:
        (train / "train.correct.jsonl").write_bytes(line(cor[0]) + line(bad))
        with pytest.raises(DataError) as exc:
            load_train_paths(_data_cfg(task="arith", data_root=str(tmp_path)))
        assert str(exc.value).startswith(f"{train / 'train.correct.jsonl'}:2: field '{field}"), str(exc.value)
    (train / "train.correct.jsonl").write_bytes(b"".join(line(r) for r in cor))
    (train / "train.jsonl").write_bytes(line(ARITH[0]) + _deep(ARITH[1], 300))  # a bad source row beside them
    with pytest.raises(DataError, match=r"train\.jsonl:2: field 'meta': JSON nested"):
        load_train_paths(_data_cfg(task="arith", data_root=str(tmp_path)))
    test = tmp_path / "t.jsonl"
    test.write_bytes(line(ARITH[0]) + line({**ARITH[1], "question": "\ud800"}))
    with pytest.raises(DataError, match=r"t\.jsonl:2: field 'question': contains a lone surrogate"):
        load_test_rows(_data_cfg(task="arith", test_file=str(test)))


# ------------------------------------------------------------------------------------ item 21
def test_correct_rows_that_carry_their_question_train_without_a_source_file(tmp_path):
    """Research-format files: correct/judged rows with their own question fields and no ``*.jsonl``
    beside them. Rows without question fields still join their source; with neither, one line."""
    from distill.students.paths import load_train_paths

    train = tmp_path / "arith" / "train"
    train.mkdir(parents=True)
    rows = [{**r, "styles": ["cot", "plain"], "path_idx": [0, 3], "correct_flags": [True, True],
             "responses": [f"Step by step ... \\boxed{{{r['gold_answer']}}}", f"\\boxed{{{r['gold_answer']}}}"]}
            for r in ARITH]
    (train / "train.correct.jsonl").write_bytes(b"".join(line(r) for r in rows))
    paths = load_train_paths(_data_cfg(task="arith", data_root=str(tmp_path)))
    assert [(p["id"], p["path_idx"]) for p in paths] == [("q0", 0), ("q0", 3), ("q1", 0), ("q1", 3)]
    assert ARITH[1]["question"] in paths[2]["question_text"] and "\\boxed{}" in paths[2]["question_text"]
    # judged, multiple choice: the options are part of the student's prompt
    mcq = tmp_path / "commonsense_qa" / "train"
    mcq.mkdir(parents=True)
    (mcq / "dev.judged.jsonl").write_bytes(b"".join(
        line({**r, "styles": ["cot"], "responses": [f"The best answer is {r['gold_answer']}."]}) for r in CSQA))
    paths = load_train_paths(_data_cfg(task="commonsense_qa", data_root=str(tmp_path), judged_only=True))
    assert len(paths) == 2 and "(A) bank" in paths[0]["question_text"]
    # a row with neither its question nor a source row: one line that says both
    (train / "train.correct.jsonl").write_bytes(line(rows[0]) + line({"id": "q9", "responses": ["\\boxed{1}"]}))
    with pytest.raises(DataError) as exc:
        load_train_paths(_data_cfg(task="arith", data_root=str(tmp_path)))
    msg = str(exc.value)
    assert msg.startswith(f"{train / 'train.correct.jsonl'}:2:") and "has no source row" in msg
    assert "own question fields (question)" in msg


def test_mcq_research_row_without_choices_still_needs_its_source(tmp_path):
    """A row with ``question`` but no ``choices`` is not self-contained for an mcq task: joined from the source."""
    from distill.students.paths import load_train_paths

    train = tmp_path / "commonsense_qa" / "train"
    train.mkdir(parents=True)
    (train / "dev.jsonl").write_bytes(b"".join(line(r) for r in CSQA))
    (train / "dev.correct.jsonl").write_bytes(b"".join(
        line({"id": r["id"], "question": r["question"], "gold_answer": "A", "responses": ["The best answer is A."],
              "correct_flags": [True]}) for r in CSQA))
    paths = load_train_paths(_data_cfg(task="commonsense_qa", data_root=str(tmp_path)))
    assert "(A) bank" in paths[0]["question_text"]


def test_task_spec_question_fields():
    from distill.data.tasks import question_fields

    assert question_fields(get_task("table_mwp")) == ("question", "table")
    assert question_fields(get_task("anli")) == ("premise", "hypothesis")
    assert question_fields(TaskSpec("x", "mcq", ("id", "question", "choices", "gold_answer"))) == ("question", "choices")


@pytest.mark.slow
def test_distill_train_runs_on_research_format_correct_rows_alone(tmp_path, tiny_llama, tiny_gpt2):
    """The real command (about 30 s on 2 cores): a train folder holding only a research-format
    ``*.correct.jsonl`` (question fields in each row, no source file) trains; today it stopped with
    "has no source row"."""
    train = tmp_path / "data" / "arith" / "train"
    train.mkdir(parents=True)
    rows = [{**r, "styles": ["cot"], "path_idx": [0], "correct_flags": [True],
             "responses": [f"Step by step. The answer is \\boxed{{{r['gold_answer']}}}."]} for r in ARITH]
    (train / "train.correct.jsonl").write_bytes(b"".join(line(r) for r in rows))
    assert sorted(p.name for p in train.iterdir()) == ["train.correct.jsonl"]
    proc = distill("train", "--task", "arith", "--model1", str(tiny_llama), "--model2", str(tiny_gpt2),
                   "--data_root", "data", "--outdir", "out", "--epochs", "1", "--bs", "2", "--routing", "all",
                   "--peer", "none", "--eval_at_end", "false", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    summary = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    assert summary["paths"] == 2 and summary["steps"] == 1
    assert (tmp_path / "out" / "student1").is_dir() and (tmp_path / "out" / "student2").is_dir()
