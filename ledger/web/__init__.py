"""`ledger serve`: a read-only web viewer over a store (Starlette, Jinja2, uvicorn).

Pages: the article list (`/`), the recent-changes feed (`/feed`), an article now, at a version
or as of a time (`/a/ID`, `/a/ID/v/N`, `/a/ID?at=TIME`), its history (`/a/ID/history`), a diff of
two versions (`/a/ID/diff/FROM..TO`, `?view=side`), who wrote what (`/a/ID/blame`,
`/a/ID/v/N/blame`), where a phrase stood (`/search?q=PHRASE`), the categories (`/categories`,
`/c/NAME`). Each is also JSON (`Accept: application/json` or `.json`). See docs/web.md.
"""

from __future__ import annotations

import contextlib
import gc
import socket
import sys

from ledger.application import Ledger
from ledger.errors import InvalidInputError
from ledger.web.app import LOOPBACK, create_app

__all__ = ["allowed_hosts", "create_app", "serve"]


def allowed_hosts(host: str) -> frozenset[str]:
    """The Host header names a server bound to `host` answers to: the loopback names, plus, when
    it listens wider, the address it was given and this machine's names."""
    names = set(LOOPBACK)
    if host not in LOOPBACK:
        names.update({host.lower(), socket.gethostname().lower(), socket.getfqdn().lower()})
        # A machine whose own name does not resolve is reached by the names above.
        with contextlib.suppress(OSError):
            names.update(socket.gethostbyname_ex(socket.gethostname())[2])
    return frozenset(names)


def serve(led: Ledger, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the read-only web viewer over `led` on `host`:`port` until interrupted (Ctrl+C).

    Listening on anything but the loopback address prints a warning: the pages show every version
    of every article to whoever can reach the port. Pages read the log as it is at each request,
    so versions appended meanwhile (by `ledger ingest`, a watcher) show on reload."""
    import uvicorn

    # Bound here, so that a port in use is one plain error (InvalidInputError) before anything
    # is printed as if the viewer were running; port 0 picks a free port, shown below.
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise InvalidInputError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None
    port = listener.getsockname()[1]
    if host not in LOOPBACK:
        print(f"warning: listening on {host}: anyone who can reach port {port} can read every version of every article", file=sys.stderr)
    shown = f"[{host}]" if ":" in host else host
    print(f"ledger viewer on http://{shown}:{port}/ (Ctrl+C stops it)", file=sys.stderr)
    server = uvicorn.Server(uvicorn.Config(create_app(led, hosts=allowed_hosts(host)), log_level="warning"))
    # What start-up made (modules, models, templates) lives as long as the server: out of the
    # collector's sight, a page's first full collection does not walk it all (20-40 ms).
    gc.freeze()
    with listener:
        server.run(sockets=[listener])
