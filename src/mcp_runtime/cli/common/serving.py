"""What the commands that run a long-lived server share (`up`, `gateway run`, `platform serve`, `adapter`):
checking the listen address first, so a taken port is one clear line, and one log format on stderr."""

from __future__ import annotations

import errno
import logging
import socket

from mcp_runtime.cli.common.errors import CliError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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


def configure_logging(level: str, *, quiet: tuple[str, ...] = ()) -> None:
    """Log at `level` to stderr (stdout may carry a protocol); the `quiet` loggers only from WARNING up."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)


OTLP_HELP = ("Export OpenTelemetry traces over OTLP/HTTP to this base URL (e.g. http://127.0.0.1:4318); "
             "default $OTEL_EXPORTER_OTLP_ENDPOINT, off when neither is set.")


def otlp_endpoint(flag: str | None) -> str | None:
    """The traces URL from `--otlp-endpoint` or the standard environment (None: tracing off), checked."""
    from mcp_runtime.telemetry import traces_endpoint

    try:
        return traces_endpoint(flag)
    except ValueError as exc:
        raise CliError(str(exc), hint="check --otlp-endpoint or OTEL_EXPORTER_OTLP_ENDPOINT") from None
