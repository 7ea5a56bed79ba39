"""Per-student tokenisation, label masks, offsets, batching and data loading."""

from __future__ import annotations

import json

import pytest
import torch

from distill.errors import ConfigError
from distill.losses import IGNORE_INDEX, masked_mean, per_example_nll
from distill.students.data import PathDataset, chat_prompt, encode_path, epoch_batches
from distill.students.paths import load_train_paths
from distill.students.tokenizer import load_tokenizer
from distill.train.config import TrainConfig

Q = "Ann has 3 apples and buys 4 more. How many apples?"
R = "Ann starts with 3. 3 + 4 = 7. The answer is \\boxed{7}."


def test_labels_masked_by_each_tokenizers_own_prompt_length(tiny_llama, tiny_qwen2):
    prompt_lens = []
    for path in (tiny_llama, tiny_qwen2):
        tok = load_tokenizer(path)
        enc = encode_path(tok, Q, R, max_len=512)
        p = len(tok(chat_prompt(tok, Q), add_special_tokens=False)["input_ids"])
        prompt_lens.append(p)
        ids, labels, offs = enc["input_ids"], enc["labels"], enc["offsets"]
        assert labels[:p] == [IGNORE_INDEX] * p
        assert labels[p:] == ids[p:]  # every completion token is learned, nothing else
        assert ids[-1] == tok.eos_token_id and labels[-1] == tok.eos_token_id
        assert tok.decode(ids[p:-1]) == R
        assert "".join(R[a:b] for a, b in offs[p:-1]) == R  # offsets index the response text
        assert all(o == (-1, -1) for o in offs[:p]) and offs[-1] == (len(R), len(R))
    assert prompt_lens[0] != prompt_lens[1], "the two tiny tokenizers/templates should differ"


def test_right_truncation_cuts_the_prompt_first_and_keeps_answer_and_eos(tiny_llama):
    """Hugging Face's default right truncation would cut the final answer and EOS off a long path."""
    right = load_tokenizer(tiny_llama)
    full = encode_path(right, Q, R, max_len=512)
    n = len(full["input_ids"])
    p = sum(1 for l in full["labels"] if l == IGNORE_INDEX)
    c = n - p
    assert full["truncation"] == "none" and full["completion_len"] == c
    assert full["input_ids"][0] == right.bos_token_id, "precondition: the llama template starts with BOS"
    cut = n - 5
    r = encode_path(right, Q, R, max_len=cut)
    assert len(r["input_ids"]) == cut and r["truncation"] == "prompt"
    assert r["input_ids"][-c:] == full["input_ids"][-c:] and r["labels"][-c:] == full["labels"][-c:]
    assert r["labels"][-1] == right.eos_token_id and right.decode(r["input_ids"][-c:-1]) == R
    assert r["offsets"][-c:] == full["offsets"][-c:]
    # BOS stays, then the prompt's *end* (question tail and template header): its start went
    assert r["input_ids"][0] == right.bos_token_id
    assert r["input_ids"][1:cut - c] == full["input_ids"][p - (cut - c - 1):p]
    assert sum(l == IGNORE_INDEX for l in r["labels"]) == cut - c
    # the completion itself cannot fit beside BOS: dropped for this student, never a cut answer
    long_r = " ".join([R] * 3)
    c_long = encode_path(right, Q, long_r, max_len=4096)["completion_len"]
    prompt = full["input_ids"][:p]
    for width in (p - 2, c_long):  # the prompt itself cut to fit, or kept whole beside no completion
        d = encode_path(right, Q, long_r, max_len=width)
        assert d["truncation"] == "dropped" and d["completion_len"] == c_long
        assert all(l == IGNORE_INDEX for l in d["labels"])
        assert d["input_ids"] == (prompt if p <= width else prompt[:1] + prompt[p - (width - 1):])


def test_left_window_keeps_the_end_as_the_routing_probe_needs(tiny_llama):
    """An explicit left-truncating window (the probe's student 1) keeps the last tokens: the prompt
    goes first, then the completion's start; answer and EOS always stay and nothing is dropped."""
    right = load_tokenizer(tiny_llama)
    left = load_tokenizer(tiny_llama, truncation_side="left")
    full = encode_path(right, Q, R, max_len=512)
    p = sum(1 for l in full["labels"] if l == IGNORE_INDEX)
    c = len(full["input_ids"]) - p
    l = encode_path(left, Q, R, max_len=p)  # keeps the end: some prompt dropped, all completion kept
    assert l["input_ids"] == full["input_ids"][-p:] and l["truncation"] == "prompt"
    assert l["labels"] == full["labels"][-p:] and l["labels"][-1] == left.eos_token_id
    n_prompt_left = sum(x == IGNORE_INDEX for x in l["labels"])
    assert n_prompt_left == p - (len(full["input_ids"]) - p)
    w = encode_path(left, Q, R, max_len=c - 4)  # shorter than the completion: its start is cut
    assert w["truncation"] == "window" and w["input_ids"] == full["input_ids"][-(c - 4):]
    assert all(x != IGNORE_INDEX for x in w["labels"]) and w["labels"][-1] == left.eos_token_id


def test_paths_that_cannot_fit_are_dropped_for_one_student_and_counted(tiny_llama, tiny_qwen2):
    """A path too long for student 1 stays in the data for student 2, masked out for student 1, and
    the drops are counted per student and per style for the training summary."""
    toks = {"s1": load_tokenizer(tiny_llama), "s2": load_tokenizer(tiny_qwen2)}
    long_r = " ".join([R] * 6)
    exs = [{"id": f"q{i}", "path_idx": i, "style": st, "correct": True, "question_text": Q, "response": r}
           for i, (st, r) in enumerate([("cot", R), ("tot", long_r), ("tot", long_r), ("fwd_bwd", R)])]
    short_len = len(encode_path(toks["s1"], Q, R, 1024)["input_ids"])
    long_c = encode_path(toks["s1"], Q, long_r, 1024)["completion_len"]
    assert short_len < long_c, "precondition: a window exists that fits the short paths but not the long"
    ds = PathDataset(exs, toks, {"s1": long_c - 1, "s2": 1024})
    assert ds.dropped == {"s1": {"tot": 2}, "s2": {}}
    assert ds.usable == {"s1": [True, False, False, True], "s2": [True] * 4}
    assert ds.fully_truncated() == {"s1": 2, "s2": 0}
    report = ds.truncation_report()
    assert report["dropped"] == ds.dropped and report["window_cut"] == {"s1": {}, "s2": {}}
    batch = ds.collate([0, 1, 2, 3])
    assert batch["s1"]["usable"].tolist() == [True, False, False, True] and batch["s2"]["usable"].all()
    assert (batch["s1"]["labels"][1] == IGNORE_INDEX).all()  # no loss for the student that cannot learn it
    for key, tok in toks.items():
        lab = batch[key]["labels"]
        for j in range(4):
            if ds.usable[key][j]:  # every learned path ends on its EOS
                last = int((lab[j] != IGNORE_INDEX).nonzero().max())
                assert lab[j, last] == tok.eos_token_id
    lengths = ds.completion_lengths()
    assert len(lengths["s1"]) == 2 and len(lengths["s2"]) == 4 and max(lengths["s2"]) > max(lengths["s1"])


def test_chat_prompt_pins_the_date_a_template_inserts(tiny_qwen2, monkeypatch):
    """Llama-3-style templates insert today's date; training and evaluation prompts must match."""
    import datetime

    from transformers.utils import chat_template_utils as ctu

    tok = load_tokenizer(tiny_qwen2)
    msgs = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    templates = {
        "strftime_now": "Today: {{ strftime_now('%d %b %Y') }}\n" + msgs,
        "llama3": ("{%- if not date_string is defined %}{%- if strftime_now is defined %}"
                   "{%- set date_string = strftime_now('%d %b %Y') %}{%- else %}{%- set date_string = '?' %}"
                   "{%- endif %}{%- endif %}Today Date: {{ date_string }}\n" + msgs),
    }
    for name, template in templates.items():
        tok.chat_template = template
        seen = set()
        for day in (datetime.datetime(2031, 1, 2), datetime.datetime(1999, 12, 31)):
            class Clock(datetime.datetime):
                @classmethod
                def now(cls, tz=None, _day=day):
                    return _day

            monkeypatch.setattr(ctu, "datetime", Clock)
            assert day.strftime("%d %b %Y") in tok.apply_chat_template([{"role": "user", "content": Q}],
                                                                        tokenize=False), "precondition"
            text = chat_prompt(tok, Q)
            assert "26 Jul 2024" in text and Q in text, (name, text)
            assert ctu.datetime is Clock  # the clock is only pinned while rendering
            seen.add(text)
        assert len(seen) == 1, f"{name}: the prompt changed with the day"


def test_collate_pads_dynamically_per_student(tiny_llama, tiny_gpt2):
    toks = {"s1": load_tokenizer(tiny_llama), "s2": load_tokenizer(tiny_gpt2)}
    exs = [{"id": f"q{i}", "path_idx": i, "style": "cot", "correct": True, "question_text": Q,
            "response": R * (i + 1)} for i in range(3)]
    ds = PathDataset(exs, toks, {"s1": 512, "s2": 512})
    batch = ds.collate([0, 1])
    for key, tok in toks.items():
        part = batch[key]
        lens = [len(ds.encoded[key][i]["input_ids"]) for i in (0, 1)]
        assert part["input_ids"].shape == (2, max(lens))  # not padded to max_len
        assert part["attention_mask"].sum(1).tolist() == lens
        short = lens.index(min(lens))
        assert (part["labels"][short, min(lens):] == IGNORE_INDEX).all()
        assert (part["input_ids"][short, min(lens):] == tok.pad_token_id).all()
        assert part["offsets"].shape == (2, max(lens), 2)
    assert batch["meta"]["ids"] == ["q0", "q1"] and batch["route_emb"] is None
    assert batch["meta"]["response_texts"][1] == R * 2


def test_epoch_batches_deterministic_grouped_and_even():
    lengths = [5 + (i * 37) % 50 for i in range(21)]
    a = epoch_batches(lengths, 4, seed=1, epoch=0, world=2, multiple=2)
    assert a == epoch_batches(lengths, 4, seed=1, epoch=0, world=2, multiple=2)
    assert a != epoch_batches(lengths, 4, seed=1, epoch=1, world=2, multiple=2)
    assert len(a) % 4 == 0
    flat = [i for b in a for i in b]
    assert set(flat) == set(range(21))
    assert sorted(flat[:21]) == list(range(21))  # every path once before any wrap-around padding
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in a[:5])
    assert spread < 5 * 20, "batches should group similar lengths"


def test_load_train_paths_joins_sources_and_reads_enriched(tmp_path, tiny_train_data):
    cfg = TrainConfig.from_flat(task="arith", model1="m", model2="m", data_root=str(tiny_train_data)).data
    paths = load_train_paths(cfg)
    assert len(paths) == 16
    assert {p["style"] for p in paths} == {"cot", "pot"} and {p["path_idx"] for p in paths} == {0, 2}
    assert all("Ann has" in p["question_text"] and p["correct"] is True for p in paths)
    cfg2 = TrainConfig.from_flat(task="arith", model1="m", model2="m", data_root=str(tiny_train_data), sample_size=3).data
    assert len(load_train_paths(cfg2)) == 6
    row = {"id": "e1", "question": "1+1?", "gold_answer": "2", "prompts": ["a", "b"], "styles": ["cot", "pot"],
           "responses": ["wrong 3", "right 2"], "correct_flags": [False, True]}
    enr = tmp_path / "x.enriched.jsonl"
    enr.write_text(json.dumps(row) + "\n")
    ex = load_train_paths(TrainConfig.from_flat(task="arith", model1="m", model2="m", train_file=str(enr), is_quality=False).data)
    assert [(e["path_idx"], e["correct"]) for e in ex] == [(0, False), (1, True)]
    with pytest.raises(ConfigError, match="no training data for task 'gsm8k'"):
        load_train_paths(TrainConfig.from_flat(task="gsm8k", model1="m", model2="m", data_root=str(tmp_path)).data)


def test_per_example_nll_and_masked_mean():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 3, 4, 1],
                           [IGNORE_INDEX, 2, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]])
    nll = per_example_nll(logits, labels)
    lp = torch.log_softmax(logits, -1)
    want0 = -(lp[0, 1, 3] + lp[0, 2, 4] + lp[0, 3, 1]) / 3
    want1 = -lp[1, 0, 2]
    assert torch.allclose(nll, torch.stack([want0, want1]))
    assert per_example_nll(logits, torch.full((2, 5), IGNORE_INDEX))[0] == 0  # fully truncated: 0, not NaN
    v = torch.tensor([1.0, 3.0, 5.0], requires_grad=True)
    assert masked_mean(v, torch.tensor([1.0, 0.0, 1.0])) == 3.0
    empty = masked_mean(v, torch.zeros(3))
    empty.backward()
    assert empty == 0 and torch.isfinite(v.grad).all()
