"""The webhook client connects only to the addresses it checked (no DNS-rebinding window).

A real local HTTP server; host names are answered by a scripted resolver, so a name that the
system cannot resolve reaching the server proves the client used the checked answer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from executor.activities.destination_guard import AddressRefused, check_url, guarded_client

TIMEOUT = httpx.Timeout(5.0, connect=3.0)


class Seen:
    def __init__(self) -> None:
        self.hosts: list[str] = []


@pytest.fixture
def server() -> Iterator[tuple[int, Seen]]:
    seen = Seen()

    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.hosts.append(self.headers.get("Host", ""))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1], seen
    srv.shutdown()


def scripted(answers: dict[str, list[str]]) -> Any:
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[host]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


async def test_connects_to_the_checked_answer(server: tuple[int, Seen]) -> None:
    port, seen = server
    resolve = scripted({"hooks.crmflow.test": ["127.0.0.1"]})
    async with guarded_client(["127.0.0.1"], timeout=TIMEOUT, resolver=resolve) as client:
        resp = await client.get(f"http://hooks.crmflow.test:{port}/x")
    assert resp.status_code == 200
    assert seen.hosts == [f"hooks.crmflow.test:{port}"]  # the name stayed in the request
    assert resolve.calls == ["hooks.crmflow.test"]  # resolved once, by the guard


async def test_a_name_answering_loopback_is_refused_before_connecting(
    server: tuple[int, Seen],
) -> None:
    port, seen = server
    resolve = scripted({"rebind.crmflow.test": ["127.0.0.1"]})
    async with guarded_client([], timeout=TIMEOUT, resolver=resolve) as client:
        with pytest.raises(AddressRefused, match=r"127\.0\.0\.1, a private or internal"):
            await client.get(f"http://rebind.crmflow.test:{port}/x")
    assert seen.hosts == []


async def test_one_internal_answer_among_public_ones_is_enough_to_refuse(
    server: tuple[int, Seen],
) -> None:
    port, seen = server
    resolve = scripted({"mixed.crmflow.test": ["93.184.216.34", "127.0.0.1"]})
    async with guarded_client([], timeout=TIMEOUT, resolver=resolve) as client:
        with pytest.raises(AddressRefused):
            await client.get(f"http://mixed.crmflow.test:{port}/x")
    assert seen.hosts == []


@pytest.mark.parametrize(
    "address",
    ["10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.10.10", "::1", "fc00::1", "0.0.0.0"],
)
async def test_internal_literals_are_refused(address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    async with guarded_client([], timeout=TIMEOUT) as client:
        with pytest.raises(AddressRefused):
            await client.get(f"http://{host}:9/x")


async def test_metadata_is_refused_even_inside_an_allowed_range() -> None:
    async with guarded_client(["169.254.0.0/16"], timeout=TIMEOUT) as client:
        with pytest.raises(AddressRefused, match="metadata"):
            await client.get("http://169.254.169.254/latest/meta-data")
    resolve = scripted({"meta.crmflow.test": ["169.254.169.254"]})
    async with guarded_client(["169.254.0.0/16"], timeout=TIMEOUT, resolver=resolve) as client:
        with pytest.raises(AddressRefused, match="metadata"):
            await client.get("http://meta.crmflow.test/latest/meta-data")


async def test_proxy_settings_in_the_environment_are_ignored(
    server: tuple[int, Seen], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy would connect on our behalf: the checked address would be the proxy's.
    port, seen = server
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    async with guarded_client(["127.0.0.1"], timeout=TIMEOUT) as client:
        resp = await client.get(f"http://127.0.0.1:{port}/direct")
    assert resp.status_code == 200 and seen.hosts == [f"127.0.0.1:{port}"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/x", "only http and https"),
        ("http:///x", "no host"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("http://[fd00:ec2::254]/latest", "metadata"),
    ],
)
def test_urls_refused_without_a_lookup(url: str, reason: str) -> None:
    with pytest.raises(AddressRefused, match=reason):
        check_url(url)
