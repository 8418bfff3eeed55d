"""Helpers of the fault suite: raw sockets to a live server's faces."""

from __future__ import annotations

import socket
import ssl


def tls_context() -> ssl.SSLContext:
    """A client context that trusts anything: these tests are about the connection, not its certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def closed_by_peer(sock: socket.socket | ssl.SSLSocket, within: float) -> bool:
    """Whether the server closes `sock` within `within` seconds (EOF or reset); False if it is still open."""
    sock.settimeout(within)
    try:
        while True:
            if not sock.recv(4096):
                return True
    except TimeoutError:
        return False
    except (ConnectionError, ssl.SSLError, OSError):
        return True
