"""Check ``--base-url`` before anything is sent.

Why up front: a malformed URL (``not-a-url``, ``ftp://...``) fails every request the same way, yet
the HTTP client reports it as a connection fault, which the engine retries with backoff for half a
minute; some malformed hosts (``http://[::1/v1``) even escape as a raw ``InvalidURL`` traceback.
A host name that does not resolve is just as certain to fail every request. Both are one-line
errors (exit 2) before the first request.
"""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit

from distill.errors import ConfigError


class BaseURLError(ConfigError):
    """``--base-url`` is malformed or names a host that does not resolve."""


def check_base_url(url: str, *, flag: str = "--base-url") -> str:
    """Return ``url`` if it is ``http(s)://HOST[:PORT][/path]``; raise :class:`BaseURLError` saying what
    is wrong otherwise. Pure syntax: nothing is resolved or sent."""
    example = "e.g. http://localhost:8000/v1"
    if not isinstance(url, str) or not url.strip():
        raise BaseURLError(f"{flag} is empty; give the server's URL, {example}")
    if url != url.strip() or any(c.isspace() for c in url):
        raise BaseURLError(f"{flag} {url!r} contains white space; {example}")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number in 0..65535
        host = parts.hostname
    except ValueError as exc:
        raise BaseURLError(f"{flag} {url!r} is not a valid URL ({exc}); {example}") from None
    if parts.scheme.lower() not in ("http", "https"):
        what = f"has scheme {parts.scheme!r}" if parts.scheme and "//" in url else "has no http:// or https://"
        raise BaseURLError(f"{flag} {url!r} {what}; the teacher is reached over http or https, {example}")
    if not host:
        raise BaseURLError(f"{flag} {url!r} names no host; {example}")
    if port == 0:
        raise BaseURLError(f"{flag} {url!r}: port 0 is not a server port; {example}")
    try:  # the HTTP client's own parser is stricter in places (IPv6 brackets, odd characters)
        import httpx2

        httpx2.URL(url)
    except ImportError:  # pragma: no cover - httpx2 ships with the openai extra
        pass
    except Exception as exc:
        raise BaseURLError(f"{flag} {url!r} is not a valid URL ({exc}); {example}") from None
    return url


def check_host_resolves(url: str, *, flag: str = "--base-url", wait_s: float = 10.0) -> None:
    """Raise :class:`BaseURLError` if the URL's host name does not resolve.

    The look-up runs in a daemon thread bounded by ``wait_s``: a resolver that does not answer
    at all is not proof the host is wrong, so then nothing is raised and the requests' own
    connection retries take over.
    """
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    result: list[BaseException | None] = []

    def look_up() -> None:
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            result.append(None)
        except OSError as exc:
            result.append(exc)

    t = threading.Thread(target=look_up, name="resolve-base-url", daemon=True)
    t.start()
    t.join(wait_s)
    if result and result[0] is not None:
        exc = result[0]
        reason = getattr(exc, "strerror", None) or str(exc)
        raise BaseURLError(f"{flag} {url!r}: cannot resolve host {host!r} ({reason}); check the host name "
                           "and the network")
