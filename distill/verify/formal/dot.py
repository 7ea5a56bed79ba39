"""DOT (Graphviz) programs: validity and equivalence read from the graph Graphviz actually builds.

Why not a DOT parser library: pydot accepts ``--`` in a digraph, keywords as ids and trailing
garbage, and ``dot``'s exit code alone is 0 on empty input. So the ground truth is one run of the
real ``dot -Tjson0`` per program, in a child process killed (SIGKILL, whole process group) at the
timeout, its bytes decoded as UTF-8 with replacement (Graphviz copies Latin-1 input bytes through).

**Valid**: ``dot -Tjson0`` exits 0, prints no ``Error:`` line, and its output is exactly one graph
(empty or comment-only input prints none; ``digraph {a} digraph {b}`` prints two). Otherwise the
verdict carries Graphviz's first error, normalised: ``Error: <stdin>: syntax error in line 3 near
'--'`` -> ``line 3: syntax error near '--'`` (continuation lines, e.g. the ``... x</i> ...`` context
of an HTML-label error, are appended in parentheses).

**Correct** (against the row's reference program): same directedness, and a label-preserving
isomorphism between the two multigraphs as Graphviz built them (networkx VF2 on
``MultiDiGraph``/``MultiGraph``: undirected edges are unordered, parallel edges counted). json0
already applies ``node [...]``/``edge [...]`` defaults (to the statements after them, as Graphviz
does) and ``strict`` (duplicate edges merged), so both come from Graphviz, not from re-parsing.

- A node's label is its ``label`` attribute (``\\N`` when absent), with ``\\N`` -> the node id and
  ``\\G`` -> the graph name; ``\\n``/``\\l``/``\\r`` line breaks and all whitespace collapse to single
  spaces (so ``"a\\lb"`` == ``"a b"``); ``\\\\`` is a backslash; another escaped character is itself.
- Edge labels (``\\T``, ``\\H``, ``\\E``, ``\\G`` expanded likewise) are compared only when the
  reference labels at least one edge: then every edge between a matched node pair must carry the
  same multiset of labels (an unlabelled edge has label ``""``). A reference without edge labels
  ignores the candidate's, like other styling.
- Ignored: node ids themselves (renaming with labels kept is equivalent), the graph name, graph
  labels, every other attribute (shape, colour, ports, layout), subgraphs and clusters (their nodes
  and edges count, the grouping does not). HTML labels are compared as their raw text (json0 does
  not mark them apart from quoted strings).

Fail closed: a timeout, a crash (killed by a signal), unreadable output or a missing ``dot`` is an
invalid candidate; an invalid (or timed-out) reference makes every candidate incorrect (valid
candidates keep ``diagnostic=None``: it is the candidate's own error); the isomorphism search has
the same deadline (checked at every step) and, past it, is incorrect with ``timed_out=True``.

Layout: :mod:`~distill.verify.formal.dot_plugins` makes the private plugin folder,
:mod:`~distill.verify.formal.dot_graph` reads Graphviz's output and errors,
:mod:`~distill.verify.formal.dot_compare` decides equivalence; this module runs ``dot`` (its command
and plugin switches live here) and holds the two verdicts and the reference cache.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any

from distill.verify.formal.dot_compare import equivalent
from distill.verify.formal.dot_graph import DotGraph, _graph_from_json, _json_documents, normalise_diagnostic
from distill.verify.formal.dot_plugins import _plugin_env
from distill.verify.formal.verdict import FORMAL_TIMEOUT_S, FormalVerdict

log = logging.getLogger(__name__)

#: The Graphviz command; ``None`` means ``dot`` from PATH (tests point it at other executables).
DOT_COMMAND: list[str] | None = None
#: Run ``dot`` with only its core (json0) and dot-layout plugins (see :func:`_plugin_env`).
FAST_PLUGINS = True
#: Successfully built reference graphs kept (the same reference is verified against many candidates).
_REF_CACHE_SIZE = 256


@dataclass(frozen=True)
class _Built:
    graph: DotGraph | None
    diagnostic: str | None = None
    timed_out: bool = False


# ---------------------------------------------------------------- running dot
def _command() -> list[str] | None:
    if DOT_COMMAND is not None:
        return list(DOT_COMMAND)
    exe = shutil.which("dot")
    return [exe, "-Tjson0"] if exe else None


def _to_bytes(program: str | bytes) -> bytes:
    if isinstance(program, bytes):
        return program
    try:  # str from a surrogateescape decode keeps its original (possibly non-UTF-8) bytes
        return program.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        return program.encode("utf-8", errors="replace")


class _NotRun(Exception):
    """``dot`` could not be started (not installed, not executable)."""


def _run_dot(data: bytes, timeout: float) -> tuple[int | None, str, str]:
    """``(returncode, stdout, stderr)`` decoded with replacement; ``returncode`` is ``None`` on a
    timeout (the child's whole process group was killed). Raises :class:`_NotRun`."""
    cmd = _command()
    if cmd is None:
        raise _NotRun("graphviz 'dot' is not installed")
    env = _plugin_env(cmd[0]) if DOT_COMMAND is None and FAST_PLUGINS else None
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, env=env)
    except OSError as exc:
        raise _NotRun(f"cannot start {cmd[0]}: {exc}") from None
    try:
        out, err = proc.communicate(data, timeout=max(timeout, 0.001))
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.communicate()
        return None, "", ""
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc.returncode, out.decode("utf-8", errors="replace"), err.decode("utf-8", errors="replace")


def _build(program: str | bytes, timeout: float) -> _Built:
    data = _to_bytes(program)
    if not data.strip():
        return _Built(None, "empty input: no graph")
    try:
        rc, out, err = _run_dot(data, timeout)
    except _NotRun as exc:
        return _Built(None, str(exc))
    if rc is None:
        return _Built(None, f"dot timed out after {timeout:g}s", timed_out=True)
    if rc < 0:
        try:
            sig = signal.Signals(-rc).name
        except ValueError:
            sig = str(-rc)
        first = normalise_diagnostic(err)
        return _Built(None, f"dot crashed ({sig})" + (f": {first}" if first else ""))
    diag = normalise_diagnostic(err)
    if rc != 0 or any(ln.startswith("Error:") for ln in err.splitlines()):
        return _Built(None, diag or f"dot exited with status {rc}")
    try:
        docs = _json_documents(out)
    except ValueError as exc:
        return _Built(None, f"unreadable dot output: {exc}")
    if not docs:
        return _Built(None, "no graph in the input (empty or only comments)")
    if len(docs) > 1:
        return _Built(None, f"{len(docs)} graphs in one input; expected exactly one")
    try:
        return _Built(_graph_from_json(docs[0]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return _Built(None, f"unreadable dot output: {type(exc).__name__}: {exc}")


_ref_cache: dict[tuple[bytes, str], DotGraph] = {}
_ref_lock = threading.Lock()


def _build_reference(reference: str | bytes, timeout: float) -> _Built:
    """The reference's graph, built once per (text, command): rows are verified against many
    candidates. Only successes are kept (a timed-out reference is tried again next time)."""
    key = (_to_bytes(reference), repr(DOT_COMMAND))
    with _ref_lock:
        hit = _ref_cache.get(key)
    if hit is not None:
        return _Built(hit)
    built = _build(reference, timeout)
    if built.graph is not None:
        with _ref_lock:
            while len(_ref_cache) >= _REF_CACHE_SIZE:
                _ref_cache.pop(next(iter(_ref_cache)))
            _ref_cache[key] = built.graph
    return built


# ---------------------------------------------------------------- the two verdicts
def validate(program: str | bytes, *, timeout: float = FORMAL_TIMEOUT_S) -> FormalVerdict:
    """Is ``program`` exactly one graph that ``dot -Tjson0`` accepts (``correct`` is always False)."""
    built = _build(program, timeout)
    if built.graph is None:
        return FormalVerdict(False, False, built.diagnostic, None, built.timed_out)
    return FormalVerdict(True, False, None, built.graph.kind)


def verify(candidate: str | bytes, reference: str | bytes, row: dict[str, Any] | None = None, *,
           timeout: float = FORMAL_TIMEOUT_S) -> FormalVerdict:
    """Validity of ``candidate`` and its equivalence with ``reference`` (``row`` is not used for DOT).
    ``timeout`` bounds each ``dot`` run and, from the start, the whole verification."""
    deadline = time.monotonic() + timeout
    cand = _build(candidate, timeout)
    if cand.graph is None:
        return FormalVerdict(False, False, cand.diagnostic, None, cand.timed_out)
    kind = cand.graph.kind
    left = deadline - time.monotonic()
    if left <= 0:
        return FormalVerdict(True, False, None, kind, timed_out=True)
    ref = _build_reference(reference, left)
    if ref.graph is None:
        log.warning("DOT reference is not a valid graph (%s): every candidate is incorrect", ref.diagnostic)
        return FormalVerdict(True, False, None, kind, timed_out=ref.timed_out)
    try:
        same = equivalent(cand.graph, ref.graph, deadline=deadline)
    except TimeoutError:
        return FormalVerdict(True, False, None, kind, timed_out=True)
    return FormalVerdict(True, same, None, kind)
