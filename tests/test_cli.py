"""The ``distill`` command lists its subcommands and starts without importing torch."""

import subprocess
import sys

from distill.cli import COMMANDS


def run(*args):
    return subprocess.run([sys.executable, "-m", "distill.cli", *args], capture_output=True, text=True)


def test_help_lists_subcommands():
    out = run("--help")
    assert out.returncode == 0
    for name in ("prompt", "regen-correct", "judge", "posrate", "eval", "demo", "bench"):
        assert name in out.stdout
        assert name in COMMANDS


def test_unknown_subcommand_fails():
    out = run("frobnicate")
    assert out.returncode == 2
    assert "invalid choice" in out.stderr


def test_help_does_not_import_torch():
    code = (
        "import sys\nfrom distill.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip().endswith("False")
