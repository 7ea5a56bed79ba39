"""Per-student tokenisation, label masks, offsets, batching and data loading."""

from __future__ import annotations

import json

import pytest
import torch

from distill.errors import ConfigError
from distill.losses import IGNORE_INDEX, masked_mean, per_example_nll
from distill.students.data import (PathDataset, chat_prompt, encode_path, epoch_batches, load_train_paths)
from distill.students.tokenizer import load_tokenizer
from distill.train.config import TrainConfig, config_from_sources, parse_train_args

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


def test_truncation_side_is_honoured_and_mask_computed_after(tiny_llama):
    right = load_tokenizer(tiny_llama)
    left = load_tokenizer(tiny_llama, truncation_side="left")
    full = encode_path(right, Q, R, max_len=512)
    p = sum(1 for l in full["labels"] if l == IGNORE_INDEX)
    cut = p + 3
    r = encode_path(right, Q, R, max_len=cut)
    assert r["input_ids"] == full["input_ids"][:cut]
    assert sum(l != IGNORE_INDEX for l in r["labels"]) == 3 and r["labels"][-1] != right.eos_token_id
    l = encode_path(left, Q, R, max_len=p)  # keeps the end: some prompt dropped, all completion kept
    assert l["input_ids"] == full["input_ids"][-p:]
    assert l["labels"] == full["labels"][-p:] and l["labels"][-1] == left.eos_token_id
    n_prompt_left = sum(x == IGNORE_INDEX for x in l["labels"])
    assert n_prompt_left == p - (len(full["input_ids"]) - p)


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
    cfg = TrainConfig(task="arith", model1="m", model2="m", data_root=str(tiny_train_data))
    paths = load_train_paths(cfg)
    assert len(paths) == 16
    assert {p["style"] for p in paths} == {"cot", "pot"} and {p["path_idx"] for p in paths} == {0, 2}
    assert all("Ann has" in p["question_text"] and p["correct"] is True for p in paths)
    cfg2 = TrainConfig(task="arith", model1="m", model2="m", data_root=str(tiny_train_data), sample_size=3)
    assert len(load_train_paths(cfg2)) == 6
    row = {"id": "e1", "question": "1+1?", "gold_answer": "2", "prompts": ["a", "b"], "styles": ["cot", "pot"],
           "responses": ["wrong 3", "right 2"], "correct_flags": [False, True]}
    enr = tmp_path / "x.enriched.jsonl"
    enr.write_text(json.dumps(row) + "\n")
    ex = load_train_paths(TrainConfig(task="arith", model1="m", model2="m", train_file=str(enr), is_quality=False))
    assert [(e["path_idx"], e["correct"]) for e in ex] == [(0, False), (1, True)]
    with pytest.raises(ConfigError, match="no training data for task 'gsm8k'"):
        load_train_paths(TrainConfig(task="gsm8k", model1="m", model2="m", data_root=str(tmp_path)))


def test_config_yaml_cli_merge_and_validation(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("task: arith\nmodel1: a\nmodel2: b\nlr-s1: 0.001\nis_quality: 'false'\nepochs: 5\n")
    cfg = parse_train_args(["--config", str(y), "--epochs", "2", "--is-router", "true", "--freeze_s2", "True"])
    assert (cfg.task, cfg.lr_s1, cfg.is_quality, cfg.epochs, cfg.routing, cfg.freeze_s2) == \
        ("arith", 0.001, False, 2, "learned", True)
    with pytest.raises(ConfigError, match="expected true or false"):
        config_from_sources({}, {"model1": "a", "model2": "b", "is_quality": "maybe"})
    with pytest.raises(ConfigError, match="unknown option 'lr_s3'"):
        config_from_sources({"lr_s3": 1}, {"model1": "a", "model2": "b"})
    with pytest.raises(ConfigError, match="--model2 is required"):
        TrainConfig(model1="a")
    with pytest.raises(ConfigError, match="not both"):
        TrainConfig(model1="a", model2="b", load_in_4bit=True, load_in_8bit=True)
    assert TrainConfig(model1="a", is_sft=True).model2 == ""


def test_per_example_nll_and_masked_mean():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[-100, -100, 3, 4, 1], [-100, 2, -100, -100, -100]])
    nll = per_example_nll(logits, labels)
    lp = torch.log_softmax(logits, -1)
    want0 = -(lp[0, 1, 3] + lp[0, 2, 4] + lp[0, 3, 1]) / 3
    want1 = -lp[1, 0, 2]
    assert torch.allclose(nll, torch.stack([want0, want1]))
    assert per_example_nll(logits, torch.full((2, 5), -100))[0] == 0  # fully truncated: 0, not NaN
    v = torch.tensor([1.0, 3.0, 5.0], requires_grad=True)
    assert masked_mean(v, torch.tensor([1.0, 0.0, 1.0])) == 3.0
    empty = masked_mean(v, torch.zeros(3))
    empty.backward()
    assert empty == 0 and torch.isfinite(v.grad).all()
