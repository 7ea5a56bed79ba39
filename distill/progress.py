"""Progress bars for long stages: one look everywhere (count, rate, ETA) and one switch to turn them off.

Every long stage (prompting, verification, embedding the router's paths, training, evaluation)
draws its bar with :func:`progress_bar`. ``--no-progress`` on any ``distill`` command (or the
environment variable ``DISTILL_NO_PROGRESS=1``, which child processes such as ``accelerate
launch`` ranks inherit) turns every bar off, for logs; a stage still prints its one-line
summary at the end.
"""

from __future__ import annotations

import os
import sys
from typing import Any

#: set to 1 to turn every progress bar off (``--no-progress`` sets it for the command and its children)
NO_PROGRESS_ENV = "DISTILL_NO_PROGRESS"


def progress_enabled(enabled: bool = True) -> bool:
    """``enabled`` unless ``DISTILL_NO_PROGRESS`` is set to a non-empty value other than ``0``."""
    return bool(enabled) and os.environ.get(NO_PROGRESS_ENV, "") in ("", "0")


def disable_progress() -> None:
    """Turn bars off for this process and every process it starts."""
    os.environ[NO_PROGRESS_ENV] = "1"


def progress_bar(total: int | None, desc: str, *, unit: str = "it", enabled: bool = True, initial: int = 0,
                 **kwargs: Any):
    """A tqdm bar on stderr with rate and ETA; a disabled bar (every call a no-op) when progress is off.

    ``enabled=False`` is how a caller turns its own bar off (e.g. on ranks other than the main one).
    """
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5, disable=not progress_enabled(enabled), **kwargs)
