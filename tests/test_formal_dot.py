"""DOT verdicts with the real Graphviz ``dot`` (distill/verify/formal/dot.py)."""

from __future__ import annotations

import random
import shutil
import sys
import time
from pathlib import Path

import pytest

from distill.verify.formal import FormalVerdict, extract_program, validate_program, verify_program
from distill.verify.formal import dot

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz `dot` on PATH")


@pytest.fixture(autouse=True)
def _fresh_cache():
    dot._ref_cache.clear()
    yield
    dot._ref_cache.clear()


# ---------------------------------------------------------------- valid
@pytest.mark.parametrize("program, kind", [
    ("digraph G { a -> b; b -> c }", "digraph"),
    ("graph { a -- b; b -- c; c -- a }", "graph"),
    ("strict digraph { a -> b }", "digraph"),
    ("// a comment first\ndigraph { a [label=<<b>bold</b> text>] }", "digraph"),
])
def test_valid(program, kind):
    v = dot.validate(program)
    assert v == FormalVerdict(True, False, None, kind, False)


# ---------------------------------------------------------------- invalid
@pytest.mark.parametrize("program, diagnostic", [
    ("digraph {\n  a -> b;\n  b -- c;\n}", "line 3: syntax error near '--'"),  # `--` in a digraph
    ("digraph {\n  a -> b;\n", "line 3: syntax error"),  # missing closing brace (dot counts the last newline)
    ("digraph `g` { a -> b }", "line 1: syntax error near '`'"),  # backtick graph name
    ("digraph { node -> edge }", "line 1: syntax error near '->'"),  # bare keyword ids
    ("digraph { my node -> b }", "line 1: syntax error near '->'"),  # unquoted id with spaces
    ("digraph { a [label=<<b>x</i>>] }", "line 1: mismatched tag (... x</i> ... in label of node a)"),
    ("digraph { a } xyz", "line 1: syntax error near 'xyz'"),  # trailing garbage
    ("digraph { a } ;", "line 1: syntax error near ';'"),
])
def test_invalid_with_graphviz_message(program, diagnostic):
    v = dot.validate(program)
    assert not v.valid and not v.correct and v.status is None and not v.timed_out
    assert v.diagnostic == diagnostic


@pytest.mark.parametrize("program, fragment", [
    ("", "empty input"),
    ("   \n\t\n", "empty input"),
    ("/* only a comment */\n// and another\n# and a preprocessor-style line\n", "no graph"),
    ("digraph { a }\ndigraph { b }", "2 graphs in one input"),
])
def test_invalid_without_a_single_graph(program, fragment):
    """``dot`` exits 0 on all of these; exactly one graph is required."""
    v = dot.validate(program)
    assert not v.valid and fragment in v.diagnostic


def test_invalid_candidate_is_never_correct():
    v = dot.verify("digraph { a -> b ", "digraph { a -> b }")
    assert (v.valid, v.correct, v.diagnostic) == (False, False, "line 1: syntax error")


def test_normalise_diagnostic():
    assert dot.normalise_diagnostic("Error: <stdin>: syntax error in line 3 near '--'\n") == \
        "line 3: syntax error near '--'"
    assert dot.normalise_diagnostic("Warning: something odd\nError: <stdin>: syntax error in line 7\n") == \
        "line 7: syntax error"
    assert dot.normalise_diagnostic("Error: bad label format {a|b\n") == "bad label format {a|b"
    assert dot.normalise_diagnostic("") is None


# ---------------------------------------------------------------- correct
REF = 'digraph G {\n  start [label="Start"];\n  end [label="End"];\n  start -> mid;\n  mid -> end;\n}'


@pytest.mark.parametrize("candidate", [
    # statement order changed
    'digraph G { mid -> end; start -> mid; end [label="End"]; start [label="Start"] }',
    # ids renamed, labels kept (mid's label is its id)
    'digraph other { n1 [label="Start"]; n2 [label="mid"]; n3 [label="End"]; n1 -> n2 -> n3 }',
    # \N is the node id; line breaks and spaces are normalised
    'digraph { start [label="  Start\\l"]; mid [label="\\N"]; end [label="E\\Nd"]; '
    'start -> mid -> end; end [label="End"] }',
    # styling, clusters and ports are ignored
    'digraph { rankdir=LR; node [shape=box color=red]; subgraph cluster_x { start [label="Start"] } '
    'start:s -> mid [color=blue]; mid -> end; end [label="End" style=filled] }',
])
def test_equivalent_graphs_are_correct(candidate):
    v = dot.verify(candidate, REF)
    assert (v.valid, v.correct, v.status, v.diagnostic) == (True, True, "digraph", None)


def test_node_defaults_are_applied():
    ref = 'digraph { a [label="step a"]; b [label="step b"]; a -> b }'
    assert dot.verify('digraph { node [label="step \\N"]; a -> b }', ref).correct
    # a default applies only to the nodes created after it, as in Graphviz
    assert not dot.verify('digraph { a; node [label="step \\N"]; a -> b }', ref).correct


def test_multiline_labels_normalised():
    ref = 'digraph { a [label="first line\\nsecond line"] }'
    assert dot.verify('digraph { x [label="first line\\lsecond   line\\l"] }', ref).correct
    assert not dot.verify('digraph { x [label="first line\\lsecond"] }', ref).correct


def test_undirected_edge_order_swapped():
    assert dot.verify("graph { b -- a; c -- b }", "graph { a -- b; b -- c }").correct
    # but the structure still matters: a path is not a star
    assert not dot.verify("graph { a -- b; a -- c }", "graph { a -- b; b -- c }").correct


def test_strict_merges_duplicate_edges():
    single = "digraph { a -> b }"
    assert dot.verify("strict digraph { a -> b; a -> b }", single).correct
    assert dot.verify("strict graph { a -- b; b -- a }", "graph { a -- b }").correct
    # without strict the duplicate is a second edge of the multigraph
    assert not dot.verify("digraph { a -> b; a -> b }", single).correct
    assert not dot.verify(single, "digraph { a -> b; a -> b }").correct
    assert dot.verify("digraph { x -> y; x -> y }", "digraph { a -> b; a -> b }").correct is False  # labels differ
    assert dot.verify("digraph { a -> b; a -> b }", "digraph { a -> b; a -> b }").correct


def test_self_loops_count():
    assert dot.verify("digraph { a -> a; a -> b }", "digraph { a -> b; a -> a }").correct
    assert not dot.verify("digraph { a -> b; b -> b }", "digraph { a -> b; a -> a }").correct


# ---------------------------------------------------------------- wrong
@pytest.mark.parametrize("candidate", [
    'digraph { start [label="Start"]; end [label="End"]; start -> mid }',  # missing edge
    'digraph { start [label="Start"]; end [label="End"]; mid -> start; mid -> end }',  # reversed edge
    'digraph { start [label="Begin"]; end [label="End"]; start -> mid; mid -> end }',  # different label
    'graph { start [label="Start"]; end [label="End"]; start -- mid; mid -- end }',  # graph vs digraph
    'digraph { start [label="Start"]; end [label="End"]; start -> mid; mid -> end; extra }',  # extra node
])
def test_wrong_graphs_are_incorrect(candidate):
    v = dot.verify(candidate, REF)
    assert (v.valid, v.correct, v.diagnostic, v.timed_out) == (True, False, None, False)


def test_graph_vs_digraph_status():
    v = dot.verify("graph { a -- b }", "digraph { a -> b }")
    assert (v.valid, v.correct, v.status) == (True, False, "graph")


def test_edge_labels_compared_only_when_the_reference_has_them():
    labelled = 'digraph { a -> b [label="yes"]; a -> c [label="no"] }'
    assert dot.verify('digraph { a -> c [label="no"]; a -> b [label="yes"] }', labelled).correct
    assert not dot.verify('digraph { a -> b [label="no"]; a -> c [label="yes"] }', labelled).correct
    assert not dot.verify("digraph { a -> b; a -> c }", labelled).correct
    # \T / \H / \E expand to the endpoint ids
    assert dot.verify('digraph { a -> b [label="a to b"] }', 'digraph { a -> b [label="\\T to \\H"] }').correct
    # a reference without edge labels treats them as styling
    assert dot.verify('digraph { a -> b [label="x"] }', "digraph { a -> b }").correct


def test_invalid_reference_makes_every_candidate_incorrect():
    v = dot.verify("digraph { a -> b }", "digraph { a -- b }")
    assert (v.valid, v.correct, v.diagnostic) == (True, False, None)


# ---------------------------------------------------------------- bytes, timeouts, crashes
def test_non_utf8_input_and_output():
    latin1 = 'digraph { "caf\xe9" -> b; c [label="na\xefve"] }'.encode("latin-1")
    v = dot.validate(latin1)  # Graphviz warns, treats it as Latin-1 and copies the bytes to its json
    assert v.valid and v.status == "digraph"
    assert dot.verify(latin1, latin1).correct
    # the same text as UTF-8 is a different label once Graphviz's output is decoded with replacement
    assert not dot.verify(latin1.decode("latin-1"), latin1).correct
    # a str that carries raw bytes (surrogateescape) reaches dot as those bytes
    escaped = latin1.decode("utf-8", errors="surrogateescape")
    assert dot.verify(escaped, latin1).correct
    bad = b'digraph { "caf\xe9" -- b }'
    v = dot.validate(bad)
    assert not v.valid and v.diagnostic == "line 1: syntax error near '--'"


def _huge_graph(n_nodes: int = 3000, n_edges: int = 6000) -> str:
    r = random.Random(0)
    return "digraph {" + ";".join(f"n{r.randrange(n_nodes)} -> n{r.randrange(n_nodes)}"
                                  for _ in range(n_edges)) + "}"


def test_timeout_kills_dot_and_is_incorrect():
    huge = _huge_graph()  # dot takes well over 10 s to lay this out
    t = time.monotonic()
    v = dot.verify(huge, "digraph { a -> b }", timeout=0.3)
    assert time.monotonic() - t < 5
    assert (v.valid, v.correct, v.timed_out) == (False, False, True)
    assert "timed out" in v.diagnostic
    assert validate_program("dot", huge, timeout=0.3).timed_out


def test_reference_timeout_is_incorrect_and_not_cached():
    huge = _huge_graph()
    v = dot.verify("digraph { a -> b }", huge, timeout=0.3)
    assert (v.valid, v.correct, v.timed_out) == (True, False, True)
    assert not dot._ref_cache


def test_isomorphism_search_has_a_deadline():
    g = dot._build("graph { a -- b; b -- c; c -- d; d -- a }", 5.0).graph
    assert dot.equivalent(g, g)
    with pytest.raises(TimeoutError):
        dot.equivalent(g, g, deadline=time.monotonic() - 1)


def test_crash_is_an_invalid_verdict(monkeypatch):
    crash = ("import os, signal, sys; sys.stdin.read(); sys.stderr.write('boom\\n'); "
             "os.kill(os.getpid(), signal.SIGSEGV)")
    monkeypatch.setattr(dot, "DOT_COMMAND", [sys.executable, "-c", crash])
    v = dot.verify("digraph { a -> b }", "digraph { a -> b }")
    assert (v.valid, v.correct) == (False, False)
    assert v.diagnostic == "dot crashed (SIGSEGV): boom"


def test_garbage_output_and_missing_binary(monkeypatch):
    monkeypatch.setattr(dot, "DOT_COMMAND", [sys.executable, "-c", "import sys; sys.stdin.read(); print('{not json')"])
    v = dot.validate("digraph { a }")
    assert not v.valid and v.diagnostic.startswith("unreadable dot output")
    # an "Error:" line fails closed even if the exit status is 0
    ok_json = '{"name": "g", "directed": true, "strict": false, "_subgraph_cnt": 0}'
    monkeypatch.setattr(dot, "DOT_COMMAND", [sys.executable, "-c", "import sys; sys.stdin.read(); "
                                             f"print({ok_json!r}); sys.stderr.write('Error: odd in line 2\\n')"])
    v = dot.validate("digraph { a }")
    assert (v.valid, v.diagnostic) == (False, "line 2: odd")
    monkeypatch.setattr(dot, "DOT_COMMAND", ["/nonexistent/dot", "-Tjson0"])
    v = dot.validate("digraph { a }")
    assert not v.valid and v.diagnostic.startswith("cannot start /nonexistent/dot")


# ---------------------------------------------------------------- the shared interface
def test_dispatch_and_extraction():
    response = "Here it is:\n```dot\ndigraph { x [label=\"a\"]; y [label=\"b\"]; x -> y }\n```\n"
    program = extract_program("dot", response)
    assert program.startswith("digraph")
    assert verify_program("dot", program, "digraph { a -> b }").correct
    assert not verify_program("dot", program, "digraph { b -> a }").correct
    assert validate_program("dot", "digraph { a -- b }").diagnostic == "line 1: syntax error near '--'"


def test_reference_is_built_once():
    ref = "digraph { a -> b }"
    assert dot.verify("digraph { x [label=a]; y [label=b]; x -> y }", ref).correct
    assert len(dot._ref_cache) == 1
    assert dot.verify("digraph { a -> b }", ref).correct
    assert len(dot._ref_cache) == 1


# ---------------------------------------------------------------- the private plugin folder
AGREEMENT = [
    "digraph { a -> b }", "graph { a -- b }", "digraph { a -- b }", "digraph { a -> b ", "digraph `g` { a }",
    "digraph { node -> edge }", "digraph { a [label=<<b>x</i>>] }", "digraph { a [label=<<b>x</b>>] }",
    'digraph { a [fontname="no such font" label="x"] }', 'digraph { a [image="/no/such.png"] }',
    'digraph { a [shape=record label="{<p>a|b}"] }', 'digraph { a [shape=record label="{a|"] }',
    "digraph { a } xyz", "", "// only\n", "digraph {a} digraph {b}",
]


def test_fast_plugins_agree_with_full_graphviz(monkeypatch):
    """Only the core and dot-layout plugins load (no pango): every verdict and message is the same."""
    exe = shutil.which("dot")
    env = dot._plugin_env(exe)
    assert env is not None, "the private plugin folder should be usable here"
    folder = Path(env["GVBINDIR"])
    assert folder.is_dir() and not folder.stat().st_mode & 0o077
    plugins = {p.name.split(".")[0] for p in folder.glob("libgvplugin_*")}
    assert plugins == {"libgvplugin_core", "libgvplugin_dot_layout"}
    ref = 'digraph { x [label="a"]; y [label="b"]; x -> y }'
    fast = [(dot.validate(p), dot.verify(p, ref)) for p in AGREEMENT]
    monkeypatch.setattr(dot, "FAST_PLUGINS", False)
    dot._ref_cache.clear()
    full = [(dot.validate(p), dot.verify(p, ref)) for p in AGREEMENT]
    assert fast == full
    assert sum(v.valid for v, _ in fast) == 6 and sum(w.correct for _, w in fast) == 1
