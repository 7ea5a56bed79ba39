"""The graph Graphviz built, for :mod:`distill.verify.formal.dot`: Graphviz's first error normalised,
``dot -Tjson0`` output read as a networkx multigraph with effective (escape-substituted,
whitespace-collapsed) node and edge labels."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

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
