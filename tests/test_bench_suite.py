"""bench/bench_suite.py and its figure modules: the figure record and the runner (a failing group keeps the
others' figures), padding on real GSM8K paths with real tiny students, fixed-length padding that changes no
loss, the research-style synchronous prompting loop against a real local server, the verifier wiring,
``distill bench --quick --json`` plumbing, and bench/bench_gpu.py's harness at ``--tiny`` size on CPU."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_suite as bs  # noqa: E402
import suite_common as sc  # noqa: E402

needs_gsm8k = pytest.mark.skipif(not (sc.DATA / "gsm8k" / "train.jsonl").is_file(),
                                 reason=f"the shared GSM8K data is not at {sc.DATA}")


def test_figure_met_follows_op_and_target():
    assert sc.figure("a", 0.95, 0.9, ">=", {})["met"] is True
    assert sc.figure("a", 0.85, 0.9, ">=", {})["met"] is False
    assert sc.figure("b", 0.7, 0.8, "<=", {})["met"] is True
    assert sc.figure("b", 0.9, 0.8, "<=", {})["met"] is False
    assert sc.figure("c", 3.0, None, ">=", {})["met"] is None  # informational: no target
    assert sc.failed_figure("d", 1.0, ">=", "boom")["met"] is False
    with pytest.raises(ValueError):
        sc.figure("e", 1.0, 1.0, "==", {})


def test_runner_keeps_other_groups_when_one_fails(monkeypatch):
    def ok(tmp, quick):
        return [sc.figure("fine", 2.0, 1.0, ">=", {"paths": 3, "bs": 2})]

    def broken(tmp, quick):
        raise RuntimeError("no server")

    monkeypatch.setattr(bs, "GROUPS", {"ok": ((("fine", 1.0, ">="),), ok),
                                       "broken": ((("lost1", 0.9, ">="), ("lost2", 0.8, "<=")), broken)})
    doc = bs.run_suite(["broken", "ok"], quick=True, threads=1, log=lambda m: None)
    names = [f["name"] for f in doc["figures"]]
    assert names == ["lost1", "lost2", "fine"]
    assert doc["missed"] == ["lost1", "lost2"]
    assert doc["figures"][0]["detail"]["error"] == "RuntimeError: no server"
    assert doc["machine"]["cores"] >= 1 and len(doc["machine"]["load_avg_end"]) == 3
    table = doc["table_md"]
    assert "| fine | 2.000 |" in table and "**NOT met**" in table and "paths 3, bs 2" in table
    assert "load average" in table and "shared" in table
    json.dumps(doc)  # the --json object is serialisable


def test_unknown_group_is_a_usage_error():
    with pytest.raises(SystemExit) as exc:
        bs.parse_args(["--only", "nope"])
    assert exc.value.code == 2


@needs_gsm8k
def test_padding_on_real_gsm8k_paths(tmp_path):
    import suite_train as st

    b = st.build(tmp_path, 48, max_len=1024, size={"vocab_size": 512})
    stats = st.padding_stats(b["ds"], 8)
    for s in stats.values():
        assert s["real_tokens"] > 48 * 50  # real GSM8K paths, not toy strings
        assert s["ours"] > s["random_batches"] > s["pad_to_512"] * 0.99  # grouping beats random order beats 512
        assert s["ours"] <= 1.0 and s["pad_to_512"] == pytest.approx(s["real_tokens"] / (512 * 48))


@needs_gsm8k
def test_pad_to_max_changes_no_loss(tmp_path):
    """The research-style fixed-length batch is the same training signal (pads masked), only more tokens."""
    import torch

    import suite_train as st
    from distill.train.mixture import MixtureModel

    b = st.build(tmp_path, 8, size={"vocab_size": 512})
    batch = b["ds"].collate(list(range(4)))
    fixed = st.pad_to(batch, 512, {"s1": b["t1"].pad_token_id, "s2": b["t2"].pad_token_id})
    assert fixed["s1"]["input_ids"].shape[1] == 512 and fixed["s2"]["labels"].shape[1] == 512
    assert int(fixed["s1"]["attention_mask"].sum()) == int(batch["s1"]["attention_mask"].sum())
    model = MixtureModel(b["s1"], b["s2"]).eval()
    with torch.no_grad():
        a, f = model(batch), model(fixed)
    assert float(f.loss) == pytest.approx(float(a.loss), rel=1e-4)
    res = st.epoch_time(model.train(), [batch], torch.optim.AdamW([p for p in model.parameters() if p.requires_grad]))
    assert res["tokens"] == int(batch["s1"]["attention_mask"].sum() + batch["s2"]["attention_mask"].sum())
    assert res["cpu_s"] > 0 and res["routes"] == [0, 0, 4]  # no router: every path to both


def test_sync_batches_wait_for_each_sample_and_pipeline_overlaps():
    import suite_prompt as sp

    latency, samples = 0.2, 3
    with sp.teacher_server(latency) as port:
        base = sp.run_sync_batches(port, samples, 4)
        ours = sp.run_pipeline(port, samples * 4, concurrency=64, n=4)
    assert base["answered"] == 12 and base["request_wall_s"] >= samples * latency  # one batch after another
    assert ours["failed"] == 0 and ours["paths"] == 12
    assert ours["request_wall_s"] < base["request_wall_s"]  # 12 requests in flight at once


@needs_gsm8k
def test_verify_scoring_checks_every_verdict():
    from bench_verify import gsm8k_items

    import suite_verify as sv
    from distill.verify.batch import shutdown

    items, expect = gsm8k_items(sc.DATA / "gsm8k" / "test.jsonl")
    try:
        res = sv._score("gsm8k", items[:30], expect[:30], workers=1)
        flipped = sv._score("gsm8k", items[:30], [not e for e in expect[:30]], workers=1)
    finally:
        shutdown()
    assert res["answers"] == 30 and res["wrong_verdicts"] == 0 and res["timeouts"] == 0
    assert flipped["wrong_verdicts"] == 30  # a wrong expectation is caught, so speed cannot hide errors


def test_distill_bench_runs_the_suite_with_quick_json(tmp_path):
    d = tmp_path / "bench"
    d.mkdir()
    (d / "bench_suite.py").write_text("import json, sys; print(json.dumps({'argv': sys.argv[1:]}))\n")
    (d / "bench_other.py").write_text("print('should not run')\n")
    out = subprocess.run([sys.executable, "-m", "distill.commands", "bench", "--quick", "--json", "--only", "verify",
                          "--bench_dir", str(d)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"argv": ["--quick", "--json", "--only", "verify"]}  # stdout: one object
    assert "== bench suite" in out.stderr and "should not run" not in out.stdout


@pytest.mark.slow  # two tokenizer trainings + a subprocess importing torch/transformers: ~8 s CPU, 24 s wall at load 8
def test_bench_gpu_tiny_on_cpu():
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_gpu.py"), "--tiny", "--json", "--seq", "32",
                          "--steps", "1", "--warmup", "0", "--peak_tflops", "1"], capture_output=True, text=True,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout)
    arms = [r["arm"] for r in doc["rows"]]
    assert arms == ["student1", "student2", "mixture_separate", "mixture_full"]
    for r in doc["rows"]:
        assert r["step_s"] > 0 and r["tokens_per_s"] > 0 and r["seq"] == 32
    studs = [r for r in doc["rows"] if r["arm"].startswith("student")]
    assert all(0 < r["mfu"] < 1 for r in studs)  # 1 TFLOP/s "peak": a CPU reaches a small, positive share
    full = doc["rows"][3]
    assert full["over_separate_runs"] == pytest.approx(full["step_s"] / (studs[0]["step_s"] + studs[1]["step_s"]),
                                                       abs=2e-3)
    assert doc["targets"]["mfu_target"] == 0.4 and not math.isnan(doc["targets"]["student_mfu_min"])
    assert time.perf_counter() - t0 < 120
