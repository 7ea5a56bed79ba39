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
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from collections import Counter
from dataclasses import dataclass
from typing import Any

from distill.verify.formal.verdict import FORMAL_TIMEOUT_S, FormalVerdict

log = logging.getLogger(__name__)

#: The Graphviz command; ``None`` means ``dot`` from PATH (tests point it at other executables).
DOT_COMMAND: list[str] | None = None
#: Run ``dot`` with only its core (json0) and dot-layout plugins (see :func:`_plugin_env`).
FAST_PLUGINS = True
#: Successfully built reference graphs kept (the same reference is verified against many candidates).
_REF_CACHE_SIZE = 256
_MAX_DIAGNOSTIC = 300

_LINE_RE = re.compile(r"^(?:Error:\s*)?(?:<stdin>:\s*)?(?P<msg>.*?)\s+in line (?P<line>\d+)\s*(?P<rest>.*)$")


@dataclass(frozen=True)
class DotGraph:
    """A graph as Graphviz built it: ``directed`` and a networkx multigraph whose nodes carry
    ``label`` and whose edges carry ``label`` (effective, normalised)."""

    directed: bool
    graph: Any  # networkx.MultiDiGraph | networkx.MultiGraph
    edge_labels: bool  # any edge has a non-empty label

    @property
    def kind(self) -> str:
        return "digraph" if self.directed else "graph"


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


_env_lock = threading.Lock()
_env_cache: dict[str, dict[str, str] | None] = {}


def _make_plugin_dir(exe: str) -> Path | None:
    """A private ``GVBINDIR`` holding links to Graphviz's core and dot-layout plugins only, with its
    own ``config6`` (written by ``dot -c``)."""
    probe = subprocess.run([exe, "-v", "-Tjson0"], input=b"digraph{}", capture_output=True, timeout=30)
    m = re.search(r'libdir = "([^"]+)"', probe.stderr.decode("utf-8", errors="replace"))
    if not m:
        return None
    libdir = Path(m.group(1))
    libs = sorted(p for p in libdir.glob("libgvplugin_*") if p.name.split(".")[0] in
                  ("libgvplugin_core", "libgvplugin_dot_layout"))
    if not libs:
        return None
    tag = hashlib.sha256(f"{exe}\0{libdir}\0{[p.name for p in libs]}".encode()).hexdigest()[:16]
    final = Path(tempfile.gettempdir()) / f"distill-graphviz-{os.getuid()}-{tag}"

    def usable(d: Path) -> bool:
        try:
            st = d.lstat()
        except OSError:
            return False
        # ours and private: a directory another user could write would let them plant plugins
        return (d.is_dir() and not d.is_symlink() and st.st_uid == os.getuid() and not st.st_mode & 0o022
                and any(d.glob("config6*")))

    if usable(final):
        return final
    tmp = Path(tempfile.mkdtemp(prefix="distill-graphviz-"))  # mode 0700
    try:
        for lib in libs:
            (tmp / lib.name).symlink_to(lib)
        subprocess.run([exe, "-c"], env={**os.environ, "GVBINDIR": str(tmp)}, capture_output=True, timeout=30)
        if not any(tmp.glob("config6*")):
            return None
        try:
            tmp.rename(final)
        except OSError:  # another process got there first
            pass
        return final if usable(final) else None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _plugin_env(exe: str) -> dict[str, str] | None:
    """The environment for ``dot``: with all plugins, ``dot`` loads pango/fontconfig to measure text
    and spends ~40 ms starting; with only the core (json0 output) and dot-layout plugins it takes
    ~4 ms. Parsing (ids, HTML labels, strictness, defaults) is the same library either way, only the
    layout's text sizes are estimated, and layout is not compared. ``None`` (full plugins) when the
    private plugin folder cannot be made or fails a check run; made once per process."""
    with _env_lock:
        if exe in _env_cache:
            env = _env_cache[exe]
            if env is None or os.path.isdir(env["GVBINDIR"]):
                return env  # else a temp-folder cleaner removed it: make it again
        env = None
        try:
            d = _make_plugin_dir(exe)
            if d is not None:
                env = {**os.environ, "GVBINDIR": str(d)}
                check = subprocess.run([exe, "-Tjson0"], input=b"digraph { a -> b [label=x] }", env=env,
                                       capture_output=True, timeout=30)
                doc = json.loads(check.stdout.decode("utf-8", errors="replace"))
                if check.returncode != 0 or len(doc.get("objects", [])) != 2 or len(doc.get("edges", [])) != 1:
                    env = None
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            log.info("Graphviz with all plugins (no private plugin folder: %s)", exc)
            env = None
        _env_cache[exe] = env
        return env


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


def normalise_diagnostic(stderr: str) -> str | None:
    """Graphviz's first error (the first ``Error:`` line, else the first line), with its line number
    first: ``Error: <stdin>: syntax error in line 3 near '--'`` -> ``line 3: syntax error near '--'``;
    the lines continuing it (up to the next ``Error:``/``Warning:``) are appended in parentheses."""
    lines = [ln.rstrip() for ln in stderr.splitlines()]
    starts = [i for i, ln in enumerate(lines) if ln.startswith("Error:")]
    nonempty = [i for i, ln in enumerate(lines) if ln.strip()]
    if not nonempty:
        return None
    i = starts[0] if starts else nonempty[0]
    head = lines[i]
    more = []
    for ln in lines[i + 1:]:
        if ln.startswith(("Error:", "Warning:")):
            break
        if ln.strip():
            more.append(ln.strip())
    m = _LINE_RE.match(head)
    if m:
        text = f"line {m['line']}: {m['msg']}" + (f" {m['rest']}" if m["rest"] else "")
    else:
        text = re.sub(r"^(?:Error:\s*)?(?:<stdin>:\s*)?", "", head).strip()
    if more:
        text += " (" + " ".join(more) + ")"
    return text[:_MAX_DIAGNOSTIC]


def _json_documents(text: str) -> list[Any]:
    """The JSON values printed one after another (one per graph); raises ``ValueError``."""
    dec, docs, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return docs
        doc, i = dec.raw_decode(text, i)
        docs.append(doc)


# ---------------------------------------------------------------- labels
def effective_label(raw: str | None, subst: dict[str, str]) -> str:
    """Graphviz's escape substitution (``\\N``, ``\\G``, ``\\T``, ``\\H``, ``\\E`` from ``subst``; line
    breaks ``\\n``/``\\l``/``\\r``; ``\\\\``), then whitespace collapsed to single spaces."""
    s = "\\N" if raw is None else str(raw)
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            e = s[i + 1]
            if e in subst:
                out.append(subst[e])
            elif e in "nlr":
                out.append(" ")
            else:
                out.append(e)
            i += 2
        else:
            out.append(c)
            i += 1
    return " ".join("".join(out).split())


def _graph_from_json(doc: dict[str, Any]) -> DotGraph:
    """The multigraph of one json0 document (raises ``KeyError``/``TypeError``/``ValueError`` when
    the document is not what Graphviz writes)."""
    import networkx as nx

    directed = bool(doc["directed"])
    gname = str(doc.get("name", ""))
    objects = doc.get("objects") or []
    n_sub = int(doc.get("_subgraph_cnt", 0))
    g = nx.MultiDiGraph() if directed else nx.MultiGraph()
    names: dict[int, str] = {}
    for obj in objects[n_sub:]:
        gid, name = int(obj["_gvid"]), str(obj["name"])
        names[gid] = name
        g.add_node(gid, label=effective_label(obj.get("label"), {"N": name, "G": gname}))
    any_label = False
    arrow = "->" if directed else "--"
    for e in doc.get("edges") or []:
        t, h = int(e["tail"]), int(e["head"])
        tn, hn = names[t], names[h]
        raw = e.get("label")
        lab = "" if raw is None else effective_label(raw, {"T": tn, "H": hn, "E": f"{tn}{arrow}{hn}", "G": gname})
        any_label = any_label or bool(lab)
        g.add_edge(t, h, label=lab)
    return DotGraph(directed, g, any_label)


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


# ---------------------------------------------------------------- equivalence
class _Deadline(Exception):
    pass


def _matcher_class(directed: bool):
    from networkx.algorithms import isomorphism as iso

    base = iso.DiGraphMatcher if directed else iso.GraphMatcher

    class _TimedMatcher(base):  # type: ignore[misc, valid-type]
        deadline = float("inf")

        def syntactic_feasibility(self, G1_node, G2_node):  # noqa: N803 (networkx's names)
            if time.monotonic() > self.deadline:
                raise _Deadline
            return super().syntactic_feasibility(G1_node, G2_node)

    return _TimedMatcher


def _edge_labels(attrs: dict[Any, dict[str, Any]]) -> list[str]:
    return sorted(a.get("label", "") for a in attrs.values())


def equivalent(cand: DotGraph, ref: DotGraph, *, deadline: float = float("inf")) -> bool:
    """Same directedness and a label-preserving multigraph isomorphism (see the module docstring).
    Raises :class:`TimeoutError` past ``deadline`` (``time.monotonic()``)."""
    if cand.directed != ref.directed:
        return False
    g1, g2 = cand.graph, ref.graph
    if g1.number_of_nodes() != g2.number_of_nodes() or g1.number_of_edges() != g2.number_of_edges():
        return False
    if Counter(d["label"] for _, d in g1.nodes(data=True)) != Counter(d["label"] for _, d in g2.nodes(data=True)):
        return False
    use_edge_labels = ref.edge_labels
    if use_edge_labels and (Counter(d["label"] for *_, d in g1.edges(data=True))
                            != Counter(d["label"] for *_, d in g2.edges(data=True))):
        return False

    def node_match(a: dict, b: dict) -> bool:
        return a["label"] == b["label"]

    def edge_match(a: dict, b: dict) -> bool:
        return _edge_labels(a) == _edge_labels(b)

    matcher = _matcher_class(cand.directed)(g1, g2, node_match=node_match,
                                             edge_match=edge_match if use_edge_labels else None)
    matcher.deadline = deadline
    try:
        return matcher.is_isomorphic()
    except _Deadline:
        raise TimeoutError("isomorphism search ran past its deadline") from None


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
