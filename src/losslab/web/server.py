"""Run the explorer with uvicorn on a socket we bind ourselves, so port 0 (a free port) works and
the address is known before the server starts."""

from __future__ import annotations

import asyncio
import socket
import threading
import webbrowser

REQUEST_SECONDS = 10.0  # a client's time to send a whole request (headers and body)
MAX_CONNECTIONS = 256  # beyond this uvicorn answers 503


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


def deadline_protocol(seconds: float = REQUEST_SECONDS) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, plus a deadline: a connection that has not sent a complete request
    within ``seconds`` of opening (or of its previous response) is closed. uvicorn alone waits
    forever for slow headers or a partial body, so a few stalled clients could hold every socket."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class DeadlineH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._deadline = asyncio.get_running_loop().call_later(seconds, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            # DONE: the request is in and the answer is being computed; that is ours to finish
            if self.conn.their_state is not h11.DONE and not self.transport.is_closing():
                self.transport.close()

    return DeadlineH11Protocol


def serve(sock: socket.socket, *, open_browser: bool = False, request_seconds: float = REQUEST_SECONDS) -> None:
    """Serve the explorer on sock until interrupted; open the system's browser on it if asked."""
    import uvicorn

    from .app import create_app

    if open_browser:
        threading.Timer(0.5, webbrowser.open, [url_of(sock)]).start()
    app = create_app()

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:
            # a Train stream stays open until its run ends: end the runs first, so their streams finish
            # cleanly and uvicorn's wait for open connections is short
            for stop in list(app.state.runs):
                stop.set()
            await super().shutdown(sockets=sockets)

    config = uvicorn.Config(app, log_level="warning", http=deadline_protocol(request_seconds),
                            limit_concurrency=MAX_CONNECTIONS, timeout_graceful_shutdown=5)
    Server(config).run(sockets=[sock])
