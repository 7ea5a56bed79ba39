"""Bounds for a launched run's reported peak memory (shared by the launch and QLoRA bench tests)."""

from __future__ import annotations

import resource
import subprocess
import sys


def rank_import_rss_gib() -> float:
    """Peak RSS of a fresh interpreter that only imports torch, which every training rank imports: a
    floor for any rank's peak (a rank also loads both students and trains). Only torch: the resident
    size of importing transformers/peft/accelerate varied between 0.46 and 0.75 GiB from run to run
    here, more than a tiny run's whole peak (0.56 GiB)."""
    code = "import resource, torch; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1]) / 2**20  # ru_maxrss is KiB on Linux


def largest_child_rss_gib() -> float:
    """Peak RSS of the largest descendant of this process so far (the launched ranks are reaped by
    their launchers, so they count): a ceiling for any rank's peak -- a sum over ranks would exceed it."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
