"""Run the explorer with uvicorn on a socket we bind ourselves, so port 0 (a free port) works and
the address is known before the server starts."""

from __future__ import annotations

import socket
import threading
import webbrowser


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket on host:port (port 0: a free port chosen by the system)."""
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be in [0, 65535], got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise ValueError(f"cannot resolve host {host!r}: {err.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port}: {err.strerror}; pick another --port (or none: a free one)") from None
    sock.listen(128)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def serve(sock: socket.socket, *, open_browser: bool = False) -> None:
    """Serve the explorer on sock until interrupted; open the system's browser on it if asked."""
    import uvicorn

    from .app import create_app

    if open_browser:
        threading.Timer(0.5, webbrowser.open, [url_of(sock)]).start()
    uvicorn.Server(uvicorn.Config(create_app(), log_level="warning")).run(sockets=[sock])
