"""OpenTelemetry, on for one service: a real request through the proxy is a server span, child of the
client's `traceparent`, with the phases as events; the upstream sees the proxy's span as its parent."""

from __future__ import annotations

from typing import Any

import httpx
from helpers import refused_port
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from upstream import Upstream

from actorproxy.proxy import HttpPeer, ProxyHttp, Session

EXPORTER = InMemorySpanExporter()
# The global provider can be set once a process: this test module owns it.
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(_PROVIDER)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


class ToOrigin(ProxyHttp):
    def __init__(self, port: int) -> None:
        self.port = port

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(("127.0.0.1", self.port), tls=False, sni="")


async def test_a_request_is_a_span_below_the_clients_with_its_phases(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    EXPORTER.clear()
    base, _ = await start_proxy(ToOrigin(upstreams[0].port), opentelemetry=True)
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/echo", headers={"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01"})
    assert response.status_code == 200
    [span] = EXPORTER.get_finished_spans()
    assert span.name == "GET proxy" and span.kind is trace.SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == CLIENT_SPAN
    events = [event.name for event in span.events]
    assert events[:4] == ["early_request_filter", "request_filter", "proxy_upstream_filter", "upstream_peer"]
    assert {"upstream_request_filter", "response_filter", "logging"} <= set(events)
    attributes = dict(span.attributes or {})
    assert attributes["http.response.status_code"] == 200 and attributes["url.path"] == "/echo"
    assert attributes["actorproxy.request_id"] == response.headers["x-request-id"]
    # The upstream saw the proxy's span as the parent of whatever it does next.
    sent = dict(upstreams[0].requests[0]["headers"])["traceparent"]
    assert sent == f"00-{TRACE_ID}-{format(span.context.span_id, '016x')}-01"


async def test_an_upstream_failure_marks_the_span(start_proxy: Any) -> None:
    EXPORTER.clear()
    base, _ = await start_proxy(ToOrigin(refused_port()), opentelemetry=True)
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.get("/")).status_code == 502
    [span] = EXPORTER.get_finished_spans()
    assert span.status.status_code is trace.StatusCode.ERROR
    assert "fail_to_connect" in [event.name for event in span.events]
