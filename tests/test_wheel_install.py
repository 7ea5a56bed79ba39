"""The package as a user gets it (slow): a NON-editable install into a fresh venv, run from an
unrelated folder, must find its built-in configs, its plug-ins (the demo's task, teacher and
command) and its training entry points without the checkout.

No internet here to reinstall torch & co., so the fresh venv sees this test's venv's site-packages
through a ``.pth`` line. A path added that way is not a site directory: the ``.pth`` files in it
(the checkout's editable-install finder) are not run, so the checkout stays invisible, which the
test checks. pip is told to ignore the editable ``distill`` it can see there, and builds from a
copy of the sources (an in-tree build would leave a stale ``build/`` in the checkout).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(cmd, *, cwd, env, timeout=600):
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{cmd}\nstdout:\n{out.stdout[-3000:]}\nstderr:\n{out.stderr[-3000:]}"
    return out


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_wheel_install_runs_demo_and_train_outside_the_checkout(tmp_path, tiny_llama, tiny_qwen2, tiny_train_data):
    # 1. sources -> fresh venv -> non-editable install
    src = tmp_path / "src"
    shutil.copytree(REPO / "distill", src / "distill", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path, env=os.environ)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", PYTHONNOUSERSITE="1",
               TOKENIZERS_PARALLELISM="false")
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path,
                     env=env).stdout.strip())
    (site / "_distill_test_parent_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "--ignore-installed",
          src], cwd=tmp_path, env=env)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    # 2. the installed package, not the checkout, is what runs; its configs are package data
    where = json.loads(_run([py, "-c", (
        "import json, distill, distill.commands.train, distill.demo.teacher; from distill.configs import find_config; "
        "from distill.data.tasks import get_task; get_task('arith'); "
        "print(json.dumps([distill.__file__, distill.commands.train.__file__, distill.demo.teacher.__file__, "
        "str(find_config('demo', 'train')), str(find_config('zero2', 'accelerate'))]))")],
        cwd=elsewhere, env=env).stdout)
    for path in where:
        assert Path(path).resolve().is_relative_to(site.resolve()), (path, site)
        assert not Path(path).resolve().is_relative_to(REPO), path
    assert (site / "distill" / "configs" / "deepspeed" / "ds_zero2.json").is_file()
    assert not (site / "distill" / "cli.py").exists()

    distill = venv / "bin" / "distill"
    helped = _run([distill, "--help"], cwd=elsewhere, env=env).stdout
    for name in ("prompt", "train", "demo", "configs", "bench"):
        assert name in helped
    assert Path(_run([distill, "configs", "cpu_ddp"], cwd=elsewhere, env=env).stdout.strip()).is_relative_to(site)

    # 3. the demo, end to end (entry-point task/backend/command, packaged demo + cpu_ddp configs,
    #    `accelerate launch -m distill.commands.train` on 2 processes), at smoke size
    out = elsewhere / "demo"
    demo = _run([distill, "demo", "--fast", "--n_train", "40", "--n_test", "8", "--epochs", "1", "--no_plot",
                 "--outdir", out], cwd=elsewhere, env=env)
    assert "accuracy        before   after" in demo.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["after"]["n"] == 8 and report["teacher"]["paths_total"] == 40 * 5
    assert Path(report["config"]["train_config"]).resolve().is_relative_to(site.resolve())
    assert (out / "run" / "student1" / "adapter_config.json").is_file()

    # 4. `accelerate launch $(which distill) train --config demo`: built-in config by name, tiny models and data
    run_dir = elsewhere / "train"
    train = _run([py, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
                  "--mixed_precision", "no", "--dynamo_backend", "no", distill, "train", "--config", "demo",
                  "--data_root", tiny_train_data, "--model1", tiny_llama, "--model2", tiny_qwen2,
                  "--outdir", run_dir, "--max_steps", "1", "--eval_at_end", "false"], cwd=elsewhere, env=env)
    summary = json.loads(train.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 1, summary
    assert (run_dir / "student1" / "adapter_config.json").is_file() and (run_dir / "student2").is_dir()
