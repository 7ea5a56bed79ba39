"""Equivalence of two DOT graphs for :mod:`distill.verify.formal.dot`: same directedness and a
label-preserving multigraph isomorphism (networkx VF2), under a deadline checked at every step."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from distill.verify.formal.dot_graph import DotGraph

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
