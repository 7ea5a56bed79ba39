"""Fast checks of the demo's pieces: configs, the commands it runs, the report, the teacher stage."""

from __future__ import annotations

import argparse
import json
import subprocess

import pytest

from distill.configs import find_config
from distill.demo import command as demo_cli
from distill.demo.config import DemoConfig, StudentSpec, probe_config
from distill.demo.report import format_report, teacher_stats
from distill.demo.stages import TRAIN_MODULE, prompt_command, train_args, train_command
from distill.demo.students import tokenizer_corpus
from distill.demo.synthetic import ArithConfig, write_splits
from distill.errors import ConfigError
from distill.train.config import load_yaml, config_from_sources


def test_builtin_train_configs_are_valid_train_configs(tmp_path):
    for name in ("demo", "gsm8k_lora"):
        values = load_yaml(find_config(name, "train"))
        cfg = config_from_sources(values, {"model1": "a", "model2": "b"})
        if name == "gsm8k_lora":
            continue
        assert cfg.data.task == "arith" and cfg.router.routing == "learned"
        # Random-init tiny students need LoRA on embeddings and head (see demo.yaml).
        assert "embed_tokens" in cfg.lora.targets and "lm_head" in cfg.lora.targets


def test_probe_preset_cripples_only_student1():
    cfg = probe_config(outdir="x")
    # the probe is the demo's training config plus the probe's own (student/data) overrides
    assert cfg.preset == "probe" and cfg.train_config == str(find_config("demo", "train").resolve())
    assert cfg.train_config == DemoConfig().train_config and cfg.train_overrides == {}
    assert cfg.student1.truncation_side == "left" and cfg.student1.max_positions <= 144
    assert cfg.student2.max_positions >= 512
    assert "tot" in cfg.styles.split(",")


def test_config_validation_says_what_to_change():
    with pytest.raises(ConfigError, match="preset"):
        DemoConfig(preset="nope")
    with pytest.raises(ConfigError, match="wrong_rate"):
        DemoConfig(wrong_rate=2)
    with pytest.raises(ConfigError, match="divisible"):
        StudentSpec(hidden=30, heads=4)
    with pytest.raises(ConfigError, match="not found"):
        DemoConfig(train_config="/nonexistent.yaml")


def test_commands_use_the_public_entry_points(tmp_path):
    cfg = DemoConfig(outdir=str(tmp_path), train_overrides={"epochs": 2})
    p = prompt_command(cfg, tmp_path / "data" / "arith" / "train" / "train.jsonl", tmp_path / "s.json")
    assert p[1:4] == ["-m", "distill.commands", "prompt"] and "--backend" in p and p[p.index("--backend") + 1] == "scripted"
    t = train_command(cfg, tmp_path / "data", tmp_path / "m1", tmp_path / "m2", tmp_path / "run")
    assert t[1:3] == ["-m", "accelerate.commands.launch"]
    assert t[t.index(TRAIN_MODULE) - 1] == "-m" and t[t.index("--epochs") + 1] == "2"
    assert t[t.index("--config_file") + 1] == str(find_config("cpu_ddp", "accelerate"))
    assert t[t.index("--num_processes") + 1] == "2"


def test_teacher_stage_through_distill_prompt(tmp_path):
    """The scripted teacher runs through the real ``distill prompt`` and its wrong answers are filtered."""
    paths = write_splits(tmp_path / "data", ArithConfig(n_train=40, n_test=5))
    cfg = DemoConfig(outdir=str(tmp_path), wrong_rate=0.3)
    summary = tmp_path / "summary.json"
    proc = subprocess.run(prompt_command(cfg, paths["train"], summary), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    stats = teacher_stats(json.loads(summary.read_text()))
    assert stats["paths_total"] == 40 * cfg.n_paths
    assert 0.55 < stats["paths_correct"] / stats["paths_total"] < 0.85
    correct = [json.loads(line) for line in paths["train"].with_name("train.correct.jsonl").read_text().splitlines()]
    assert sum(len(r["responses"]) for r in correct) == stats["paths_correct"]
    assert not (paths["test"].with_name("test.enriched.jsonl")).exists()  # the test split is never prompted
    corpus = tokenizer_corpus(paths["train"], paths["train"].with_name("train.enriched.jsonl"))
    assert any("\\boxed" in t for t in corpus) and any(t.startswith("Question:") for t in corpus)


def test_report_shows_before_after_and_routing():
    result = {"preset": "demo", "wall_s": 123.4, "n_test": 200, "arch1": "llama", "arch2": "qwen2",
              "teacher": {"paths_total": 100, "paths_correct": 80},
              "before": {"acc_s1": 0.01, "acc_s2": 0.0, "acc_ensemble": 0.005},
              "after": {"acc_s1": 0.42, "acc_s2": 0.37, "acc_ensemble": 0.45},
              "routing": {"all": {"tot": {"student1": 0.1, "student2": 0.9, "count": 50}}},
              "plot": "x.png", "run_dir": "runs/demo/run"}
    text = format_report(result)
    assert "42.0%" in text and "+41.0%" in text and "tot" in text and "90.0%" in text and "123 s" in text


def test_cli_flags_map_to_config(tmp_path):
    parser = argparse.ArgumentParser()
    demo_cli.add_arguments(parser)
    cfg = demo_cli.config_from_args(parser.parse_args(["--fast", "--probe", "--outdir", str(tmp_path)]))
    assert cfg.preset == "probe" and cfg.arith.n_train == 300 and cfg.train_overrides["epochs"] == 3
    cfg = demo_cli.config_from_args(parser.parse_args(["--n_train", "50", "--n_test", "10", "--epochs", "2"]))
    assert cfg.preset == "demo" and cfg.arith.n_train == 50 and cfg.train_overrides == {"epochs": 2}


def test_prefilled_router_cache_is_what_training_reads(tmp_path):
    """The demo embeds the paths before launching; the engine's embedder then finds every one cached."""
    from distill.demo.stages import prefill_router_cache
    from distill.router.encoder import PathEmbedder, path_text
    from distill.students.paths import load_train_paths
    from distill.train.config import parse_train_args

    paths = write_splits(tmp_path / "data", ArithConfig(n_train=6, n_test=2))
    cfg = DemoConfig(outdir=str(tmp_path), wrong_rate=0.0)
    assert subprocess.run(prompt_command(cfg, paths["train"], tmp_path / "s.json"), capture_output=True).returncode == 0
    run_dir = tmp_path / "run"
    cmd = train_command(cfg, tmp_path / "data", tmp_path / "m1", tmp_path / "m2", run_dir)
    assert prefill_router_cache(cmd, run_dir, threads=1) == 6 * cfg.n_paths
    tcfg = parse_train_args(train_args(cmd))
    texts = [path_text(e["question_text"], e["response"]) for e in load_train_paths(tcfg.data)]
    emb = PathEmbedder(tcfg.router.encoder, run_dir / "emb_cache")
    vecs = emb.embed(texts)
    assert emb.encoded_count == 0 and vecs.shape[0] == len(texts)


def test_cli_styles_flag_sets_one_path_per_style():
    parser = argparse.ArgumentParser()
    demo_cli.add_arguments(parser)
    cfg = demo_cli.config_from_args(parser.parse_args(["--styles", "cot, program"]))
    assert cfg.styles == "cot,program" and cfg.n_paths == 2


def test_demo_qwen2_student_gets_a_bpe_tokenizer_as_fine_as_llamas(tmp_path, demo_students):
    """The factory's Unigram qwen2 tokenizer stalls at ~380 pieces on arith text and splits it ~2.3x
    finer than llama's BPE (qwen2 barely learned); the demo retrains it as BPE, keeping ChatML."""
    from transformers import AutoModelForCausalLM

    cfg = DemoConfig(outdir=str(tmp_path))
    assert cfg.student2.tokenizer == "bpe" and probe_config(outdir="x").student2.tokenizer == "bpe"
    rows, teacher, m1, m2, tok1, tok2 = demo_students(cfg, ArithConfig(n_train=80, n_test=5))
    texts = [teacher.answer(r, "tot") for r in rows[:20]]
    n1 = sum(len(tok1(t)["input_ids"]) for t in texts)
    n2 = sum(len(tok2(t)["input_ids"]) for t in texts)
    assert n2 <= 1.2 * n1, (n1, n2)
    assert "<|im_start|>" in tok2.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert tok2.decode(tok2(texts[0])["input_ids"]) == texts[0]
    model = AutoModelForCausalLM.from_pretrained(m2)
    assert model.config.model_type == "qwen2" and model.config.vocab_size == len(tok2)
    assert model.config.eos_token_id == tok2.eos_token_id and model.config.pad_token_id == tok2.pad_token_id
    with pytest.raises(ConfigError, match="tokenizer"):
        StudentSpec(tokenizer="wordpiece")
