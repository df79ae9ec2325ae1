"""Checking a listen address before starting a server, so a taken port is one clear line."""

from __future__ import annotations

import errno
import socket

from mcp_runtime.cli.errors import CliError


def check_port_free(host: str, port: int, *, in_use_hint: str, other_hint: str) -> None:
    """Raise CliError (with the caller's hint for its own flags) when HOST:PORT cannot be bound."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CliError(f"port {port} on {host} is already in use", hint=in_use_hint) from None
            raise CliError(f"cannot listen on {host}:{port}: {exc.strerror}", hint=other_hint) from None
