"""Import layers of the ``distill`` package, read from the source with ``ast`` (nothing is imported).

The layers, lowest first. A module may import modules of its own layer and of lower layers, never
of a higher one:

 0 base       distill/__init__.py, errors.py, plugins.py, options.py, progress.py: the package marker, DistillError and
              ConfigError, the plug-in registries fed by entry points, typed option fields, progress bars (stdlib only, tqdm lazily)
 1 data       distill/data/, distill/configs/: task registry, JSONL I/O and DataError; the built-in
              train/accelerate/deepspeed config files and their finder
 2 verify     distill/verify/: answer extraction and equivalence, solvers, batch scoring in worker
              processes, re-scoring enriched logs
 3 losses     distill/losses/: pure loss functions (token NLL, routing cost and balance, peer losses)
 4 models     distill/models/: the tiny local model factory (tests and demo)
 5 prompting  distill/prompting/: teacher backends, prompts and styles, response cache, retry,
              request engine, LLM judge
 6 students   distill/students/: tokenizers, path datasets and batching, loading students, evaluation
 7 router     distill/router/, distill/peer/: the CoT router, its path encoder and posrate; peer
   + peer     teaching (cross-tokenizer alignment, learned ensemble)
 8 train      distill/train/: the run config, setup, engine, mixture model, checkpoints, metrics
 9 product    distill/cli.py, distill/commands/, distill/benchmarks.py: the ``distill`` command and
              its subcommands (the top product layer)
10 demo       distill/demo/: the offline demo; above everything, and nothing else imports it: it
              plugs in through entry points declared in pyproject.toml

What counts as an import (an edge of the graph): ``import`` / ``from ... import`` statements at
module level *and* inside functions, relative ones resolved, ``if TYPE_CHECKING:`` ones included
(a lower layer naming a higher layer's type still depends on it), and -- in a module that calls
``import_module`` -- every string that names a distill module (``"distill.x.y"`` or
``"distill.x.y:attr"``), such as a dispatcher's table of subcommand modules. Strings in
pyproject.toml (entry points) are not source and do not count.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "distill"

#: Layer name -> the modules in it: a package name covers the package and all its submodules, except
#: ``distill`` itself, which stands for distill/__init__.py only.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("distill", "distill.errors", "distill.plugins", "distill.options", "distill.progress")),
    ("data", ("distill.data", "distill.configs")),
    ("verify", ("distill.verify",)),
    ("losses", ("distill.losses",)),
    ("models", ("distill.models",)),
    ("prompting", ("distill.prompting",)),
    ("students", ("distill.students",)),
    ("router+peer", ("distill.router", "distill.peer")),
    ("train", ("distill.train",)),
    ("product", ("distill.cli", "distill.commands", "distill.benchmarks")),
    ("demo", ("distill.demo",)),
]
DEMO = "distill.demo"
_MODULE_STRING = re.compile(r"distill(?:\.\w+)+(?::\w+(?:\.\w+)*)?")


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    where: str  # path:line
    text: str
    kind: str  # "import", "function-level import", "type-checking import", "importlib string"

    def __str__(self) -> str:
        return f"{self.where}: {self.src} -> {self.dst} ({self.kind}: {self.text})"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The distill module ``name`` (or the deepest existing package above it) refers to."""
    mods, parts = modules(), name.split(".")
    while parts:
        if ".".join(parts) in mods:
            return ".".join(parts)
        parts.pop()
    return None


def layer_of(module: str) -> int | None:
    best = None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or (p != "distill" and module.startswith(p + "."))) and (best is None or len(p) > best[1]):
                best = (i, len(p))
    return None if best is None else best[0]


class _Imports(ast.NodeVisitor):
    def __init__(self, module: str, path: Path):
        self.module, self.path, self.is_pkg = module, path, path.name == "__init__.py"
        self.rel = path.relative_to(ROOT)
        self.depth = 0  # > 0 inside a function
        self.type_checking = 0
        self.edges: list[Edge] = []

    def _add(self, dst: str | None, node: ast.AST, text: str, kind: str | None = None) -> None:
        if dst is None or dst == self.module:
            return
        if kind is None:
            kind = ("type-checking import" if self.type_checking else
                    "function-level import" if self.depth else "import")
        self.edges.append(Edge(self.module, dst, f"{self.rel}:{node.lineno}", text, kind))

    def _function(self, node) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_If(self, node: ast.If) -> None:
        test = ast.unparse(node.test)
        if test in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            self.type_checking += 1
            for child in node.body:
                self.visit(child)
            self.type_checking -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == "distill" or alias.name.startswith("distill."):
                self._add(_resolve(alias.name), node, f"import {alias.name}")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.module.split(".") if self.is_pkg else self.module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            full = ".".join(base + ([node.module] if node.module else []))
        else:
            full = node.module or ""
        if full != "distill" and not full.startswith("distill."):
            return
        for alias in node.names:
            sub = f"{full}.{alias.name}"
            dst = sub if sub in modules() else _resolve(full)  # `from pkg import submodule` imports it
            self._add(dst, node, f"from {'.' * node.level}{node.module or ''} import {alias.name}")


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _calls_import_module(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Attribute) and f.attr == "import_module") or \
                    (isinstance(f, ast.Name) and f.id in ("import_module", "__import__")):
                return True
    return False


def scan(module: str, path: Path, source: str) -> list[Edge]:
    """The import edges out of one module's source."""
    tree = ast.parse(source, str(path))
    v = _Imports(module, path)
    v.visit(tree)
    if _calls_import_module(tree):  # a dispatcher: the module names it holds are imports too
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
                    and _MODULE_STRING.fullmatch(node.value)):
                name = node.value.split(":")[0]
                v._add(name if name in modules() else None, node, repr(node.value), "importlib string")
    return v.edges


@lru_cache(maxsize=1)
def edges() -> tuple[Edge, ...]:
    return tuple(e for module, path in modules().items() for e in scan(module, path, path.read_text(encoding="utf-8")))


def _cycles() -> list[list[Edge]]:
    """One concrete cycle (as its edges) per strongly connected component of the import graph."""
    graph: dict[str, dict[str, Edge]] = defaultdict(dict)
    for e in edges():
        graph[e.src].setdefault(e.dst, e)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[list[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan; the graph is ~100 nodes, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(modules()):
        if v not in index:
            strongconnect(v)
    cycles = []
    for comp in comps:  # shortest way back to the component's first module, by BFS inside it
        start, members = comp[0], set(comp)
        prev: dict[str, Edge] = {}
        frontier = [start]
        while frontier and start not in prev:
            nxt = []
            for v in frontier:
                for w, e in sorted(graph[v].items()):
                    if w in members and w not in prev:
                        prev[w] = e
                        nxt.append(w)
            frontier = nxt
        path, node = [], start
        while True:
            e = prev[node]
            path.append(e)
            node = e.src
            if node == start:
                break
        cycles.append(path[::-1])
    return cycles


def test_every_module_is_in_a_layer():
    """A new package or top-level module must be placed in LAYERS (and documented above)."""
    assert len(modules()) > 20, "the distill sources were not found"
    unplaced = sorted(m for m in modules() if layer_of(m) is None)
    assert not unplaced, f"modules in no layer (add them to LAYERS and the docstring): {unplaced}"


def test_no_import_cycles():
    cycles = _cycles()
    assert not cycles, "import cycles among distill modules:\n" + "\n".join(
        " -> ".join([c[0].src] + [e.dst for e in c]) + "\n    " + "\n    ".join(map(str, c)) for c in cycles)


def test_nothing_outside_the_demo_imports_it():
    """The demo plugs in through entry points (pyproject.toml); library and CLI never name it."""
    bad = [e for e in edges()
           if (e.dst == DEMO or e.dst.startswith(DEMO + ".")) and not (e.src == DEMO or e.src.startswith(DEMO + "."))]
    assert not bad, "modules outside distill/demo/ import the demo:\n" + "\n".join(map(str, bad))


def test_lower_layers_never_import_higher_ones():
    bad = []
    for e in edges():
        src, dst = layer_of(e.src), layer_of(e.dst)
        if src is not None and dst is not None and dst > src:
            bad.append(f"{e}  [layer {LAYERS[src][0]} imports layer {LAYERS[dst][0]}]")
    assert not bad, "imports against the layer order (lowest first: " + \
        " < ".join(name for name, _ in LAYERS) + "):\n" + "\n".join(bad)


def test_the_scanner_sees_every_kind_of_import():
    """The checks are only as good as the scanner: run it on a known source (as distill/data/tasks.py)."""
    source = (
        '"""Docstrings naming distill.models are not imports."""\n'
        "import importlib\n"
        "from typing import TYPE_CHECKING\n"
        "import distill.errors\n"
        "from . import jsonl\n"
        "from ..verify import types as t\n"
        "if TYPE_CHECKING:\n"
        "    from distill.verify import Verdict\n"
        "NAMES = {'errors': ('distill.errors', 'help'), 'gone': 'distill.no_such_module'}\n"
        "def load(name):\n"
        "    from distill import errors\n"
        "    return importlib.import_module(NAMES[name][0])\n"
    )
    got = {(e.dst, e.kind, e.where) for e in scan("distill.data.tasks", PKG / "data" / "tasks.py", source)}
    where = "distill/data/tasks.py:"
    assert got == {
        ("distill.errors", "import", where + "4"),
        ("distill.data.jsonl", "import", where + "5"),
        ("distill.verify.types", "import", where + "6"),
        ("distill.verify", "type-checking import", where + "8"),
        ("distill.errors", "importlib string", where + "9"),
        ("distill.errors", "function-level import", where + "11"),
    }, got
    assert len(edges()) > 50 and {"import", "function-level import"} <= {e.kind for e in edges()}
