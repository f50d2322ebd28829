"""Where the desk listens: loopback checks, ``Host`` names, and binding the port up front
(listening only once the desk can answer).

Light on purpose (no FastAPI, no uvicorn): the CLI checks its arguments with it before
anything heavy is imported.
"""

from __future__ import annotations

import ipaddress
import socket

from bigramlm.errors import BigramLMError

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None, agents: bool = False) -> None:
    """Refuse to listen beyond loopback without a token, or named agents (whose tokens guard it)."""
    if not is_loopback(host) and not token and not agents:
        raise BigramLMError(
            f"host {host} is not a loopback address: give a bearer secret as token (or BIGRAMLM_TOKEN), "
            "or add agents (bigramlm agents add NAME RUN)",
            param=("host", "token"),
        )


def allowed_host_names(host: str, extra: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """The ``Host`` names a server bound to ``host`` answers to: loopback's, its own and
    ``extra`` (``--allowed-host``: the name a reverse proxy on the same host passes);
    None (any) beyond loopback."""
    if not is_loopback(host):
        return None
    names = LOOPBACK_NAMES + ((host,) if host not in LOOPBACK_NAMES else ())
    return names + tuple(host_name(name) for name in extra if host_name(name) not in names)


def host_name(host_header: str) -> str:
    """``Host`` without its port: ``127.0.0.1:8000`` -> ``127.0.0.1``, ``[::1]:80`` -> ``::1``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


#: Connections the kernel holds for uvicorn to accept once the desk listens.
BACKLOG = 2048


def bind_listener(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` and not yet listening, or a one-line error (port in
    use, no such address).

    Bound here rather than by uvicorn, whose failure is a multi-line log and exit status 3, and
    before the run loads, so that a port in use fails at once. Until ``listen``, a connection
    to it is refused at once: nothing waits in a backlog, and nothing is answered.
    """
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            # As socket.create_server: a desk restarted at once binds past its old connections'
            # TIME_WAIT; a port another process listens on still fails.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
        except OSError:
            sock.close()
            raise
    except OSError as exc:  # socket.gaierror included
        raise _cannot_listen(host, port, exc) from None
    sock.set_inheritable(True)
    return sock


def listen(sock: socket.socket, host: str, port: int) -> None:
    """Start taking connections on ``sock`` (from ``bind_listener``); a one-line error where
    another process took the port meanwhile."""
    try:
        sock.listen(BACKLOG)
    except OSError as exc:
        raise _cannot_listen(host, port, exc) from None


def _cannot_listen(host: str, port: int, exc: OSError) -> BigramLMError:
    reason = exc.strerror or str(exc)
    return BigramLMError(f"cannot listen on host {host} port {port}: {reason}", param=("host", "port"))
