"""Rendering chat templates reproducibly: the date a template may insert is pinned.

Shared by single-turn prompts (:func:`distill.students.data.chat_prompt`) and multi-turn rows
(:mod:`distill.students.messages`).
"""

from __future__ import annotations

import contextlib
import datetime


#: The date every chat template sees. Llama-3-style templates put "Today Date: ..." into the system
#: header (``date_string``, else ``strftime_now("%d %b %Y")``): unpinned, a run trained on one day
#: and evaluated on the next sees different prompts. 26 Jul 2024 is Llama 3.1's own default.
PINNED_DATE = datetime.datetime(2024, 7, 26)


class _PinnedDatetime(datetime.datetime):
    """A ``datetime`` whose ``now()`` is :data:`PINNED_DATE` (for the template's ``strftime_now``)."""

    @classmethod
    def now(cls, tz=None):  # noqa: D102 - same contract as datetime.now
        return PINNED_DATE if tz is None else PINNED_DATE.replace(tzinfo=tz)


@contextlib.contextmanager
def pinned_template_clock():
    """Freeze the clock behind the chat templates' ``strftime_now`` while rendering.

    Why patch: transformers turns every extra render argument into plain JSON data (a callable
    becomes a string), so a ``strftime_now`` override cannot be passed in; its ``strftime_now``
    reads ``datetime.now()`` from :mod:`transformers.utils.chat_template_utils` at call time.
    """
    try:
        from transformers.utils import chat_template_utils as ctu
    except ImportError:  # no transformers: no templates to render either
        yield
        return
    old = getattr(ctu, "datetime", None)
    ctu.datetime = _PinnedDatetime
    try:
        yield
    finally:
        ctu.datetime = old
