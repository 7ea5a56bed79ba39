"""Built-in configs are package data, found by name (``distill.configs``), from any folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill.configs import (
    DEEPSPEED_ENV, ROOT, builtin_names, find_any, find_config, resolve_deepspeed_env,
)
from distill.errors import ConfigError


def test_builtin_names_per_kind():
    assert builtin_names("train") == ["demo", "demo_formal", "gsm8k_lora"]
    assert builtin_names("accelerate") == ["cpu_ddp", "multi_gpu", "single", "zero2", "zero3"]
    assert builtin_names("deepspeed") == ["ds_zero2", "ds_zero3"]
    names = [n for kind in ("train", "accelerate", "deepspeed") for n in builtin_names(kind)]
    assert len(names) == len(set(names)), "names must be unique across kinds (distill configs NAME)"
    with pytest.raises(ConfigError, match="valid kinds: train, accelerate, deepspeed"):
        builtin_names("nope")


def test_find_config_name_path_and_error(tmp_path, monkeypatch):
    demo = find_config("demo", "train")
    assert demo == ROOT / "train" / "demo.yaml" and demo.is_file()
    assert find_config("demo.yaml", "train") == demo  # the file name works too
    assert find_config("zero2", "accelerate").parent.name == "accelerate"
    own = tmp_path / "run.yaml"
    own.write_text("task: gsm8k\n")
    assert find_config(own, "train") == own and find_config(str(own), "train") == own
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").write_text("x")  # an existing file of that name wins over the built-in
    assert find_config("demo", "train") == Path("demo")
    with pytest.raises(ConfigError) as exc:
        find_config("demoo", "train")
    msg = str(exc.value)
    assert "'demoo' not found" in msg and "demo, demo_formal, gsm8k_lora" in msg and len(msg.splitlines()) == 1
    with pytest.raises(ConfigError, match="built-in: cpu_ddp, multi_gpu, single, zero2, zero3"):
        find_config("zero9", "accelerate")
    with pytest.raises(ConfigError):
        find_config("../train/demo", "accelerate")  # names are names, not paths into the package


def test_find_any_and_distill_configs_command(tmp_path):
    assert find_any("zero2") == ("accelerate", find_config("zero2", "accelerate"))
    with pytest.raises(ConfigError, match="train: demo, demo_formal, gsm8k_lora; accelerate: "):
        find_any("nope")
    run = lambda *a: subprocess.run([sys.executable, "-m", "distill.commands", "configs", *a], cwd=tmp_path,
                                    capture_output=True, text=True)
    out = run("zero2")
    assert out.returncode == 0 and Path(out.stdout.strip()) == find_config("zero2", "accelerate")
    out = run()
    assert out.returncode == 0 and "ds_zero3" in out.stdout and str(find_config("demo", "train")) in out.stdout
    out = run("nope")
    assert out.returncode == 2 and out.stderr.startswith("distill configs: error: no built-in config named 'nope'")


def test_accelerate_yamls_name_their_deepspeed_json_and_it_resolves(monkeypatch, tmp_path):
    """zero2/zero3 name ``ds_zeroN.json`` (no repository path); ``distill train`` turns the name that
    accelerate passes on into the packaged file, and accelerate's DeepSpeed plugin then reads it."""
    import yaml

    for stage in (2, 3):
        acc = yaml.safe_load(find_config(f"zero{stage}", "accelerate").read_text())
        name = acc["deepspeed_config"]["deepspeed_config_file"]
        assert name == f"ds_zero{stage}.json" and "/" not in name
        env = {DEEPSPEED_ENV: name}
        monkeypatch.chdir(tmp_path)  # not where the YAMLs are
        assert resolve_deepspeed_env(env) == str(find_config(f"ds_zero{stage}", "deepspeed"))
        assert json.loads(Path(env[DEEPSPEED_ENV]).read_text())["zero_optimization"]["stage"] == stage
    for value in ("none", '{"zero_optimization": {"stage": 2}}', str(tmp_path / "missing.json")):
        env = {DEEPSPEED_ENV: value}
        assert resolve_deepspeed_env(env) == value and env[DEEPSPEED_ENV] == value  # left for accelerate
    assert resolve_deepspeed_env({}) is None
    own = tmp_path / "ds_zero2.json"
    own.write_text("{}")
    env = {DEEPSPEED_ENV: "ds_zero2.json"}
    assert resolve_deepspeed_env(env) == "ds_zero2.json"  # a file in the current folder wins


@pytest.mark.skipif(not __import__("importlib").util.find_spec("deepspeed"), reason="needs deepspeed")
def test_accelerate_deepspeed_plugin_reads_the_resolved_builtin(tmp_path):
    """What a launched rank does: the env holds the YAML's bare name; after resolving, accelerate's
    DeepSpeedPlugin loads the packaged JSON (ZeRO stage 2)."""
    code = ("import os; from distill.configs import resolve_deepspeed_env; resolve_deepspeed_env(); "
            "from accelerate.utils import DeepSpeedPlugin; p = DeepSpeedPlugin(); "
            "print(p.zero_stage, p.hf_ds_config.config['zero_optimization']['reduce_bucket_size'])")
    env = {**os.environ, DEEPSPEED_ENV: "ds_zero2.json", "ACCELERATE_USE_DEEPSPEED": "true", "DS_ACCELERATOR": "cpu"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["2", "50000000.0"]


def test_configs_ship_as_package_data():
    """pyproject's package-data globs cover every file under distill/configs/."""
    import tomllib

    globs = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())[
        "tool"]["setuptools"]["package-data"]["distill.configs"]
    files = {p.relative_to(ROOT) for p in ROOT.rglob("*") if p.is_file() and p.suffix in (".yaml", ".json")}
    covered = {p.relative_to(ROOT) for g in globs for p in ROOT.glob(g)}
    assert files and files == covered, files - covered
