"""The only way the server opens a URL a user gave it: an SSRF-safe HTTP(S) GET.

Rules (each refusal is `INPUT_INVALID_URL` with reason `ssrf_blocked`):
- scheme http or https; no userinfo (`user@host`); no control characters, spaces or backslashes;
- the host is a DNS name, a canonical dotted-quad IPv4 address or a bracketed IPv6 address.
  Other numeric spellings that some resolvers accept (`127.1`, `0`, `2852039166`, octal
  `0251.0376.0251.0376`, hex `0xa9fea9fe`) are refused outright, as is `localhost`;
- default ports only (80 for http, 443 for https);
- the name is resolved ONCE; every address it resolves to must be public: loopback, private,
  link-local, CGNAT, reserved, multicast, unspecified, documentation and benchmark ranges are
  refused, and IPv6 forms that embed an IPv4 address (IPv4-mapped `::ffff:0:0/96`,
  IPv4-compatible `::/96`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, Teredo `2001::/32`) are
  unwrapped and the IPv4 address checked too (local-use NAT64 `64:ff9b:1::/48` is refused);
  `ipaddress.is_global` is used only as an extra refusal, never as the sole test;
- the TCP connection goes to that pinned address while the Host header and TLS SNI / certificate
  check keep the name, so a second DNS answer (rebinding) can never be used;
- redirects (301/302/303/307/308) are followed at most `SAFE_FETCH_MAX_REDIRECTS` (3) times and
  every hop is checked again from scratch;
- no proxies (http.client never reads proxy variables), `Accept-Encoding: identity`.

The operator allow-list `SAFE_FETCH_ALLOWED_HOSTS` (`host[:port]`, see core.conf) exempts a named
host from the port and address rules (still resolved once and pinned). It is matched against the
host exactly as written in the URL after the spelling checks above, so nothing a user sends can
widen it.

Network failures are `INPUT_CONNECTION_FAILED` with a reason: `connection_failed`, `timeout`
(connect timeout 3 s; a total deadline `timeout` covers every hop, headers and body, enforced by a
watchdog even against a server that drips one byte at a time), `too_large` (byte cap, streamed,
stops reading at the cap), `too_many_redirects`, `http_status`, `dns_failed`, `tls_failed`.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass

from .conf import (
    safe_fetch_allowed_hosts,
    safe_fetch_ca_file,
    safe_fetch_connect_timeout,
    safe_fetch_max_bytes,
    safe_fetch_max_redirects,
)
from .errors import SC, ApiError

DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
MAX_URL_LENGTH = 4096
USER_AGENT = "Collectors-fetch/1.0"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_V4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
# Special-purpose ranges that Python 3.11's ipaddress tables still call global.
_EXTRA_SPECIAL_V4 = [
    ipaddress.ip_network(n) for n in ("192.0.0.0/24", "192.88.99.0/24", "198.18.0.0/15")
]
_EXTRA_SPECIAL_V6 = [
    ipaddress.ip_network(n) for n in ("3fff::/20", "5f00::/16", "2001::/23", "2001:db8::/32")
]

_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")
_DECIMAL_OCTET = re.compile(r"0|[1-9][0-9]{0,2}")
_DNS_NAME = re.compile(
    r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*"
)
_FORBIDDEN_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")


@dataclass(frozen=True)
class FetchResult:
    content: bytes
    content_type: str
    final_url: str


class FetchError(ApiError):
    """An ApiError that also carries a short machine reason (`ssrf_blocked`, `timeout`, ...)."""

    def __init__(self, code: int, reason: str, details: str):
        super().__init__(code, details)
        self.reason = reason


def refused(why: str) -> FetchError:
    return FetchError(SC.INPUT_INVALID_URL, "ssrf_blocked", f"URL refused (ssrf_blocked): {why}")


def failed(reason: str, why: str) -> FetchError:
    return FetchError(
        SC.INPUT_CONNECTION_FAILED, reason, f"fetching the URL failed ({reason}): {why}"
    )


# --------------------------------------------------------------------------- addresses


def _ipv4_refusal(addr: ipaddress.IPv4Address) -> str | None:
    if addr.is_unspecified:
        return "unspecified address"
    if addr.is_loopback:
        return "loopback address"
    if addr.is_link_local:
        return "link-local address"
    if addr in _CGNAT:
        return "shared (CGNAT) address"
    if addr.is_multicast:
        return "multicast address"
    if addr.is_private:
        return "private address"
    if addr.is_reserved or addr == ipaddress.IPv4Address("255.255.255.255"):
        return "reserved address"
    for net in _EXTRA_SPECIAL_V4:
        if addr in net:
            return "special-purpose address"
    if not addr.is_global:
        return "address that is not globally routable"
    return None


def embedded_ipv4(addr: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """IPv4 addresses carried inside an IPv6 address, with the name of the form."""
    found: list[tuple[str, ipaddress.IPv4Address]] = []
    low32 = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if addr in _V4_MAPPED:
        found.append(("IPv4-mapped", low32))
    elif addr in _V4_COMPATIBLE and int(addr) > 1:  # not :: or ::1
        found.append(("IPv4-compatible", low32))
    if addr in _NAT64:
        found.append(("NAT64", low32))
    if addr in _SIX_TO_FOUR:
        found.append(("6to4", ipaddress.IPv4Address((int(addr) >> 80) & 0xFFFFFFFF)))
    if addr in _TEREDO:
        server, client = addr.teredo  # type: ignore[misc]
        found.append(("Teredo server", server))
        found.append(("Teredo client", client))
    return found


def address_refusal(addr: IPAddress) -> str | None:
    """Why the server must not connect to `addr`, or None if it is a public unicast address."""
    if isinstance(addr, ipaddress.IPv4Address):
        return _ipv4_refusal(addr)
    if addr.scope_id:
        return "scoped IPv6 address"
    for form, v4 in embedded_ipv4(addr):
        why = _ipv4_refusal(v4)
        if why:
            return f"{form} form of {v4} ({why})"
    if addr in _NAT64_LOCAL:
        return "local-use NAT64 address"
    if addr in _NAT64 or addr in _V4_MAPPED:
        return None  # only the embedded IPv4 address matters, and it was checked above
    for net in _EXTRA_SPECIAL_V6:
        if addr in net:
            return "special-purpose address"
    if addr.is_unspecified:
        return "unspecified address"
    if addr.is_loopback:
        return "loopback address"
    if addr.is_link_local or addr.is_site_local:
        return "link-local address"
    if addr.is_multicast:
        return "multicast address"
    if addr.is_private:
        return "private address"
    if addr.is_reserved:
        return "reserved address"
    if addr not in _GLOBAL_UNICAST_V6 or not addr.is_global:
        return "address that is not globally routable"
    return None


# --------------------------------------------------------------------------- URLs


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str  # ASCII: IDNA name, dotted quad, or IPv6 without brackets
    port: int
    request_target: str
    literal: IPAddress | None
    allow_listed: bool


def _parse_allow_entry(entry: str) -> tuple[str, int | None] | None:
    entry = entry.strip().lower()
    if not entry:
        return None
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    else:
        host, port = entry, ""
    try:
        return host.rstrip("."), (int(port) if port else None)
    except ValueError:
        return None


def _is_allow_listed(host: str, port: int, scheme: str) -> bool:
    for entry in safe_fetch_allowed_hosts():
        parsed = _parse_allow_entry(entry)
        if parsed is None:
            continue
        allowed_host, allowed_port = parsed
        if allowed_host == host and port == (allowed_port or DEFAULT_PORTS[scheme]):
            return True
    return False


def _parse_host(bracketed: bool, hostname: str) -> tuple[str, IPAddress | None]:
    """(ASCII host, literal address or None); refuses odd spellings."""
    if bracketed:
        if "%" in hostname:
            raise refused("IPv6 zone identifiers are not allowed")
        try:
            return hostname, ipaddress.IPv6Address(hostname)
        except ValueError:
            raise refused("malformed IPv6 address") from None
    host = hostname[:-1] if hostname.endswith(".") else hostname
    if not host or ".." in host or host.startswith("."):
        raise refused("empty host name label")
    labels = host.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # WHATWG: a host whose last label is numeric is an IPv4 address; only the canonical
        # dotted-quad spelling is accepted, everything else (short, octal, hex, integer) refused.
        if len(labels) == 4 and all(_DECIMAL_OCTET.fullmatch(x) and int(x) <= 255 for x in labels):
            return host, ipaddress.IPv4Address(host)
        raise refused(f"'{host[:64]}' is not a canonical dotted-quad IPv4 address")
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise refused("host name is not a valid domain name") from None
    if not _DNS_NAME.fullmatch(ascii_host) or len(ascii_host) > 253:
        raise refused("host name is not a valid domain name")
    if ascii_host == "localhost" or ascii_host.endswith(".localhost"):
        raise refused("localhost is not allowed")
    return ascii_host, None


def parse_target(url: str) -> Target:
    """Check a URL's syntax, scheme, userinfo, host spelling and port (no DNS yet)."""
    if not isinstance(url, str) or not url:
        raise refused("URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise refused(f"URL is longer than {MAX_URL_LENGTH} characters")
    if _FORBIDDEN_URL_CHARS.search(url):
        raise refused("URL contains spaces, control characters or backslashes")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise refused(f"malformed URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise refused(f"scheme '{scheme[:16]}' is not allowed; use http or https")
    if "@" in parts.netloc:
        raise refused("credentials in the URL (user@host) are not allowed")
    hostname = parts.hostname or ""
    if not hostname:
        raise refused("URL has no host")
    try:
        explicit_port = parts.port
    except ValueError:
        raise refused("malformed port") from None
    host, literal = _parse_host(parts.netloc.startswith("["), hostname)
    port = explicit_port if explicit_port is not None else DEFAULT_PORTS[scheme]
    allow_listed = _is_allow_listed(host, port, scheme)
    if not allow_listed:
        if port != DEFAULT_PORTS[scheme]:
            raise refused(f"port {port} is not allowed; only {DEFAULT_PORTS[scheme]} for {scheme}")
        if literal is not None:
            why = address_refusal(literal)
            if why:
                raise refused(f"{literal} is not allowed ({why})")
    path = urllib.parse.quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    query = urllib.parse.quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    return Target(
        url=url,
        scheme=scheme,
        host=host,
        port=port,
        request_target=path + (f"?{query}" if query else ""),
        literal=literal,
        allow_listed=allow_listed,
    )


def resolve_pinned(target: Target) -> str:
    """Resolve the host once and return the one address the connection will use."""
    if target.literal is not None:
        return str(target.literal)
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise failed("dns_failed", f"cannot resolve '{target.host}': {exc}") from None
    addresses: list[IPAddress] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        try:
            addr = ipaddress.ip_address(sockaddr[0])
        except ValueError:
            raise refused(f"'{target.host}' resolves to an unparseable address") from None
        if addr not in addresses:
            addresses.append(addr)
    if not addresses:
        raise failed("dns_failed", f"'{target.host}' has no address")
    if not target.allow_listed:
        for addr in addresses:  # every answer must be acceptable, not just the first
            why = address_refusal(addr)
            if why:
                raise refused(f"'{target.host}' resolves to {addr} ({why})")
    return str(addresses[0])


# --------------------------------------------------------------------------- fetching


class _Watchdog:
    """Shuts the socket down at the deadline, whatever http.client is blocked on."""

    def __init__(self, seconds: float):
        self.fired = False
        self._sock: socket.socket | None = None
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True

    def watch(self, sock: socket.socket) -> None:
        self._sock = sock
        if not self._timer.is_alive():
            self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


def _connection(
    target: Target, pinned_ip: str, connect_timeout: float
) -> http.client.HTTPConnection:
    if target.scheme == "https":
        context = ssl.create_default_context(cafile=safe_fetch_ca_file() or None)
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            target.host, target.port, timeout=connect_timeout, context=context
        )
    else:
        conn = http.client.HTTPConnection(target.host, target.port, timeout=connect_timeout)

    def create_pinned(_address, timeout=None, _source=None):
        # The name in `_address` is ignored on purpose: connect to the address we checked.
        return socket.create_connection((pinned_ip, target.port), timeout=connect_timeout)

    conn._create_connection = create_pinned  # type: ignore[attr-defined]
    return conn


def _fetch_once(
    target: Target, pinned_ip: str, deadline: float, max_bytes: int, connect_timeout: float
):
    """One GET; returns ('redirect', location) or ('done', FetchResult)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise failed("timeout", "the total time limit was reached")
    conn = _connection(target, pinned_ip, min(connect_timeout, remaining))
    watchdog = _Watchdog(remaining)
    response = None
    try:
        try:
            conn.connect()
        except ssl.SSLError as exc:
            raise failed("tls_failed", f"TLS with '{target.host}' failed: {exc}") from None
        except TimeoutError:
            raise failed("timeout", f"connecting to '{target.host}' timed out") from None
        except OSError as exc:
            raise failed("connection_failed", f"cannot connect to '{target.host}': {exc}") from None
        sock = conn.sock
        watchdog.watch(sock)
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        conn.putrequest("GET", target.request_target, skip_accept_encoding=True)
        conn.putheader("Accept-Encoding", "identity")
        conn.putheader("Accept", "image/*, */*;q=0.5")
        conn.putheader("User-Agent", USER_AGENT)
        conn.putheader("Connection", "close")
        conn.endheaders()
        response = conn.getresponse()
        if response.status in REDIRECT_STATUSES:
            location = response.getheader("Location") or ""
            if not location:
                raise failed("http_status", f"HTTP {response.status} without a Location")
            return "redirect", location
        if not 200 <= response.status < 300:
            raise failed("http_status", f"the server answered HTTP {response.status}")
        length = response.getheader("Content-Length")
        if length and length.strip().isdigit() and int(length) > max_bytes:
            raise failed("too_large", f"the body is {int(length)} bytes; the limit is {max_bytes}")
        chunks: list[bytes] = []
        total = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise failed("timeout", "the total time limit was reached while reading")
            sock.settimeout(left)
            chunk = response.read1(65536)
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise failed("too_large", f"the body exceeds the {max_bytes}-byte limit")
            chunks.append(chunk)
        if watchdog.fired:
            raise failed("timeout", "the total time limit was reached while reading")
        content_type = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
        return "done", FetchResult(b"".join(chunks), content_type, target.url)
    except FetchError:
        raise
    except (TimeoutError, OSError, http.client.HTTPException, ValueError) as exc:
        if watchdog.fired or time.monotonic() >= deadline:
            raise failed("timeout", "the total time limit was reached") from None
        raise failed("connection_failed", f"{type(exc).__name__}: {exc}") from None
    finally:
        watchdog.cancel()
        if response is not None:
            response.close()  # the response holds the socket after Connection: close
        conn.close()


def request_deadline(seconds: float) -> float:
    """A deadline (time.monotonic() based) shared by every fetch one request makes."""
    return time.monotonic() + float(seconds)


def fetch(
    url: str, *, max_bytes: int | None = None, timeout: float = 15.0, deadline: float | None = None
) -> FetchResult:
    """GET `url` under the rules in the module doc; raises FetchError (an ApiError).

    `timeout` bounds this fetch; `deadline` (from `request_deadline`) bounds it further by the
    request's shared deadline, so N slow URLs cost one deadline, not N timeouts.
    """
    own = time.monotonic() + float(timeout)
    deadline = own if deadline is None else min(own, deadline)
    cap = int(max_bytes) if max_bytes is not None else safe_fetch_max_bytes()
    max_redirects = safe_fetch_max_redirects()
    connect_timeout = safe_fetch_connect_timeout()
    current = url
    for hop in range(max_redirects + 1):
        target = parse_target(current)
        pinned_ip = resolve_pinned(target)
        kind, value = _fetch_once(target, pinned_ip, deadline, cap, connect_timeout)
        if kind == "done":
            return value
        if hop == max_redirects:
            break
        current = urllib.parse.urljoin(current, value)
    raise failed("too_many_redirects", f"more than {max_redirects} redirects")
