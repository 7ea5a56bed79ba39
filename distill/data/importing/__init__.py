"""``distill data import``: a hub dataset or local files in a public format -> a task file in our schema.

- :mod:`~distill.data.importing.config` -- the typed settings (:class:`ImportConfig`) and ``--from`` / ``--map``
- :mod:`~distill.data.importing.load` -- loading with ``datasets`` (hub, offline cache, local files), licences
- :mod:`~distill.data.importing.formats` -- one converter per public format (GSM8K, MATH, ARC, ...)
- :mod:`~distill.data.importing.convert` -- ids, ``--map``, duplicate / missing-gold reports, sampling
- :mod:`~distill.data.importing.write` -- the output and its ``.source.json`` sidecar, written atomically
"""

from __future__ import annotations

from distill.data.importing.config import ImportConfig
from distill.data.importing.run import ImportReport, import_dataset

__all__ = ["ImportConfig", "ImportReport", "import_dataset"]
