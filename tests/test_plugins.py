"""Task and backend registries: ``register_*`` in-process, entry points for every process, lazily."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

from distill.data.tasks import BUILTIN_TASKS, TASKS, TaskSpec, UnknownTaskError, get_task, register_task, task_names
from distill.errors import ConfigError
from distill.plugins import PluginRegistry
from distill.prompting.backends import BACKENDS, backend_names, get_backend, register_backend


@pytest.fixture
def restore_registries():
    saved = [(r, dict(r._items), set(r._tried)) for r in (TASKS, BACKENDS)]
    yield
    for r, items, tried in saved:
        r._items, r._tried = items, tried


class _EP:
    def __init__(self, name, obj, value=None):
        self.name, self._obj, self.value = name, obj, value or f"pkg.mod:{name}"
        self.loads = 0

    def load(self):
        self.loads += 1
        if isinstance(self._obj, Exception):
            raise self._obj
        return self._obj


def _py(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_demo_task_and_backend_are_entry_points_not_builtins():
    assert "arith" not in {s.name for s in BUILTIN_TASKS}
    assert TASKS._entry_points()["arith"].value == "distill.demo.synthetic:TASK_SPEC"
    assert BACKENDS._entry_points()["scripted"].value == "distill.demo.teacher:scripted_backend"
    assert get_task("arith").kind == "math" and "arith" in task_names()
    assert backend_names()[:5] == ["openai", "gemini", "openai-batch", "reference", "scripted"]
    # lazily: a built-in lookup never imports the demo; the first lookup of arith does
    assert _py("import sys; from distill.data.tasks import get_task; get_task('gsm8k'); "
               "from distill.prompting.backends import get_backend; "
               "print(any(m.startswith('distill.demo') for m in sys.modules))") == "False"
    assert _py("import sys; from distill.data.tasks import get_task; get_task('arith'); "
               "print('distill.demo.synthetic' in sys.modules)") == "True"


def test_unknown_names_list_builtins_and_plugins():
    with pytest.raises(UnknownTaskError, match=r"valid tasks: .*arith.*gsm8k"):
        get_task("gsm9k")
    with pytest.raises(ConfigError, match="valid backends: openai, gemini, openai-batch, reference, scripted"):
        get_backend("nope")


def test_register_task_and_backend(restore_registries):
    spec = register_task(TaskSpec("my_math", "math", ("id", "question", "gold_answer")))
    assert get_task("my_math") is spec and "my_math" in TASKS and "my_math" in task_names()
    with pytest.raises(ValueError, match="already registered"):
        register_task(TaskSpec("my_math", "mcq", ("id",)))
    assert register_task(TaskSpec("my_math", "yesno", ("id",)), replace=True).kind == "yesno"
    with pytest.raises(ConfigError, match="kind must be one of math, mcq, yesno, nli"):
        register_task(TaskSpec("bad", "essay", ("id",)))

    made = []
    register_backend("echo", lambda **opts: made.append(opts) or "backend-object")
    assert get_backend("echo", model="m", seed=3) == "backend-object" and made == [{"model": "m", "seed": 3}]
    assert "echo" in backend_names()
    with pytest.raises(TypeError):
        register_backend("x", "not callable")


def test_a_task_registered_in_process_is_scored_by_the_worker_pool(restore_registries):
    """Verifier workers are fresh interpreters that never saw register_task: they get the kind."""
    from distill.verify.batch import score_batch

    register_task(TaskSpec("only_here", "yesno", ("id", "question", "gold_answer")))
    res = score_batch("only_here", [("So the answer is Yes.", {"gold_answer": "Yes"}),
                                    ("The answer is No.", {"gold_answer": "Yes"})], workers=1)
    assert [v.correct for v in res.verdicts] == [True, False] and res.errors == 0


def test_entry_points_load_lazily_by_name_and_a_broken_one_is_reported():
    class Reg(PluginRegistry):
        def _check(self, name, obj):
            if not isinstance(obj, TaskSpec) or obj.name != name:
                raise ValueError(f"bad spec for {name}")
            return obj

    reg = Reg("test.group", "task", {"base": TaskSpec("base", "math", ())})
    eps = {"one": _EP("one", TaskSpec("one", "math", ())), "two": _EP("two", TaskSpec("two", "mcq", ())),
           "wrong": _EP("wrong", TaskSpec("other", "math", ())), "boom": _EP("boom", ImportError("no module x"))}
    reg._eps = eps
    assert reg["base"].name == "base" and all(e.loads == 0 for e in eps.values())  # built-in: nothing loaded
    assert reg["one"].name == "one" and eps["one"].loads == 1 and eps["two"].loads == 0  # only the one asked for
    assert reg["one"] is reg["one"] and eps["one"].loads == 1
    with pytest.raises(KeyError):
        reg["nothing"]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert sorted(reg) == ["base", "one", "two"]  # listing loads the rest; broken ones are left out
    msgs = " | ".join(str(w.message) for w in seen)
    assert "'boom'" in msgs and "no module x" in msgs and "'wrong'" in msgs and "bad spec" in msgs
    assert "failed to load: ImportError: no module x" in reg.failure_note("boom") and reg.failure_note("one") == ""
    assert "boom" not in reg and eps["boom"].loads == 1  # not retried on every lookup


def test_prompt_help_lists_plugin_backends():
    out = subprocess.run([sys.executable, "-m", "distill.commands", "prompt", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "openai | gemini | openai-batch | reference | scripted" in out.stdout
