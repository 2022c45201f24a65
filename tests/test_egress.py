"""Webhooks reach only the public internet: which addresses are refused, and that a request
goes to the address that was checked (no DNS rebinding)."""

import asyncio
import ipaddress
import socket
from typing import Any

import httpx
import pytest

from core import egress


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.9",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # shared address space
        "224.0.0.1",
        "240.0.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    ],
)
def test_internal_addresses_are_not_public(address: str) -> None:
    assert not egress.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_are(address: str) -> None:
    assert egress.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",  # a name resolving to loopback
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "ftp://example.com/hook",
    ],
)
async def test_urls_leading_inside_are_refused(url: str) -> None:
    with pytest.raises(egress.Refused):
        await egress.pin(url, allow_private=False)


async def test_the_switch_allows_private_addresses() -> None:
    pinned = await egress.pin("http://127.0.0.1:8080/hook?a=1", allow_private=True)
    assert (str(pinned.url), pinned.host, pinned.sni_hostname) == (
        "http://127.0.0.1:8080/hook?a=1",
        "127.0.0.1:8080",
        None,
    )


def fake_dns(monkeypatch: pytest.MonkeyPatch, *answers: list[str]) -> list[str]:
    """Each getaddrinfo call answers the next list of addresses; the names asked, returned."""
    asked: list[str] = []
    queue = list(answers)

    async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in queue.pop(0)]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    return asked


async def test_a_name_is_pinned_to_the_address_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    # A rebinding name: public when checked, loopback on the next lookup.
    asked = fake_dns(monkeypatch, ["93.184.215.14"], ["127.0.0.1"])

    pinned = await egress.pin("https://hooks.example.com:8443/in", allow_private=False)

    assert asked == ["hooks.example.com"]
    assert str(pinned.url) == "https://93.184.215.14:8443/in"
    assert (pinned.host, pinned.sni_hostname) == ("hooks.example.com:8443", "hooks.example.com")
    async with httpx.AsyncClient() as http:
        request = pinned.request(http, "POST", b"{}", {"X-Test": "1"})
    assert request.url.host == "93.184.215.14"  # no second lookup can send it elsewhere
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"


async def test_a_name_with_any_internal_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, ["93.184.215.14", "10.0.0.5"])
    with pytest.raises(egress.Refused):
        await egress.pin("http://mixed.example.com/", allow_private=False)


async def test_a_name_that_does_not_resolve_is_worth_trying_later() -> None:
    with pytest.raises(egress.Unresolved):
        await egress.pin("http://no-such-host.invalid/hook", allow_private=False)


async def test_connection_errors_say_nothing_of_the_operating_system() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError) as raised:
            await http.post(f"http://127.0.0.1:{port}/hook")
    assert egress.generic_error(raised.value) == "could not connect to the receiver"
