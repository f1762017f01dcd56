"""Where webhooks may connect: public addresses only, checked on the socket actually opened.

A check that resolves the host name and then lets the HTTP client resolve it again leaves a
window (DNS rebinding): a name that answers with a public address to the check and with
127.0.0.1 or the metadata service to the connect gets through. So the check lives in the HTTP
client's network backend: each new connection resolves the name once, refuses it if any answer
is private, loopback, link-local, reserved, multicast or a cloud-metadata address (unless the
operator allow-lists it, e.g. for tests), and connects to the address it checked. TLS still
verifies the certificate against the host name (httpcore passes the origin host as SNI).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Cloud metadata services (AWS/GCP/Azure link-local, AWS IPv6, Alibaba): refused even when
# an allow-list would otherwise admit the range.
METADATA_HOSTS = {"169.254.169.254", "fd00:ec2::254", "100.100.100.200", "metadata.google.internal"}


class AddressRefused(Exception):
    """The destination is not a public address (raised before any byte is sent)."""


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _allowed(host: str, ip: IPAddress, allow: Iterable[str]) -> bool:
    for entry in allow:
        if entry == host:
            return True
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def check_address(host: str, ip: IPAddress, allow: Iterable[str]) -> None:
    if str(ip) in METADATA_HOSTS:
        raise AddressRefused(f"{host} resolves to {ip}, a cloud metadata address")
    internal = (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )
    if internal and not _allowed(host, ip, allow):
        raise AddressRefused(f"{host} resolves to {ip}, a private or internal address")


def check_url(url: str) -> None:
    """What can be refused without a lookup: the scheme and cloud-metadata host names."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise AddressRefused(f"only http and https webhooks are sent, not {parts.scheme!r}")
    host = (parts.hostname or "").strip("[]")
    if not host:
        raise AddressRefused("the webhook URL has no host")
    if host in METADATA_HOSTS:
        raise AddressRefused(f"{host} is a cloud metadata address")


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend that connects only to checked, public addresses."""

    def __init__(self, allow: Iterable[str], resolver: Resolver = system_resolver) -> None:
        self._allow = list(allow)
        self._resolve = resolver
        self._inner = httpcore.AnyIOBackend()

    async def _addresses(self, host: str, port: int) -> list[IPAddress]:
        name = host.strip("[]")
        if name in METADATA_HOSTS:
            raise AddressRefused(f"{name} is a cloud metadata address")
        try:
            return [ipaddress.ip_address(name)]  # a literal: nothing to resolve
        except ValueError:
            pass
        try:
            answers = await self._resolve(name, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {name}: {exc}") from exc
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in answers]
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {name}: no addresses")
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._addresses(host, port)
        for ip in addresses:  # every answer, not only the one we would use: no lottery
            check_address(host, ip, self._allow)
        error: Exception | None = None
        for ip in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(ip),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("webhooks do not connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool on a GuardedBackend.

    httpx has no public parameter for the network backend; the pool is rebuilt with the same
    settings httpx would use (tests/workflows/test_webhook.py exercises it end to end, so an
    httpx change that breaks this fails the build).
    """

    def __init__(
        self,
        *,
        allow: Iterable[str],
        limits: httpx.Limits,
        resolver: Resolver = system_resolver,
    ) -> None:
        super().__init__(limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow, resolver),
        )


def guarded_client(
    allow: Iterable[str],
    *,
    timeout: httpx.Timeout,
    max_connections: int = 200,
    resolver: Resolver = system_resolver,
) -> httpx.AsyncClient:
    """An HTTP client for user-given URLs: no redirects, no proxies from the environment (a
    proxy would make the checked address the proxy's), public destinations only."""
    limits = httpx.Limits(max_connections=max_connections)
    return httpx.AsyncClient(
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        transport=GuardedTransport(allow=allow, limits=limits, resolver=resolver),
    )
