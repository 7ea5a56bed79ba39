"""Bounds for a launched run's reported peak memory (shared by the launch and QLoRA bench tests)."""

from __future__ import annotations

import resource


#: A floor for any training rank's peak resident set, in GiB: importing torch alone takes ~0.25 GiB.
#: Not measured by a probe subprocess: Linux keeps ``ru_maxrss`` across fork + exec, so a probe started
#: from the (large) pytest process reports the parent's size (0.76 GiB inside the full suite against 0.25
#: GiB standalone, above a tiny run's whole 0.56 GiB peak). The fixed floor still catches a unit slip such
#: as KiB read as MiB.
RANK_FLOOR_GIB = 0.2


def rank_import_rss_gib() -> float:
    """The floor above (kept as a function so both tests read one definition)."""
    return RANK_FLOOR_GIB


def largest_child_rss_gib() -> float:
    """Peak RSS of the largest descendant of this process so far (the launched ranks are reaped by
    their launchers, so they count): a ceiling for any rank's peak -- a sum over ranks would exceed it."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
