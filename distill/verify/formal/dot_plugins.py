"""The private Graphviz plugin folder for :mod:`distill.verify.formal.dot`: ``dot`` with only its core
(json0) and dot-layout plugins starts in ~4 ms instead of ~40 ms (see :func:`_plugin_env`)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

log = logging.getLogger(__name__)

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
