"""OpenTelemetry tracing: exports over OTLP when an endpoint is configured, costs nothing when not.

Without an endpoint we never install an SDK provider, so ``trace.get_tracer`` stays the API's
no-op proxy: no span objects, no exporter thread.
"""

from __future__ import annotations

from opentelemetry import trace


def setup_tracing(service: str, otlp_endpoint: str | None) -> bool:
    """Install the SDK provider with an OTLP exporter; returns whether tracing is on."""
    if not otlp_endpoint:
        return False
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: f"crmflow-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    trace.set_tracer_provider(provider)
    return True
