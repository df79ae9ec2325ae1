"""Where traces go: the `--otlp-endpoint` flag or the standard `OTEL_EXPORTER_OTLP_*` environment.

Off unless one of them is set (and `OTEL_SDK_DISABLED` / `OTEL_TRACES_EXPORTER=none` turn it off
again). The SDK is imported only when tracing is on, so a gateway without it pays nothing at start
either. Spans leave in batches on the SDK's own thread (`BatchSpanProcessor`, tuned by the standard
`OTEL_BSP_*` variables), never on the request path; export is OTLP over HTTP (protobuf).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mcp_runtime import __version__

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

ENV_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
ENV_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
TRACES_PATH = "/v1/traces"
MAX_ATTRIBUTE_LENGTH = 512
"""Longest attribute value kept (unless `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT` says otherwise): several come
from the client (tool names, ids, session ids), and a span must not carry a megabyte because a client
sent one."""
EXPORT_TIMEOUT = 10.0
"""Seconds one export may take before the batch is given up (the SDK retries with backoff meanwhile)."""


def traces_endpoint(flag: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The OTLP/HTTP traces URL, or None when tracing is off.

    A flag or `OTEL_EXPORTER_OTLP_ENDPOINT` is a base URL (`/v1/traces` is appended, as the OTLP
    specification says); `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is used as it is."""
    env = os.environ if env is None else env
    if flag:
        return _with_path(flag)
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    exact = env.get(ENV_TRACES_ENDPOINT, "").strip()
    if exact:
        return exact
    base = env.get(ENV_ENDPOINT, "").strip()
    return _with_path(base) if base else None


def _with_path(base: str) -> str:
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"the OTLP endpoint must be an http(s) URL, got {base!r} (for example "
                         "http://127.0.0.1:4318)")
    base = base.rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


@dataclass
class Telemetry:
    """One component's tracer provider (its own `service.name`) and where it exports to."""

    provider: TracerProvider
    endpoint: str

    def tracer(self, name: str) -> Tracer:
        return self.provider.get_tracer(name, __version__)

    def shutdown(self) -> None:
        """Flush what is queued (bounded by the export timeout) and stop the export thread."""
        self.provider.shutdown()


def open_telemetry(service: str, endpoint: str | None) -> Telemetry | None:
    """A provider exporting to `endpoint` for `service`, or None when `endpoint` is None (tracing off)."""
    if endpoint is None:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": service, "service.version": __version__,
                                "service.namespace": "mcp-runtime"})
    length = None if os.environ.get("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT") else MAX_ATTRIBUTE_LENGTH
    provider = TracerProvider(resource=resource, span_limits=SpanLimits(max_attribute_length=length))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=EXPORT_TIMEOUT)))
    return Telemetry(provider, endpoint)
