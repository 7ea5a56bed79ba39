"""`distill posrate`: rates per style / path index from router logs, JSON shape, table, plot, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from distill.commands import main
from distill.data.jsonl import atomic_write_jsonl
from distill.router.posrate import compute_rates


def _row(i, pidx, style, route):
    return {"id": f"q{i}", "path_idx": pidx, "style": style, "route": route,
            "probs": [0.3, 0.3, 0.4], "correct": True}


@pytest.fixture
def logdir(tmp_path):
    # epoch 1: cot -> 1, 1, both, 2 ; pot -> 2, 2
    atomic_write_jsonl(tmp_path / "router_logs_epoch1.jsonl", [
        _row(0, 0, "cot", 1), _row(1, 0, "cot", 1), _row(2, 0, "cot", "both"), _row(3, 0, "cot", 2),
        _row(0, 1, "pot", 2), _row(1, 1, "pot", 2),
    ])
    # epoch 2: cot -> 1, 1 ; pot -> both, 1
    atomic_write_jsonl(tmp_path / "router_logs_epoch2.jsonl", [
        _row(0, 0, "cot", 1), _row(1, 0, "cot", 1),
        _row(0, 1, "pot", "both"), _row(1, 1, "pot", 1),
    ])
    (tmp_path / "metrics.json").write_text("{}")  # unrelated files are ignored
    return tmp_path


def test_rates_per_style_epoch_and_overall(logdir):
    r = compute_rates(logdir)
    assert set(r) == {"all", "per_epoch", "by_path_idx"}
    assert r["per_epoch"]["1"]["cot"] == {"student1": 0.75, "student2": 0.5, "count": 4}
    assert r["per_epoch"]["1"]["pot"] == {"student1": 0.0, "student2": 1.0, "count": 2}
    assert r["per_epoch"]["2"]["pot"] == {"student1": 1.0, "student2": 0.5, "count": 2}
    assert r["all"]["cot"] == {"student1": 5 / 6, "student2": 2 / 6, "count": 6}
    assert r["all"]["pot"] == {"student1": 0.5, "student2": 0.75, "count": 4}
    # per path index mirrors style here (style i == path i)
    assert r["by_path_idx"]["all"]["1"] == r["all"]["pot"]
    assert r["by_path_idx"]["per_epoch"]["1"]["0"] == r["per_epoch"]["1"]["cot"]


def test_cli_json_table_and_plot(logdir, tmp_path, capsys):
    png = tmp_path / "out" / "rates.png"
    assert main(["posrate", "--log_dir", str(logdir), "--json", "--plot", str(png)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["all"]["cot"]["count"] == 6
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000
    assert main(["posrate", "--log_dir", str(logdir)]) == 0
    table = capsys.readouterr().out
    assert "epoch 1 by style" in table and "all epochs by path index" in table
    cot_line = [ln for ln in table.splitlines() if ln.strip().startswith("cot")][-1]
    assert cot_line.split()[1:4] == ["6", "0.833", "0.333"]


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["posrate", "--log_dir", str(tmp_path)]) == 2
    assert "no router_logs_epoch" in capsys.readouterr().err
    atomic_write_jsonl(tmp_path / "router_logs_epoch0.jsonl", [_row(0, 0, "cot", 1), _row(1, 0, "cot", 7)])
    assert main(["posrate", "--log_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "router_logs_epoch0.jsonl:2" in err and "route" in err


def test_posrate_does_not_import_torch(logdir):
    code = ("import sys; from distill.commands import main; main(['posrate','--log_dir',%r,'--json']); "
            "assert 'torch' not in sys.modules, 'posrate imported torch'" % str(logdir))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
