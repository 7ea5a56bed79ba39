"""Nothing paid for is lost, nothing good is overwritten (issue 12, items 1-6, 11, 20).

Real conditions only: a read-only bind mount in a private mount namespace (``unshare -m``), a
small tmpfs filled to the brim, real concurrent ``distill prompt`` processes, real ``SIGKILL``
of ``regen-correct`` between two renames, the real ``openai`` client against the local server.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_openai_server import FakeTeacherServer

from distill.commands import main
from distill.data.jsonl import atomic_write_jsonl, atomic_write_text, correct_only

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OPENAI_API_KEY": "sk-test"}
ROWS = [{"id": f"q{i}", "question": f"What is {i} plus {i}?", "gold_answer": str(2 * i)} for i in range(4)]

is_root = os.geteuid() == 0
needs_root = pytest.mark.skipif(not is_root, reason="needs root: mounts a tmpfs / read-only bind mount")


def responder(prompt: str, model: str) -> str:
    """Right answers, except q3: it gets a wrong one (no verified path for q3)."""
    i = int(prompt.split("Question: ", 1)[1].split()[2])
    ans = 2 * i + (1 if i == 3 else 0)
    return f"{i} plus {i} is {ans}. So the answer is \\boxed{{{ans}}}."


def write_rows(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def prompt_args(root: Path, url: str, *extra: str) -> list[str]:
    return ["prompt", "--root", str(root), "--dataset", "gsm8k", "--n", "2", "--styles", "cot,plain",
            "--base-url", url, "--no-progress", "--max-attempts", "2", "--retry-base", "0.01", *extra]


def cli(*args: str, timeout: float = 120, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    cmd = [*(prefix or []), sys.executable, "-m", "distill.commands", *args]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=timeout)


def read_only(d: Path) -> list[str]:
    """Command prefix: run in a private mount namespace where ``d`` is a read-only bind mount (gone
    with the process: nothing to clean up)."""
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux unshare for a read-only bind mount")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f'mount --bind "{d}" "{d}"'], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a private mount namespace here: {probe.stderr.decode().strip()}")
    script = f'mount --bind "{d}" "{d}" && mount -o remount,bind,ro "{d}" && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, "sh"]


@pytest.fixture
def tmpfs(tmp_path):
    """Mount small tmpfs folders (``mount(path, size)``); every one is unmounted at teardown."""
    mounted: list[Path] = []

    def mount(path: Path, size: str = "64k") -> Path:
        path.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
        mounted.append(path)
        return path

    yield mount
    for p in reversed(mounted):
        subprocess.run(["umount", "-l", str(p)], check=False)


def fill(d: Path) -> None:
    """Fill the file system of ``d`` until a write fails with ENOSPC."""
    with open(d / "filler.bin", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == 28, exc
    with open(d / "filler2.bin", "wb", buffering=0) as fh:  # the last partial page
        try:
            while True:
                fh.write(b"\0")
        except OSError:
            pass


def one_line_error(err: str, *needles: str) -> None:
    assert err.count("\n") == 1 and err.startswith("distill "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, (n, err)


# -- item 1: every output is checked before the first request ----------------------------------------------

@needs_root
def test_read_only_root_fails_before_any_request(tmp_path):
    root = tmp_path / "data"
    src = write_rows(root / "gsm8k" / "test.jsonl", ROWS)
    with FakeTeacherServer(responder=responder) as srv:
        r = cli(*prompt_args(root, srv.url), prefix=read_only(root))
        assert r.returncode == 2, r.stderr
        one_line_error(r.stderr, str(src.parent), "Read-only file system")
        assert srv.requests == 0  # nothing paid for
        # the data root is writable but --summary-json points into a read-only folder
        ro = tmp_path / "ro"
        ro.mkdir()
        r = cli(*prompt_args(root, srv.url, "--summary-json", str(ro / "s.json")), prefix=read_only(ro))
        assert r.returncode == 2, r.stderr
        one_line_error(r.stderr, str(ro / "s.json"), "Read-only file system")
        assert srv.requests == 0
        assert not src.with_name("test.enriched.jsonl").exists()


@needs_root
def test_full_root_fails_before_any_request(tmp_path, tmpfs):
    root = tmpfs(tmp_path / "data")
    src = write_rows(root / "gsm8k" / "test.jsonl", ROWS)
    fill(root)
    with FakeTeacherServer(responder=responder) as srv:
        rc = main(prompt_args(root, srv.url))
        assert srv.requests == 0
    assert rc == 2
    assert not src.with_name("test.enriched.jsonl").exists()


# -- item 2: a failed rerun keeps the good answers ----------------------------------------------------------

def test_failed_rerun_keeps_good_answers_and_marks_them_stale(tmp_path, capsys):
    src = write_rows(tmp_path / "gsm8k" / "test.jsonl", ROWS)
    e_path, c_path = src.with_name("test.enriched.jsonl"), src.with_name("test.correct.jsonl")
    with FakeTeacherServer(responder=responder) as srv:
        assert main(prompt_args(tmp_path, srv.url, "--model", "teacher-a")) == 0
    before, before_correct = read(e_path), read(c_path)
    capsys.readouterr()
    # new cache keys (another model) and every request fails: nothing good may be replaced
    with FakeTeacherServer(responder=responder, faults=[("Question", ["500"] * 100)]) as srv:
        assert main(prompt_args(tmp_path, srv.url, "--model", "teacher-b")) == 1
        assert srv.requests == 8 * 2
    out = capsys.readouterr().out
    after = read(e_path)
    for old, new in zip(before, after):
        assert new["responses"] == old["responses"] and all(new["responses"])
        assert new["correct_flags"] == old["correct_flags"] and new["preds"] == old["preds"]
        assert new["stale"] == [True, True] and new["failed"] == [False, False]
    assert [c["responses"] for c in read(c_path)] == [c["responses"] for c in before_correct]
    assert "KEPT 8 earlier answer(s)" in out and "8 stale" in out and "FAILED paths (8" in out
    # same settings, cache lost, requests fail: the answer is kept and it is not stale (same key)
    src.with_name("test.cache.jsonl").unlink()
    with FakeTeacherServer(responder=responder, faults=[("Question", ["500"] * 100)]) as srv:
        assert main(prompt_args(tmp_path, srv.url, "--model", "teacher-a")) == 1
    assert [r["stale"] for r in read(e_path)] == [[False, False]] * 4  # teacher-a's answers, teacher-a asked
    for r in read(e_path):
        assert r["responses"] == before[int(r["id"][1:])]["responses"]


# -- item 3: two runs on one data root ----------------------------------------------------------------------

def test_second_run_on_same_source_is_refused_and_nothing_is_paid_twice(tmp_path, capsys):
    src = write_rows(tmp_path / "gsm8k" / "test.jsonl", ROWS)
    total = len(ROWS) * 2
    with FakeTeacherServer(responder=responder, latency=0.3) as srv:
        cmd = [sys.executable, "-m", "distill.commands", *prompt_args(tmp_path, srv.url, "--concurrency", "1")]
        first = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while srv.requests < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert first.poll() is None, "the first run ended before the second started"
        rc = main(prompt_args(tmp_path, srv.url))
        err = capsys.readouterr().err
        out, first_err = first.communicate(timeout=120)
        assert first.returncode == 0, first_err
        assert srv.requests == total  # every path paid for once
    assert rc == 2
    one_line_error(err, str(src), "another run holds", f"pid {first.pid}")
    assert all(all(r["responses"]) for r in read(src.with_name("test.enriched.jsonl")))
    # both the refused run and the finished one leave no lock file beside the source
    assert not list(src.parent.glob(".*.lock")), sorted(p.name for p in src.parent.iterdir())


def test_a_released_lock_file_is_removed_and_a_stale_one_is_locked_again(tmp_path):
    from distill.data.commit import LockedError, SourceLock

    src = write_rows(tmp_path / "gsm8k" / "test.jsonl", ROWS)
    first = SourceLock(src, purpose="prompt")
    assert first.path.is_file()
    with pytest.raises(LockedError, match="another run holds"):
        SourceLock(src, purpose="judge")
    first.release()
    assert not first.path.exists()
    first.path.write_text("prompt pid 999999 since long ago")  # left by a killed run: not held by anyone
    again = SourceLock(src, purpose="regen-correct")
    assert "regen-correct pid" in again.path.read_text()
    again.release()
    assert not again.path.exists()


# -- item 4: disk full mid-run ------------------------------------------------------------------------------

@needs_root
def test_disk_full_mid_run_fails_with_one_line_and_keeps_only_whole_records(tmp_path, tmpfs, capsys):
    from distill.demo.synthetic import ArithConfig, write_splits

    root = tmpfs(tmp_path / "data", "64k")
    paths = write_splits(root, ArithConfig(n_train=2, n_test=60))
    cache = paths["test"].with_name("test.cache.jsonl")
    args = ["prompt", "--root", str(root), "--dataset", "arith", "--backend", "scripted", "--no-progress",
            "--concurrency", "4"]
    assert main(args) == 2  # 360 paths of ~400 bytes do not fit in 64 KiB
    err = capsys.readouterr().err
    one_line_error(err, str(cache), "No space left on device")
    data = cache.read_bytes()
    assert data.endswith(b"\n")  # no torn record left behind
    saved = [json.loads(line) for line in data.splitlines()]
    assert 0 < len(saved) < 360 and all(rec["text"] for rec in saved)
    assert not paths["test"].with_name("test.enriched.jsonl").exists()
    subprocess.run(["mount", "-o", "remount,size=8m", str(root)], check=True)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"360 ({len(saved)} from cache, {360 - len(saved)} asked now, 0 failed)" in out


# -- item 5: file modes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640)])
def test_atomic_writes_respect_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "train_summary.json", "{}\n")
        atomic_write_jsonl(tmp_path / "router_logs_epoch1.jsonl", [{"a": 1}])
        from distill.demo.synthetic import ArithConfig, write_splits

        paths = write_splits(tmp_path, ArithConfig(n_train=2, n_test=3))
        assert main(["prompt", "--root", str(tmp_path), "--dataset", "arith", "--backend", "scripted",
                     "--no-progress", "--summary-json", str(tmp_path / "summary.json")]) == 0
    finally:
        os.umask(old)
    test = paths["test"]
    for p in (tmp_path / "train_summary.json", tmp_path / "router_logs_epoch1.jsonl", test,
              test.with_name("test.enriched.jsonl"), test.with_name("test.correct.jsonl"),
              test.with_name("test.cache.jsonl"), tmp_path / "summary.json"):
        assert oct(p.stat().st_mode & 0o777) == oct(mode), p
    # rewriting an existing file keeps its mode, as a plain write does
    os.chmod(tmp_path / "train_summary.json", 0o664)
    atomic_write_text(tmp_path / "train_summary.json", "{}\n")
    assert (tmp_path / "train_summary.json").stat().st_mode & 0o777 == 0o664


# -- item 6: regen-correct all or nothing, half-done pairs repaired, leftovers removed -----------------------

def _enriched_tree(root: Path) -> list[Path]:
    """Two enriched files (gsm8k/a and gsm8k/b/...) with stale flags to be re-scored."""
    out = []
    for sub in ("a", "b"):
        rows = [{**r, "prompts": ["p", "p"], "styles": ["cot", "plain"],
                 "responses": [f"So \\boxed{{{r['gold_answer']}}}.", "no idea"],
                 "preds": ["x", "x"], "correct_flags": [False, False]} for r in ROWS]
        out.append(write_rows(root / "gsm8k" / sub / "test.enriched.jsonl", rows))
    return out


def _pair_consistent(enriched: Path) -> bool:
    rows = read(enriched)
    want = [correct_only(r) for r in rows if any(r["correct_flags"])]
    c = enriched.with_name("test.correct.jsonl")
    return c.exists() and read(c) == want


KILL_AT_FIRST_JSONL_RENAME = (
    "import os, signal, sys\n"
    "real = os.replace\n"
    "def replace(a, b):\n"
    "    real(a, b)\n"
    "    if str(b).endswith('.jsonl'):\n"
    "        os.kill(os.getpid(), signal.SIGKILL)\n"
    "os.replace = replace\n"
    "from distill.commands import main\n"
    "sys.exit(main(sys.argv[1:]))\n")

KILL_AT_FIRST_TEMP_FSYNC = (
    "import os, signal, sys\n"
    "real = os.fsync\n"
    "def fsync(fd):\n"
    "    real(fd)\n"
    "    if os.readlink(f'/proc/self/fd/{fd}').endswith('.tmp'):\n"
    "        os.kill(os.getpid(), signal.SIGKILL)\n"
    "os.fsync = fsync\n"
    "from distill.commands import main\n"
    "sys.exit(main(sys.argv[1:]))\n")


@needs_root
def test_regen_root_is_all_or_nothing_when_a_later_file_cannot_be_written(tmp_path, tmpfs):
    a, b = _enriched_tree(tmp_path)
    shutil.move(str(b.parent), str(tmp_path / "b_saved"))
    tmpfs(b.parent, "64k")
    for f in (tmp_path / "b_saved").iterdir():
        shutil.copy(f, b.parent / f.name)
    fill(b.parent)
    a_before, b_before = a.read_bytes(), b.read_bytes()
    r = cli("regen-correct", "--root", str(tmp_path), "--dataset", "gsm8k", "--workers", "1")
    assert r.returncode == 2, r.stderr
    one_line_error(r.stderr, str(b.parent), "No space left on device")
    assert a.read_bytes() == a_before and b.read_bytes() == b_before  # no file replaced
    assert not a.with_name("test.correct.jsonl").exists()
    assert not [p for p in a.parent.iterdir() if p.name.endswith(".tmp")]


def test_regen_killed_between_renames_is_completed_by_the_next_run(tmp_path):
    a, b = _enriched_tree(tmp_path)
    r = subprocess.run([sys.executable, "-c", KILL_AT_FIRST_JSONL_RENAME, "regen-correct", "--root", str(tmp_path),
                        "--dataset", "gsm8k", "--workers", "1"], env=ENV, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert not _pair_consistent(a)  # the kill left a half-done pair
    # the next run finishes that commit first, even though its own work then stops on a bad new file
    write_rows(tmp_path / "gsm8k" / "c" / "test.enriched.jsonl", [{"id": "q0", "question": "?"}])
    r = cli("regen-correct", "--root", str(tmp_path), "--dataset", "gsm8k", "--workers", "1")
    assert r.returncode == 2 and "test.enriched.jsonl:1" in r.stderr, r.stderr
    assert _pair_consistent(a) and _pair_consistent(b)
    assert [r["correct_flags"] for r in read(a)] == [[True, False]] * 4
    assert not list(tmp_path.rglob(".*.tmp")) and not list(tmp_path.rglob(".*.commit.json"))


def test_temp_files_of_a_killed_regen_are_removed_by_the_next_run(tmp_path):
    a, b = _enriched_tree(tmp_path)
    r = subprocess.run([sys.executable, "-c", KILL_AT_FIRST_TEMP_FSYNC, "regen-correct", "--root", str(tmp_path),
                        "--dataset", "gsm8k", "--workers", "1"], env=ENV, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert list(tmp_path.rglob(".*.tmp")), "the killed run left no temporary file"
    r = cli("regen-correct", "--root", str(tmp_path), "--dataset", "gsm8k", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert not list(tmp_path.rglob(".*.tmp"))
    assert "temporary file(s) of killed runs" in r.stdout
    assert _pair_consistent(a) and _pair_consistent(b)


# -- item 11: hand-damaged cache records --------------------------------------------------------------------

def test_damaged_cache_records_are_skipped_reported_and_asked_again(tmp_path, capsys):
    src = write_rows(tmp_path / "gsm8k" / "test.jsonl", ROWS)
    cache = src.with_name("test.cache.jsonl")
    with FakeTeacherServer(responder=responder) as srv:
        assert main(prompt_args(tmp_path, srv.url)) == 0
        lines = cache.read_text().splitlines()
        assert len(lines) == 8
        recs = [json.loads(x) for x in lines]
        del recs[0]["text"]  # line 1: no 'text'
        recs[1]["text"] = 5  # line 2: a non-string answer
        lines = [json.dumps(r) for r in recs]
        lines[2] = lines[2][:30]  # line 3: bad JSON (not the torn last line of a crash)
        recs[3]["text"] = ["a", "list"]
        lines[3] = json.dumps(recs[3])  # line 4: a list
        cache.write_text("\n".join(lines) + "\n")
        capsys.readouterr()
        assert main(prompt_args(tmp_path, srv.url)) == 0
        assert srv.requests == 8 + 4  # exactly the four damaged answers are asked again
    out = capsys.readouterr().out
    assert "skipped 4 damaged cache record(s)" in out and "line 1: no 'text'" in out
    assert "line 2: 'text' is int" in out and "line 3: not valid JSON" in out
    for row in read(src.with_name("test.enriched.jsonl")):
        assert all(isinstance(t, str) and t for t in row["responses"])
    capsys.readouterr()
    with FakeTeacherServer(responder=responder) as srv:  # answered again: nothing asked, and only the
        assert main(prompt_args(tmp_path, srv.url)) == 0 and srv.requests == 0  # keyless line still noted
    out = capsys.readouterr().out
    assert "skipped 1 damaged cache record(s) (line 3: not valid JSON)" in out


# -- item 20: *.correct.jsonl holds only rows with a verified path -------------------------------------------

def test_correct_files_hold_only_rows_with_a_verified_path(tmp_path):
    src = write_rows(tmp_path / "gsm8k" / "test.jsonl", ROWS)
    with FakeTeacherServer(responder=responder) as srv:
        assert main(prompt_args(tmp_path, srv.url)) == 0
    correct = read(src.with_name("test.correct.jsonl"))
    assert [c["id"] for c in correct] == ["q0", "q1", "q2"]  # q3 has no verified path
    assert all(c["responses"] and c["path_idx"] == [0, 1] for c in correct)
    # regen-correct writes the same format
    e_path = src.with_name("test.enriched.jsonl")
    rows = read(e_path)
    rows[0]["responses"] = ["wrong: \\boxed{7}", "also \\boxed{9}"]
    atomic_write_jsonl(e_path, rows)
    assert main(["regen-correct", "--input", str(e_path), "--workers", "1"]) == 0
    assert [c["id"] for c in read(src.with_name("test.correct.jsonl"))] == ["q1", "q2"]


def test_prompt_killed_between_its_two_renames_is_completed_by_the_next_run(tmp_path, capsys):
    src = write_rows(tmp_path / "gsm8k" / "test.jsonl", ROWS)
    e_path = src.with_name("test.enriched.jsonl")
    with FakeTeacherServer(responder=responder) as srv:
        r = subprocess.run([sys.executable, "-c", KILL_AT_FIRST_JSONL_RENAME, *prompt_args(tmp_path, srv.url)],
                           env=ENV, capture_output=True, text=True, timeout=120)
        assert r.returncode == -signal.SIGKILL, r.stderr
    assert e_path.exists() and not _pair_consistent(e_path)  # enriched renamed, correct not yet
    # the next run stops at once (the key is revoked) but first completes the interrupted commit
    with FakeTeacherServer(responder=responder, faults=[("Question", ["401"] * 100)]) as srv:
        assert main(prompt_args(tmp_path, srv.url, "--n", "3", "--styles", "cot,plain,program")) == 2
    assert "401" in capsys.readouterr().err
    assert _pair_consistent(e_path)
    assert not list(tmp_path.rglob(".*.tmp")) and not list(tmp_path.rglob(".*.commit.json"))


@needs_root
def test_disk_full_while_writing_the_results_fails_with_one_line(tmp_path, tmpfs, capsys):
    from distill.demo.synthetic import ArithConfig, write_splits

    root = tmpfs(tmp_path / "data", "2m")
    paths = write_splits(root, ArithConfig(n_train=2, n_test=60))
    e_path, c_path = (paths["test"].with_name(f"test.{k}.jsonl") for k in ("enriched", "correct"))
    args = ["prompt", "--root", str(root), "--dataset", "arith", "--backend", "scripted", "--no-progress"]
    assert main(args) == 0
    e_path.unlink()
    c_path.unlink()
    cache_before = paths["test"].with_name("test.cache.jsonl").read_bytes()
    fill(root)
    filler = root / "filler.bin"
    os.truncate(filler, filler.stat().st_size - 16384)  # room for the checks, not for the results
    capsys.readouterr()
    assert main(args) == 2
    one_line_error(capsys.readouterr().err, str(e_path), "No space left on device")
    assert paths["test"].with_name("test.cache.jsonl").read_bytes() == cache_before  # every answer kept
    assert not e_path.exists() and not c_path.exists()
    assert not list(root.rglob(".*.tmp"))


def test_an_interrupted_commit_never_overwrites_a_newer_write(tmp_path):
    a, b = _enriched_tree(tmp_path)
    r = subprocess.run([sys.executable, "-c", KILL_AT_FIRST_JSONL_RENAME, "regen-correct", "--root", str(tmp_path),
                        "--dataset", "gsm8k", "--workers", "1"], env=ENV, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr
    rows = read(b)
    for row in rows:
        row["responses"] = ["rewritten later: \\boxed{-1}", "no idea"]
    atomic_write_jsonl(b, rows)  # someone rewrites b after the killed run
    r = cli("regen-correct", "--root", str(tmp_path), "--dataset", "gsm8k", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert all(row["responses"][0].startswith("rewritten later") for row in read(b))
    assert _pair_consistent(a) and _pair_consistent(b)
    assert not list(tmp_path.rglob(".*.tmp")) and not list(tmp_path.rglob(".*.commit.json"))
