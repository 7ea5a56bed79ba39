"""The ``distill`` command lists its subcommands (built-in and plug-in) and starts without importing torch."""

import subprocess
import sys

from distill.commands import COMMANDS, commands


def run(*args):
    return subprocess.run([sys.executable, "-m", "distill.commands", *args], capture_output=True, text=True)


def test_help_lists_subcommands():
    out = run("--help")
    assert out.returncode == 0
    for name in ("prompt", "regen-correct", "judge", "train", "posrate", "eval", "demo", "bench", "configs"):
        assert name in out.stdout
        assert name in commands()
    assert "demo" not in COMMANDS, "distill demo is a plug-in command (entry point), not a built-in"


def test_unknown_subcommand_fails():
    out = run("frobnicate")
    assert out.returncode == 2
    assert "invalid choice" in out.stderr


def test_help_does_not_import_torch():
    code = (
        "import sys\nfrom distill.commands import main\n"
        "for argv in (['--help'], ['train', '--help'], ['demo', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip().endswith("False"), out.stderr[-2000:]


def test_command_modules_hold_only_the_command_line():
    """Every built-in subcommand module defines its flags and calls into the library: no module
    outside distill/commands/ defines add_arguments (the old per-package cli modules are gone)."""
    import importlib
    from pathlib import Path

    import distill

    for name, (module, _) in COMMANDS.items():
        if name == "eval":  # distill.commands.eval is written separately
            continue
        mod = importlib.import_module(module)
        assert callable(mod.add_arguments) and callable(mod.run), name
    pkg = Path(distill.__file__).parent
    stray = [str(p.relative_to(pkg)) for p in pkg.rglob("*.py")
             if "def add_arguments(" in p.read_text() and p.parts[-2] != "commands" and p.name != "command.py"]
    assert not stray, f"argument definitions outside distill/commands/: {stray}"


def test_train_help_lists_the_train_flags_and_the_launch_forms():
    out = run("train", "--help")
    assert out.returncode == 0, out.stderr
    for flag in ("--config", "--model1", "--max_steps", "--routing", "accelerate launch", "-m distill.commands.train"):
        assert flag in out.stdout, flag


def test_plugin_command_from_an_entry_point_and_a_broken_one(monkeypatch, capsys):
    """A package's ``distill.commands`` entry point becomes ``distill NAME``; a module without
    add_arguments/run is reported (warning) and the command stays unknown."""
    import types
    import warnings

    from distill import commands as cmds

    good = types.ModuleType("fake_cmd")
    good.HELP = "a fake command"
    good.add_arguments = lambda p: p.add_argument("--x", type=int, default=1)
    good.run = lambda args: print(f"x={args.x}") or 0
    bad = types.ModuleType("bad_cmd")

    class EP:
        def __init__(self, name, obj):
            self.name, self.value, self._obj = name, f"pkg:{name}", obj

        def load(self):
            return self._obj

    reg = cmds.CommandRegistry("distill.commands", "command")
    reg._eps = {"fake": EP("fake", good), "broken": EP("broken", bad)}
    monkeypatch.setattr(cmds, "PLUGIN_COMMANDS", reg)
    assert cmds.main(["fake", "--x", "7"]) == 0
    assert capsys.readouterr().out.strip() == "x=7"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        names = cmds.commands()
    assert names["fake"] == "a fake command" and "broken" not in names
    assert any("broken" in str(w.message) and "not a command module" in str(w.message) for w in seen)


def test_train_entry_points_report_config_errors_in_one_line(tmp_path):
    """``distill train``, ``python -m distill.commands.train`` (what ``accelerate launch -m`` runs) and
    the old ``launch/train_moe.py`` shim are one command; a bad option fails before any model loads."""
    from pathlib import Path

    shim = Path(__file__).resolve().parents[1] / "launch" / "train_moe.py"
    bad = ["--config", "demo", "--model1", "a", "--model2", "b", "--bs", "0"]
    for cmd, prog in (([sys.executable, "-m", "distill.commands", "train"], "distill train"),
                      ([sys.executable, "-m", "distill.commands.train"], "distill train"),
                      ([sys.executable, str(shim)], "train_moe.py")):
        out = subprocess.run(cmd + bad, cwd=tmp_path, capture_output=True, text=True)
        assert out.returncode == 2, out.stderr[-2000:]
        err = out.stderr.strip()
        assert len(err.splitlines()) == 1 and err.startswith(f"{prog}: error: ") and "--bs" in err, err
        assert "torch" not in err
    out = subprocess.run([sys.executable, "-m", "distill.commands", "train", "--config", "nope"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 2 and "built-in: demo, demo_formal, gsm8k_lora" in out.stderr, out.stderr
