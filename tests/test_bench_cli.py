"""``distill bench`` finds the checkout's bench/ from the current folder, or says in one line that it cannot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench(*args, cwd):
    return subprocess.run([sys.executable, "-m", "distill.commands", "bench", *args], cwd=cwd,
                          capture_output=True, text=True)


def test_found_from_the_checkout_and_its_subfolders():
    out = _bench("--list", cwd=ROOT / "tests")
    assert out.returncode == 0, out.stderr
    assert {"verify", "train_step", "qlora_zero2"} <= set(out.stdout.split())


def test_outside_a_checkout_one_line_error(tmp_path):
    out = _bench("--list", cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    err = out.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("distill bench: error: no bench/ folder")
    assert "--bench_dir" in err
    out = _bench("--list", "--bench_dir", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 2 and "no bench_*.py scripts there" in out.stderr


def test_bench_dir_runs_scripts_and_reports_missed_targets(tmp_path):
    d = tmp_path / "mybench"
    d.mkdir()
    (d / "bench_ok.py").write_text("print('ok 1.0 it/s')\n")
    (d / "bench_slow.py").write_text("import sys; print('slow'); sys.exit(1)\n")
    out = _bench("--bench_dir", str(d), cwd=tmp_path)
    assert out.returncode == 1
    assert "== bench ok" in out.stdout and "ok 1.0 it/s" in out.stdout and "== bench slow" in out.stdout
    assert "benchmarks that missed their target: slow" in out.stderr
    out = _bench("ok", "--bench_dir", str(d), cwd=tmp_path)
    assert out.returncode == 0 and "slow" not in out.stdout
    out = _bench("nope", "--bench_dir", str(d), cwd=tmp_path)
    assert out.returncode == 2 and "unknown benchmark(s) nope; available: ok, slow" in out.stderr


def test_args_reach_the_benchmark_script(tmp_path):
    d = tmp_path / "mybench"
    d.mkdir()
    (d / "bench_echo.py").write_text("import sys; print('argv', sys.argv[1:])\n")
    out = _bench("echo", "--bench_dir", str(d), "--args", "--quick --json", cwd=tmp_path)
    assert out.returncode == 0 and "argv ['--quick', '--json']" in out.stdout
