"""What the loop records: route shares and the routing-collapse warning."""

from __future__ import annotations

from types import SimpleNamespace

from distill.train.engine import _collapse_warnings
from distill.train.metrics import route_shares


def _rows(routes):
    return [{"route": r} for r in routes]


def test_route_shares_count_both_for_both_students():
    assert route_shares(_rows([1, 1, 2, "both"])) == {"s1": 0.75, "s2": 0.5}


def test_a_starved_student_is_warned_about_once_per_epoch(capsys):
    printed = []
    run = SimpleNamespace(unwrapped=SimpleNamespace(router=object(), student2=object()),
                          cfg=SimpleNamespace(router=SimpleNamespace(balance_weight=0.1)),
                          accelerator=SimpleNamespace(print=printed.append))
    rows = _rows([1] * 97 + [2] * 3)  # student 2: 3% < 5%
    msgs = _collapse_warnings(run, rows, epoch=1)
    assert len(msgs) == 1 and "student 2 received 3.0%" in msgs[0] and "epoch 2" in msgs[0]
    assert "--balance_weight" in msgs[0] and printed == [f"warning: {msgs[0]}"]
    assert _collapse_warnings(run, _rows([1] * 90 + [2] * 10), epoch=0) == []  # 10% is fed
    no_router = SimpleNamespace(unwrapped=SimpleNamespace(router=None, student2=object()))
    assert _collapse_warnings(no_router, rows, epoch=0) == []  # routing all: nothing to warn about
