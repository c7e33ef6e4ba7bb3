"""A TLS server on a free loopback port with the service's certificate, for tests of the
client's wire handling: a subclass answers each accepted connection in `answer`."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from pathlib import Path


class TlsServer:
    def __init__(self, cert: Path, key: Path) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def answer(self, tls: ssl.SSLSocket) -> None:
        raise NotImplementedError

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            with (
                contextlib.suppress(OSError),
                self._context.wrap_socket(raw, server_side=True) as tls,
            ):
                self.answer(tls)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
        self._listener.close()
        self._thread.join(timeout=5)
