"""Outbound HTTP to URLs users gave (webhook subscriptions, webhook channels): to the public
internet only, unless the install allows private addresses.

The URL's host is resolved here, every address it resolves to is checked, and the request
goes to the checked address, with the URL's host kept for the ``Host`` header, TLS SNI and
the certificate check. So a name that resolves to a public address when checked and to an
internal one a moment later (DNS rebinding) cannot turn the request inward.

Refused: loopback, private (RFC 1918, unique-local), shared (100.64/10), link-local
(including the cloud metadata address 169.254.169.254), multicast, reserved and unspecified
addresses, IPv4 and IPv6, and IPv6 forms that embed an IPv4 address.
"""

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import httpx

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(Exception):
    """The URL leads somewhere openlines does not send to; sending again will not help."""


class Unresolved(Exception):
    """The URL's host did not resolve (now: DNS may answer later)."""


def is_public(address: IpAddress) -> bool:
    """An address on the public internet: none of the kinds this module refuses."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or _nat64(address)
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_unspecified
    )


def _nat64(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address in a NAT64 one (64:ff9b::/96), which reaches it."""
    if address in ipaddress.IPv6Network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True)
class Pinned:
    """A request's URL with its host replaced by the checked address."""

    url: httpx.URL
    host: str  # the ``Host`` header: the URL's host (and port, when given)
    sni_hostname: str | None  # for https to a name: the name TLS checks the certificate for

    def request(
        self, http: httpx.AsyncClient, method: str, content: bytes, headers: dict[str, str]
    ) -> httpx.Request:
        """The request to send with ``http.send`` (redirects must not be followed: a
        redirect's target would not be checked)."""
        extensions = {"sni_hostname": self.sni_hostname} if self.sni_hostname else {}
        return http.build_request(
            method,
            self.url,
            content=content,
            headers={**headers, "Host": self.host},
            extensions=extensions,
        )


async def pin(url: str, allow_private: bool) -> Pinned:
    """Check where ``url`` leads and pin it to that address.

    Raises ``Refused`` for a URL that is not http(s) or leads to an address refused here
    (unless ``allow_private``), ``Unresolved`` when its host does not resolve.
    """
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise Refused("only http and https URLs with a host are sent to")
    host_header = parsed.netloc.decode("ascii")
    if allow_private:
        return Pinned(parsed, host_header, None)
    address = await _checked_address(parsed.host, parsed.port or _default_port(parsed.scheme))
    named = _literal(parsed.host) is None
    sni = parsed.host if named and parsed.scheme == "https" else None
    return Pinned(parsed.copy_with(host=str(address)), host_header, sni)


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def _checked_address(host: str, port: int) -> IpAddress:
    """The address to connect to: every address the host resolves to must be public."""
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (socket.gaierror, UnicodeError):
            raise Unresolved("the receiver's host name did not resolve") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in found]
    if not addresses:
        raise Unresolved("the receiver's host name did not resolve")
    if not all(is_public(address) for address in addresses):
        raise Refused(
            "the URL leads to a private, loopback, link-local or reserved address; "
            "set OPENLINES_WEBHOOK_ALLOW_PRIVATE=true to allow it"
        )
    return addresses[0]


def generic_error(error: httpx.HTTPError) -> str:
    """What went wrong, without the operating system's detail (``[Errno 111] ...``), which
    would tell a caller which internal ports are open."""
    if isinstance(error, httpx.TimeoutException):
        return "the receiver did not answer in time"
    if isinstance(error, httpx.ConnectError):
        return "could not connect to the receiver"
    return f"the request to the receiver failed ({type(error).__name__})"
