"""Multi-turn ``messages`` rows: the loss on assistant turns only, rendered with each student's own
chat template (three tiny tokenizers with different templates and segmentations), whole-turn
truncation, peer offsets that index the same assistant text for both students, reading the rows
(the repair pairs of ``distill augment``), and one real training run mixing them with single-turn paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from distill.data.jsonl import DataError
from distill.errors import ConfigError
from distill.losses import IGNORE_INDEX
from distill.students.messages import encode_messages, messages_texts, render
from distill.students.tokenizer import load_tokenizer

SYSTEM = {"role": "system", "content": "You write programs. Think step by step."}


def _row(n_exchanges: int = 2) -> list[dict[str, str]]:
    msgs = [dict(SYSTEM)]
    for i in range(n_exchanges):
        msgs.append({"role": "user", "content": f"Question {i}: Ann has {i + 3} apples and buys {i + 4} more?"})
        msgs.append({"role": "assistant", "content": f"Ann starts with {i + 3}. {i + 3} + {i + 4} = {2 * i + 7}. "
                                                     f"The answer is \\boxed{{{2 * i + 7}}}."})
    return msgs


def _runs(enc) -> list[tuple[bool, list[int]]]:
    """The token stream cut into maximal runs of labelled / unlabelled tokens."""
    runs: list[tuple[bool, list[int]]] = []
    for tid, lab in zip(enc["input_ids"], enc["labels"]):
        on = lab != IGNORE_INDEX
        if on:
            assert lab == tid, "a labelled position must predict its own token"
        if runs and runs[-1][0] == on:
            runs[-1][1].append(tid)
        else:
            runs.append((on, [tid]))
    return runs


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_qwen2", "tiny_gpt2"])
def test_every_assistant_token_and_nothing_else_is_labelled(request, fixture):
    tok = load_tokenizer(request.getfixturevalue(fixture))
    msgs = _row(2)
    enc = encode_messages(tok, msgs, max_len=4096)
    assert enc["truncation"] == "none" and enc["turns_dropped"] == 0
    # the token stream is the student's own template rendering of the whole conversation
    assert tok.decode(enc["input_ids"]) == render(tok, msgs)
    runs = _runs(enc)
    labelled = [tok.decode(ids) for on, ids in runs if on]
    context = "".join(tok.decode(ids) for on, ids in runs if not on)
    contents = [m["content"] for m in msgs if m["role"] == "assistant"]
    assert len(labelled) == len(contents)  # one labelled run per assistant turn, context between them
    for text, content in zip(labelled, contents):
        # the whole content and the EOS that ends the turn; gpt2's "Assistant:" header leaves the space
        assert text.lstrip(" ") == content + tok.eos_token, (fixture, text)
    for m in msgs:  # system and user text only ever as context; assistant text never as context
        assert (m["content"] in context) == (m["role"] != "assistant"), (fixture, m["role"])
    assert enc["completion_len"] == sum(len(ids) for on, ids in runs if on)


def test_the_two_templates_really_differ(tiny_llama, tiny_qwen2):
    """Precondition of the tests above: different headers, so label positions differ per student."""
    a, b = (encode_messages(load_tokenizer(p), _row(2), 4096) for p in (tiny_llama, tiny_qwen2))
    first = [next(i for i, l in enumerate(e["labels"]) if l != IGNORE_INDEX) for e in (a, b)]
    assert first[0] != first[1]


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_qwen2"])
def test_truncation_drops_oldest_whole_exchanges_and_keeps_the_system_turn(request, fixture):
    tok = load_tokenizer(request.getfixturevalue(fixture))
    msgs = _row(3)
    full = encode_messages(tok, msgs, 4096)
    last_two = encode_messages(tok, [msgs[0]] + msgs[3:], 4096)
    last_one = encode_messages(tok, [msgs[0]] + msgs[5:], 4096)
    n = len(full["input_ids"])
    assert len(last_one["input_ids"]) < len(last_two["input_ids"]) < n

    cut = encode_messages(tok, msgs, n - 1)  # one token short: the oldest exchange goes, whole
    assert cut["truncation"] == "turns" and cut["turns_dropped"] == 2
    assert cut["input_ids"] == last_two["input_ids"] and cut["labels"] == last_two["labels"]
    assert cut["completion_len"] == full["completion_len"]  # the row's size before any cut
    text = tok.decode(cut["input_ids"])
    assert text.startswith(tok.decode(full["input_ids"][:3])) and SYSTEM["content"] in text
    assert msgs[1]["content"] not in text and msgs[2]["content"] not in text
    labelled = [tok.decode(ids) for on, ids in _runs(cut) if on]
    assert [t.lstrip(" ") for t in labelled] == [m["content"] + tok.eos_token for m in msgs[3:] if m["role"] == "assistant"]

    between = encode_messages(tok, msgs, len(last_two["input_ids"]) - 1)
    assert between["input_ids"] == last_one["input_ids"] and between["turns_dropped"] == 4

    # not even the system turn and the last exchange fit: dropped for this student, never a cut turn
    small = len(last_one["input_ids"]) - 1
    d = encode_messages(tok, msgs, small)
    assert d["truncation"] == "dropped" and len(d["input_ids"]) == small
    assert all(l == IGNORE_INDEX for l in d["labels"])


def test_dataset_counts_cut_and_dropped_rows_per_student(tiny_llama, tiny_qwen2):
    from distill.students.data import PathDataset

    tok1, tok2 = load_tokenizer(tiny_llama), load_tokenizer(tiny_qwen2)
    msgs = _row(3)
    q, r = messages_texts(msgs)
    ex = [{"id": "m", "path_idx": 0, "style": "messages", "correct": True, "question_text": q, "response": r,
           "messages": msgs},
          {"id": "s", "path_idx": 0, "style": "cot", "correct": True, "question_text": "Ann has 3 apples?",
           "response": "3 + 4 = 7. The answer is \\boxed{7}."}]
    n1 = len(encode_messages(tok1, msgs, 4096)["input_ids"])
    ds = PathDataset(ex, {"s1": tok1, "s2": tok2}, {"s1": n1 - 1, "s2": 4096})
    report = ds.truncation_report()
    assert report["turns_cut"] == {"s1": {"messages": 1}, "s2": {}}
    assert ds.usable == {"s1": [True, True], "s2": [True, True]}
    batch = ds.collate([0, 1])  # a messages row and a single-turn row in one batch
    for key in ("s1", "s2"):
        assert batch[key]["labels"].shape == batch[key]["input_ids"].shape
        assert (batch[key]["labels"][0] != IGNORE_INDEX).sum() == sum(
            l != IGNORE_INDEX for l in ds.encoded[key][0]["labels"])


def test_peer_offsets_index_the_same_assistant_text_for_both_students(tiny_llama, tiny_qwen2):
    from distill.peer.align import aligned_positions

    msgs = _row(2)
    _, shared = messages_texts(msgs)
    encs = {}
    for key, path in (("s1", tiny_llama), ("s2", tiny_qwen2)):
        tok = load_tokenizer(path)
        enc = encode_messages(tok, msgs, 4096)
        spans = [tuple(o) for o, l in zip(enc["offsets"], enc["labels"]) if l != IGNORE_INDEX]
        # the non-empty spans of labelled tokens tile the assistant contents exactly, in order
        assert "".join(shared[a:b] for a, b in spans if b > a) == shared.replace("\n", "")
        assert all(o == (-1, -1) for o, l in zip(enc["offsets"], enc["labels"]) if l == IGNORE_INDEX)
        encs[key] = (tok, enc)

    # a whole-turn cut on student 1 only: its remaining tokens keep their places in the shared text
    tok1 = encs["s1"][0]
    cut = encode_messages(tok1, msgs, len(encs["s1"][1]["input_ids"]) - 1)
    assert cut["truncation"] == "turns"
    for enc1 in (encs["s1"][1], cut):
        enc2 = encs["s2"][1]
        lab = [torch.tensor([e["labels"]]) for e in (enc1, enc2)]
        off = [torch.tensor([e["offsets"]]) for e in (enc1, enc2)]
        (p1, p2), = aligned_positions(lab[0], off[0], lab[1], off[1], "end")
        assert len(p1) >= 10
        for a, b in zip(p1, p2):  # paired tokens end on the same character of the same text
            assert enc1["offsets"][a][1] == enc2["offsets"][b][1]
            s1, e1 = enc1["offsets"][a]
            s2, e2 = enc2["offsets"][b]
            assert shared[max(s1, s2):e1] in (shared[s1:e1], shared[s2:e2])
    # after the cut only the second answer's characters can pair
    lab = [torch.tensor([e["labels"]]) for e in (cut, encs["s2"][1])]
    off = [torch.tensor([e["offsets"]]) for e in (cut, encs["s2"][1])]
    (p1, _), = aligned_positions(lab[0], off[0], lab[1], off[1], "end")
    second = shared.index(msgs[4]["content"])
    assert p1 and all(cut["offsets"][a][0] >= second for a in p1)


def test_fallback_render_for_a_tokenizer_without_template(tiny_llama):
    from distill.students.data import chat_prompt

    tok = load_tokenizer(tiny_llama)
    tok.chat_template = None
    msgs = [{"role": "user", "content": "Ann has 3 apples?"}, {"role": "assistant", "content": "The answer is 3."}]
    enc = encode_messages(tok, msgs, 4096)
    p = next(i for i, l in enumerate(enc["labels"]) if l != IGNORE_INDEX)
    assert tok.decode(enc["input_ids"][:p]) == chat_prompt(tok, msgs[0]["content"])  # same prompt as single-turn
    assert tok.decode(enc["input_ids"][p:]).startswith("The answer is 3." + tok.eos_token)


def test_a_template_that_is_not_prefix_stable_is_one_line_error(tiny_qwen2):
    tok = load_tokenizer(tiny_qwen2)
    # a template that numbers the turns from the end: earlier prefixes render differently
    tok.chat_template = ("{% for m in messages %}[{{ messages|length - loop.index }}]{{ m['content'] }}{% endfor %}"
                         "{% if add_generation_prompt %}>{% endif %}")
    with pytest.raises(ConfigError, match="prefix") as info:
        encode_messages(tok, _row(1), 4096)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------------- reading rows
def _repair_rows(n: int) -> list[dict]:
    """Rows exactly as ``distill augment`` writes repair pairs (its own message builder)."""
    from distill.verify.formal.augment import repair_messages

    rows = []
    for i in range(n):
        broken, fixed = f"(declare-const x Int)\n(assert (= x {i})", f"(declare-const x Int)\n(assert (= x {i}))\n(check-sat)"
        err = "line 2 column 17: invalid expression, unexpected end of file"
        rows.append({"id": f"p{i}/0/drop_paren", "question": f"Find x equal to {i}.", "broken": broken, "error": err,
                     "gold_answer": fixed, "operator": "drop_paren",
                     "messages": repair_messages("smt", f"Find x equal to {i}.", broken, err, fixed)})
    return rows


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _data_cfg(**kw):
    from distill.train.sections import DataConfig

    return DataConfig(**kw)


def test_repair_pairs_file_is_read_as_messages_examples(tmp_path):
    from distill.students.paths import load_train_paths

    f = _write(tmp_path / "repair.jsonl", _repair_rows(3))
    ex = load_train_paths(_data_cfg(task="smt", train_file=str(f)))
    assert [e["id"] for e in ex] == ["p0/0/drop_paren", "p1/0/drop_paren", "p2/0/drop_paren"]
    rows = _repair_rows(3)
    for e, row in zip(ex, rows):
        assert e["messages"] == row["messages"] and e["style"] == "messages" and e["correct"] is True
        assert e["response"] == row["messages"][-1]["content"]  # what the router embeds: the assistant text
        assert row["broken"] in e["question_text"] and row["error"] in e["question_text"]


def test_bad_messages_rows_name_file_and_line(tmp_path):
    from distill.students.paths import load_train_paths

    good = _repair_rows(1)[0]
    cases = [({**good, "messages": [{"role": "user", "content": "hi"}]}, "no assistant turn"),
             ({**good, "messages": [{"role": "tool", "content": "x"}]}, r"messages'\[0\] must be"),
             ({**good, "messages": good["messages"] + [{"role": "user", "content": "more?"}]}, "last turn must be"),
             ({**good, "responses": ["x"]}, "not both"),
             ({k: v for k, v in good.items() if k != "messages"}, "missing required field 'messages'")]
    for row, msg in cases:
        f = _write(tmp_path / "bad.jsonl", [_repair_rows(2)[1], row])
        with pytest.raises(DataError, match=msg) as info:
            load_train_paths(_data_cfg(task="smt", train_file=str(f)))
        assert str(info.value).startswith(f"{f}:2:"), str(info.value)


# ------------------------------------------------------------------------------- a real training run
@pytest.fixture
def run_train():
    from accelerate.state import AcceleratorState, GradientState

    from distill.train.engine import train

    yield train
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def test_training_mixes_messages_and_single_turn_rows_with_peer(tmp_path, tiny_llama, tiny_qwen2, tiny_train_data,
                                                                 run_train):
    from distill.train.config import parse_train_args

    chats = [{"id": f"c{i}", "messages": _row(2)} for i in range(4)]
    chat_file = _write(tmp_path / "chat.jsonl", chats)
    correct = Path(tiny_train_data) / "arith" / "train" / "train.correct.jsonl"
    cfg = parse_train_args(["--task", "arith", "--data_root", str(tiny_train_data), "--train_file",
                            f"{correct},{chat_file}", "--outdir", str(tmp_path / "run"), "--model1", str(tiny_llama),
                            "--model2", str(tiny_qwen2), "--routing", "all", "--peer", "auto", "--bs", "4",
                            "--max_steps", "5", "--lora_r", "4", "--warmup_ratio", "0", "--eval_at_end", "false",
                            "--max_len", "512"])
    summary = run_train(cfg)
    assert summary["paths"] == 16 + 4 and summary["steps"] == 5  # one epoch: every row trains once
    rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if l.strip()]
    assert rows and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    assert sum(r.get("peer_pairs", 0) for r in rows) > 0


def test_messages_rows_inside_a_correct_file_and_several_train_files(tmp_path, tiny_train_data):
    from distill.students.paths import load_train_paths

    correct = Path(tiny_train_data) / "arith" / "train" / "train.correct.jsonl"
    mixed = tmp_path / "arith" / "train"
    mixed.mkdir(parents=True)
    rows = [json.loads(l) for l in correct.read_text().splitlines()][:2] + [{"id": "chat1", "messages": _row(1)}]
    _write(mixed / "train.correct.jsonl", rows)
    (mixed / "train.jsonl").write_text((correct.parent / "train.jsonl").read_text())  # the questions
    ex = load_train_paths(_data_cfg(task="arith", data_root=str(tmp_path)))
    assert [e["id"] for e in ex] == ["q0", "q0", "q1", "q1", "chat1"]
    assert ex[-1]["messages"] == _row(1) and all("messages" not in e for e in ex[:-1])
    chat = _write(tmp_path / "chat.jsonl", [{"id": "c", "messages": _row(2)}])
    both = load_train_paths(_data_cfg(task="arith", train_file=f"{correct}, {chat}"))
    assert len(both) == 16 + 1 and both[-1]["id"] == "c"
    with pytest.raises(ConfigError, match="no such file"):
        load_train_paths(_data_cfg(task="arith", train_file=f"{correct},{tmp_path / 'missing.jsonl'}"))
