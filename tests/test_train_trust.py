"""Training fails early and in one line on bad configuration, launch environment, output folders and
damaged checkpoints -- before any model loads (issue: trust and bad input, items 12-14)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill.errors import ConfigError
from distill.train.checkpoint import checkpoint_problem, find_checkpoint
from distill.train.config import TrainConfig, parse_train_args
from distill.train.setup import check_launch_environment, validate_inputs

AB = {"model1": "a", "model2": "b"}


@pytest.mark.parametrize("bad, flag", [({"lr_s1": float("nan")}, "--lr_s1"), ({"lr_s2": float("inf")}, "--lr_s2"),
                                       ({"lr_router": "inf"}, "--lr_router"), ({"weight_decay": -0.1}, "--weight_decay"),
                                       ({"kl_weight": -1}, "--peer_weight"), ({"max_grad_norm": -1}, "--max_grad_norm"),
                                       ({"lora_alpha": 0}, "--lora_alpha"), ({"eval_limit": 0}, "--eval_limit"),
                                       ({"gumbel_tau": "inf"}, "--gumbel_tau"), ({"balance_weight": "nan"}, "--balance_weight")])
def test_values_that_used_to_train_or_fail_late_are_rejected_up_front(bad, flag):
    with pytest.raises(ConfigError, match=flag):
        TrainConfig.from_flat(**AB, **bad)


def _cfg(tmp_path, data, m1, m2, *extra):
    return parse_train_args(["--task", "arith", "--model1", str(m1), "--model2", str(m2), "--data_root", str(data),
                             "--outdir", str(tmp_path / "run"), "--bs", "4", "--lora_r", "4", "--eval_at_end", "false",
                             "--encoder", "minilm", *extra])


def test_resume_without_a_checkpoint_fails_before_any_model_loads(tmp_path, tiny_llama, tiny_qwen2, tiny_train_data):
    with pytest.raises(ConfigError, match="no complete checkpoint under"):
        validate_inputs(_cfg(tmp_path, tiny_train_data, tiny_llama, tiny_qwen2, "--resume_from", "latest"))
    with pytest.raises(ConfigError, match="no such checkpoint folder"):
        validate_inputs(_cfg(tmp_path, tiny_train_data, tiny_llama, tiny_qwen2, "--resume_from", str(tmp_path / "nope")))


def test_outdir_that_is_a_file_or_read_only_fails_before_any_model_loads(tmp_path, tiny_llama, tiny_qwen2,
                                                                          tiny_train_data):
    f = tmp_path / "file"
    f.write_text("x")
    cfg = parse_train_args(["--task", "arith", "--model1", str(tiny_llama), "--model2", str(tiny_qwen2),
                            "--data_root", str(tiny_train_data), "--outdir", str(f), "--eval_at_end", "false"])
    with pytest.raises(ConfigError, match="exists and is not a folder"):
        validate_inputs(cfg)
    if os.geteuid() != 0:
        pytest.skip("a read-only mount needs root")
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], check=True)
    try:
        cfg = parse_train_args(["--task", "arith", "--model1", str(tiny_llama), "--model2", str(tiny_qwen2),
                                "--data_root", str(tiny_train_data), "--outdir", str(ro / "run"),
                                "--eval_at_end", "false"])
        with pytest.raises(ConfigError, match=r"--outdir .*not writable \(Read-only file system\)"):
            validate_inputs(cfg)
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_deepspeed_with_accelerate_use_cpu_is_one_line_before_training(tmp_path, tiny_llama, tiny_qwen2,
                                                                        tiny_train_data):
    with pytest.raises(ConfigError, match="DS_ACCELERATOR=cpu alone"):
        check_launch_environment({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_USE_CPU": "1"})
    check_launch_environment({"ACCELERATE_USE_DEEPSPEED": "true", "DS_ACCELERATOR": "cpu"})  # the working one
    env = {**os.environ, "ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_USE_CPU": "1"}
    proc = subprocess.run([sys.executable, "-m", "distill.commands", "train", "--task", "arith", "--model1",
                           str(tiny_llama), "--model2", str(tiny_qwen2), "--data_root", str(tiny_train_data),
                           "--outdir", str(tmp_path / "o"), "--eval_at_end", "false"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and "DS_ACCELERATOR=cpu" in errors[0], proc.stderr[-2000:]
    assert not (tmp_path / "o").exists()


def test_hub_name_on_an_offline_machine_fails_fast(monkeypatch, tmp_path):
    from distill.students.load import check_model_ref

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    with pytest.raises(ConfigError, match="not in the local Hugging Face cache"):
        check_model_ref("someorg/some-model", "--model1")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_hub_name_without_network_fails_in_seconds_not_after_hub_timeouts(monkeypatch, tmp_path):
    """No offline flag, no network: the hub endpoint refuses the connection -> one line, at once."""
    import socket
    import time

    from distill.students.load import check_model_ref

    for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="hub cannot be reached") as err:
        check_model_ref("someorg/some-model", "--model1")
    assert time.perf_counter() - t0 < 5 and "\n" not in str(err.value)
    # negative control: an endpoint that accepts connections is not reported unreachable
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        check_model_ref("someorg/some-model", "--model1")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tiny_llama, tiny_qwen2):
    """A real run that saved checkpoints after steps 1, 2 (and its epoch end)."""
    from accelerate.state import AcceleratorState, GradientState

    from distill.train.engine import train
    from tests.conftest import write_tiny_train_data

    tmp = tmp_path_factory.mktemp("ck")
    data = write_tiny_train_data(tmp / "data")
    cfg = parse_train_args(["--task", "arith", "--model1", str(tiny_llama), "--model2", str(tiny_qwen2),
                            "--data_root", str(data), "--outdir", str(tmp / "run"), "--bs", "4", "--lora_r", "4",
                            "--eval_at_end", "false", "--max_steps", "3", "--save_every", "1",
                            "--save_total_limit", "0", "--routing", "all", "--peer", "none"])
    try:
        train(cfg)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    return tmp / "run"


def _copy(run: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(run / "checkpoints", dst / "checkpoints")
    return dst


def _steps(run: Path) -> list[Path]:
    return sorted((run / "checkpoints").glob("step_*"), key=lambda p: json.loads((p / "progress.json").read_text())["global_step"])


def test_a_whole_checkpoint_passes_and_damage_is_named(checkpoints, tmp_path):
    run = _copy(checkpoints, tmp_path)
    newest = _steps(run)[-1]
    assert checkpoint_problem(newest, world=1) is None
    assert checkpoint_problem(newest, world=2) == "random_states_1.pkl is missing"  # resumed by 2 ranks
    (newest / "random_states_0.pkl").unlink()  # this used to resume silently, with fresh random streams
    assert checkpoint_problem(newest, world=1) == "random_states_0.pkl is missing"
    older = _steps(run)[-2]
    st = older / "model.safetensors"
    st.write_bytes(st.read_bytes()[: st.stat().st_size // 2])
    assert checkpoint_problem(older, world=1) == "model.safetensors is truncated or corrupt"
    opt = _steps(run)[0] / "optimizer.bin"
    opt.write_bytes(opt.read_bytes()[:100])
    assert checkpoint_problem(_steps(run)[0], world=1) == "optimizer.bin is truncated or corrupt"


def test_latest_falls_back_to_the_newest_whole_checkpoint_with_a_warning(checkpoints, tmp_path):
    run = _copy(checkpoints, tmp_path)
    steps = _steps(run)
    (steps[-1] / "random_states_0.pkl").unlink()
    warned = []
    assert find_checkpoint(run, "latest", 1, warn=warned.append) == steps[-2]
    assert len(warned) == 1 and str(steps[-1]) in warned[0] and "random_states_0.pkl is missing" in warned[0]
    with pytest.raises(ConfigError, match="random_states_0.pkl is missing; resume from an earlier checkpoint"):
        find_checkpoint(run, str(steps[-1]), 1)
    for s in steps:
        (s / "scheduler.bin").unlink()
    with pytest.raises(ConfigError, match="every checkpoint under .* is damaged"):
        find_checkpoint(run, "latest", 1, warn=warned.append)
