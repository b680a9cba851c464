"""core.safe_fetch against real sockets: every SSRF vector of reliability.md B5 is refused before
any connection (a sentinel listener on loopback :80/:443 counts accepted connections), DNS is
resolved once and pinned, redirects are re-checked, and byte, time and redirect caps hold (B6).

DNS answers are controlled by replacing `socket.getaddrinfo` (an external function) inside the
tests that need a particular answer; everything else is real TCP on loopback.
"""

from __future__ import annotations

import base64
import gzip
import http.server
import ipaddress
import socket
import threading
import time

import pytest

from collectors_module.core import safe_fetch
from collectors_module.core.conf import safe_fetch_allowed_hosts
from collectors_module.core.errors import SC
from collectors_module.core.safe_fetch import FetchError, address_refusal, fetch

PNG_1x1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


# --------------------------------------------------------------------------- fixtures


class Sentinel:
    """TCP listeners on loopback that count every accepted connection."""

    def __init__(self):
        self.count = 0
        self.sockets: list[socket.socket] = []
        self.ports: set[int] = set()
        self._lock = threading.Lock()

    def listen(self, family: int, host: str, port: int) -> bool:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            return False
        sock.listen(64)
        self.sockets.append(sock)
        self.ports.add(sock.getsockname()[1])
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()
        return True

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with self._lock:
                self.count += 1
            conn.close()

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


@pytest.fixture(scope="module")
def sentinel():
    """Listens where the vectors point: 127.0.0.1 and ::1 on ports 80 and 443 (needs root)."""
    s = Sentinel()
    bound = [
        s.listen(socket.AF_INET, "127.0.0.1", 80),
        s.listen(socket.AF_INET, "127.0.0.1", 443),
        s.listen(socket.AF_INET6, "::1", 80),
        s.listen(socket.AF_INET6, "::1", 443),
    ]
    if not bound[0]:
        s.close()
        pytest.skip("cannot bind the sentinel to 127.0.0.1:80 (needs root and a free port 80)")
    yield s
    s.close()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_GET(self):
        server = self.server
        server.requests.append((self.path, self.headers.get("Host"), dict(self.headers)))
        path = self.path
        if path == "/image.png":
            self._send(200, PNG_1x1, {"Content-Type": "image/png; charset=binary"})
        elif path == "/html":
            self._send(200, b"<html>hi</html>", {"Content-Type": "text/html"})
        elif path == "/missing":
            self._send(404, b"nope")
        elif path.startswith("/to?"):
            self._send(302, headers={"Location": path[4:]})
        elif path == "/loop":
            self._send(302, headers={"Location": "/loop"})
        elif path.startswith("/chain/"):
            left = int(path.rsplit("/", 1)[1])
            if left == 0:
                self._send(200, PNG_1x1, {"Content-Type": "image/png"})
            else:
                self._send(301, headers={"Location": f"/chain/{left - 1}"})
        elif path == "/huge-length":
            self.send_response(200)
            self.send_header("Content-Length", str(10 * 2**30))
            self.end_headers()
            self._stream(limit=10 * 2**30)
        elif path == "/endless":  # no Content-Length, 10 GB if nobody stops reading
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self._stream(limit=10 * 2**30)
        elif path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self._drip(b"x" * 1000)
        elif path == "/drip-headers":
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            self._drip(b"X-Slow: " + b"a" * 1000 + b"\r\n")
        elif path == "/gzip-bomb":
            body = gzip.compress(b"\x00" * (50 * 2**20))
            self._send(200, body, {"Content-Encoding": "gzip", "Content-Type": "image/png"})
        else:
            self._send(404)

    def _stream(self, limit: int):
        chunk = b"\x00" * 65536
        sent = 0
        try:
            while sent < limit:
                self.wfile.write(chunk)
                sent += len(chunk)
        except OSError:
            pass
        self.server.streamed.append(sent)

    def _drip(self, data: bytes):
        try:
            for i in range(len(data)):
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list = []
        self.streamed: list[int] = []

    @property
    def port(self) -> int:
        return self.server_address[1]


@pytest.fixture(scope="module")
def server():
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def origin(server, settings):
    """The test server, allow-listed as an operator would (and nothing else)."""
    server.requests.clear()
    settings.SAFE_FETCH_ALLOWED_HOSTS = [f"127.0.0.1:{server.port}"]
    return f"http://127.0.0.1:{server.port}"


class Resolver:
    """Stands in for the system resolver: answers for chosen names, counts lookups."""

    def __init__(self, monkeypatch, answers: dict[str, list[str]]):
        self.answers = answers
        self.calls: list[str] = []
        self._real = socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", self.getaddrinfo)

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        if host not in self.answers:
            return self._real(host, port, family, type, proto, flags)
        self.calls.append(host)
        queue = self.answers[host]
        answer = queue[(len(self.calls) - 1) % len(queue)]
        result = []
        for ip in answer.split(","):
            fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
            sockaddr = (ip, port, 0, 0) if fam == socket.AF_INET6 else (ip, port)
            result.append((fam, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        return result


def refused_reason(url: str, **kw) -> str:
    with pytest.raises(FetchError) as exc:
        fetch(url, **kw)
    assert exc.value.code == SC.INPUT_INVALID_URL, exc.value.details
    assert exc.value.reason == "ssrf_blocked"
    return exc.value.details


def attempt(url: str, **kw):
    """The FetchResult, or the FetchError raised."""
    try:
        return fetch(url, **kw)
    except FetchError as exc:
        return exc


def failure(url: str, **kw) -> FetchError:
    with pytest.raises(FetchError) as exc:
        fetch(url, **kw)
    assert exc.value.code == SC.INPUT_CONNECTION_FAILED, exc.value.details
    return exc.value


# --------------------------------------------------------------------------- B5 vectors

B5_VECTORS = [
    "http://127.0.0.1/",
    "http://127.1/",
    "http://0/",
    "http://localhost./",
    "http://localhost/",
    "http://[::1]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/",
    "http://0251.0376.0251.0376/",
    "http://0xa9fea9fe/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:a9fe:a9fe::]/",
    "http://evil@127.0.0.1/",
    "http://evil:pw@example.com/",
    "http://127.0.0.1:6379/",
    "http://example.com:6379/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "data:image/png;base64,iVBORw0KGgo=",
    # more spellings and ranges of the same families
    "https://127.0.0.1/",
    "HTTP://127.0.0.1/",
    "http://127.0.0.1./",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::127.0.0.1]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[64:ff9b:1::a9fe:a9fe]/",
    "http://[2002:7f00:1::]/",
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",  # Teredo, client 127.0.0.1
    "http://[fe80::1%25lo]/",
    "http://[fe80::1]/",
    "http://[fd00::2]/",
    "http://[ff02::1]/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.0.1/",
    "http://192.0.2.2/",
    "http://100.64.0.1/",
    "http://198.18.0.1/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://0177.0.0.1/",
    "http://0x7f.0.0.1/",
    "http://127.000.000.001/",
    "http://017700000001/",
    "http://foo.localhost/",
    "http://127.0.0.1\\@example.com/",
    "http://127.0.0.1/ HTTP/1.1\r\nHost: x",
    "ftp://example.com/",
    "javascript:alert(1)",
    "//127.0.0.1/",
    "",
]


def test_sentinel_counts_connections_so_the_vector_test_can_fail(sentinel, settings):
    before = sentinel.count
    socket.create_connection(("127.0.0.1", 80), timeout=2).close()
    # The same fetch the vectors make succeeds in reaching it once an operator allow-lists it.
    settings.SAFE_FETCH_ALLOWED_HOSTS = ["127.0.0.1"]
    with pytest.raises(FetchError):
        fetch("http://127.0.0.1/", timeout=2)  # the sentinel hangs up without answering
    deadline = time.monotonic() + 2
    while sentinel.count < before + 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sentinel.count == before + 2


@pytest.mark.parametrize("url", B5_VECTORS)
def test_ssrf_vector_is_refused_without_any_connection(url, sentinel, settings):
    settings.SAFE_FETCH_ALLOWED_HOSTS = []
    before = sentinel.count
    refused_reason(url, timeout=2)
    time.sleep(0.01)
    assert sentinel.count == before


def test_every_b5_vector_is_blocked_and_the_count_is_reported(sentinel, settings):
    settings.SAFE_FETCH_ALLOWED_HOSTS = []
    before = sentinel.count
    blocked = 0
    for url in B5_VECTORS:
        try:
            fetch(url, timeout=2)
        except FetchError as exc:
            blocked += exc.reason == "ssrf_blocked"
    print(f"SSRF vectors blocked: {blocked}/{len(B5_VECTORS)}")
    assert blocked == len(B5_VECTORS)
    assert sentinel.count == before


def test_name_resolving_to_a_private_address_is_refused(sentinel, settings, monkeypatch):
    settings.SAFE_FETCH_ALLOWED_HOSTS = []
    dns = Resolver(
        monkeypatch,
        {
            "ten.test": ["10.1.2.3"],
            "loop.test": ["127.0.0.1"],
            "v6loop.test": ["::1"],
            "mapped.test": ["::ffff:169.254.169.254"],
            "metadata.test": ["169.254.169.254"],
        },
    )
    before = sentinel.count
    assert "10.1.2.3" in refused_reason("http://ten.test/a.png")
    assert "127.0.0.1" in refused_reason("http://loop.test/")
    assert "::1" in refused_reason("https://v6loop.test/")
    assert "169.254.169.254" in refused_reason("http://mapped.test/")
    assert "link-local" in refused_reason("http://metadata.test/")
    assert dns.calls == ["ten.test", "loop.test", "v6loop.test", "mapped.test", "metadata.test"]
    assert sentinel.count == before


def test_name_with_one_private_answer_among_public_ones_is_refused(sentinel, settings, monkeypatch):
    settings.SAFE_FETCH_ALLOWED_HOSTS = []
    Resolver(monkeypatch, {"mixed.test": ["93.184.216.34,127.0.0.1"]})
    before = sentinel.count
    assert "127.0.0.1" in refused_reason("http://mixed.test/")
    assert sentinel.count == before


def test_dns_rebinding_cannot_reach_loopback(sentinel, settings, monkeypatch):
    """The resolver alternates a public and a loopback answer: whichever comes first, the name is
    looked up once per fetch and the loopback sentinel never sees a connection."""
    settings.SAFE_FETCH_ALLOWED_HOSTS = []
    dns = Resolver(monkeypatch, {"rebind.test": ["127.0.0.1", "93.184.216.34"]})
    before = sentinel.count
    refused_reason("http://rebind.test/")  # loopback answer first: refused
    assert dns.calls == ["rebind.test"]
    # Public answer first (the check passes); a second lookup would now say 127.0.0.1.
    outcome = attempt("http://rebind.test/", timeout=2)
    assert getattr(outcome, "reason", "") != "ssrf_blocked"  # the public address was acceptable
    assert dns.calls == ["rebind.test", "rebind.test"]
    assert sentinel.count == before


def test_connection_is_pinned_to_the_resolved_address_and_keeps_the_name(
    server, settings, monkeypatch
):
    """An allow-listed name resolves once to our loopback server; later answers point elsewhere.
    The request must reach the first address and carry the name in Host."""
    settings.SAFE_FETCH_ALLOWED_HOSTS = [f"pinned.test:{server.port}"]
    dns = Resolver(monkeypatch, {"pinned.test": ["127.0.0.1", "192.0.2.99"]})
    server.requests.clear()
    result = fetch(f"http://pinned.test:{server.port}/image.png")
    assert result.content == PNG_1x1
    assert result.content_type == "image/png"
    assert dns.calls == ["pinned.test"]
    assert [(p, h) for p, h, _ in server.requests] == [("/image.png", f"pinned.test:{server.port}")]


# --------------------------------------------------------------------------- allow-list


def test_allow_listed_server_is_fetched(origin, server):
    result = fetch(f"{origin}/image.png")
    assert (result.content, result.content_type) == (PNG_1x1, "image/png")
    assert result.final_url == f"{origin}/image.png"
    headers = server.requests[0][2]
    assert headers["Accept-Encoding"] == "identity"
    assert "Authorization" not in headers


def test_loopback_server_is_refused_when_not_allow_listed(server, settings):
    settings.SAFE_FETCH_ALLOWED_HOSTS = []
    server.requests.clear()
    assert "port" in refused_reason(f"http://127.0.0.1:{server.port}/image.png")
    assert server.requests == []


def test_allow_list_cannot_be_widened_by_other_spellings_or_ports(origin, server, sentinel):
    before = sentinel.count
    port = server.port
    refused_reason(f"http://127.1:{port}/image.png")
    refused_reason(f"http://2130706433:{port}/image.png")
    refused_reason(f"http://[::ffff:127.0.0.1]:{port}/image.png")
    refused_reason(f"http://localhost:{port}/image.png")
    refused_reason(f"http://user@127.0.0.1:{port}/image.png")
    refused_reason("http://127.0.0.1/image.png")  # same host, other (default) port
    refused_reason(f"http://127.0.0.1:{port + 1}/image.png")
    assert server.requests == []
    assert sentinel.count == before


def test_allow_list_given_as_one_comma_separated_string(settings):
    settings.SAFE_FETCH_ALLOWED_HOSTS = " models.internal:8080, [::1]:9000 ,"
    assert safe_fetch_allowed_hosts() == ["models.internal:8080", "[::1]:9000"]


def test_proxy_environment_is_ignored(origin, server, sentinel, monkeypatch):
    before = sentinel.count
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:80")
    assert fetch(f"{origin}/image.png").content == PNG_1x1
    assert len(server.requests) == 1
    assert sentinel.count == before


# --------------------------------------------------------------------------- redirects


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://2852039166/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
        "http://127.0.0.1:6379/",
    ],
)
def test_redirect_to_an_internal_address_is_refused(origin, server, sentinel, location):
    before = sentinel.count
    refused_reason(f"{origin}/to?{location}")
    assert len(server.requests) == 1
    assert sentinel.count == before


def test_redirect_to_another_allow_listed_port_is_still_refused(origin, server):
    refused_reason(f"{origin}/to?http://127.0.0.1:{server.port + 1}/image.png")


def test_three_redirects_are_followed_and_each_hop_rechecked(origin, server):
    result = fetch(f"{origin}/chain/3")
    assert result.content == PNG_1x1
    assert result.final_url == f"{origin}/chain/0"
    assert [p for p, _, _ in server.requests] == ["/chain/3", "/chain/2", "/chain/1", "/chain/0"]


def test_a_fourth_redirect_fails(origin, server):
    exc = failure(f"{origin}/chain/4")
    assert exc.reason == "too_many_redirects"
    assert len(server.requests) == 4


def test_redirect_loop_stops_at_the_redirect_cap(origin, server):
    exc = failure(f"{origin}/loop")
    assert exc.reason == "too_many_redirects"
    assert len(server.requests) == 4


# --------------------------------------------------------------------------- B6 response abuse


def test_endless_body_is_cut_at_the_byte_cap(origin, server):
    started = time.monotonic()
    exc = failure(f"{origin}/endless", max_bytes=2 * 2**20)
    assert exc.reason == "too_large"
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while not server.streamed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.streamed, "the server is still streaming: the connection was not closed"
    assert server.streamed[-1] < 64 * 2**20  # we stopped reading early


def test_declared_length_over_the_cap_is_refused_before_reading(origin):
    exc = failure(f"{origin}/huge-length", max_bytes=10**6)
    assert exc.reason == "too_large"


def test_default_byte_cap_follows_the_setting(origin, settings):
    settings.SAFE_FETCH_MAX_BYTES = 10
    assert failure(f"{origin}/image.png").reason == "too_large"
    settings.SAFE_FETCH_MAX_BYTES = len(PNG_1x1)
    assert fetch(f"{origin}/image.png").content == PNG_1x1


def test_dripping_body_hits_the_total_deadline(origin):
    started = time.monotonic()
    exc = failure(f"{origin}/drip", timeout=1.5)
    elapsed = time.monotonic() - started
    assert exc.reason == "timeout"
    assert 1.3 < elapsed < 3.0


def test_dripping_headers_hit_the_total_deadline(origin):
    started = time.monotonic()
    exc = failure(f"{origin}/drip-headers", timeout=1.5)
    assert exc.reason == "timeout"
    assert time.monotonic() - started < 3.0


def test_gzip_body_is_never_inflated(origin):
    result = fetch(f"{origin}/gzip-bomb", max_bytes=5 * 2**20)
    assert len(result.content) < 1 * 2**20  # the compressed bytes, not 50 MB of zeros
    assert result.content[:2] == b"\x1f\x8b"


def test_html_is_returned_with_its_content_type_for_the_caller_to_refuse(origin):
    assert fetch(f"{origin}/html").content_type == "text/html"


def test_http_error_status_is_a_connection_failure(origin):
    assert failure(f"{origin}/missing").reason == "http_status"


def test_closed_port_is_a_connection_failure(settings):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    settings.SAFE_FETCH_ALLOWED_HOSTS = [f"127.0.0.1:{port}"]
    assert failure(f"http://127.0.0.1:{port}/").reason == "connection_failed"


def test_unresolvable_name_is_a_connection_failure(settings, monkeypatch):
    settings.SAFE_FETCH_ALLOWED_HOSTS = []

    def no_such_name(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    assert failure("http://does-not-exist.test/").reason == "dns_failed"


# --------------------------------------------------------------------------- address rules


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.255.254",
        "10.0.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.255",
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.251",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "198.51.100.1",
        "203.0.113.1",
        "198.18.0.1",
        "::1",
        "::",
        "fe80::1",
        "fec0::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:100.64.0.1",
        "::127.0.0.1",
        "::a9fe:a9fe",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::7f00:1",
        "64:ff9b::a00:1",
        "64:ff9b:1::808:808",
        "2002:a9fe:a9fe::",
        "2002:7f00:1::1",
        "2002:c0a8:101::",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",
        "2001:0:a9fe:a9fe::1",
        "100::1",
        "2001:10::1",
        "3fff::1",
    ],
)
def test_internal_addresses_are_refused(address):
    assert address_refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "2a00:1450:4001:81c::200e",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_public_addresses_are_accepted(address):
    assert address_refusal(ipaddress.ip_address(address)) is None


def test_nat64_loophole_of_is_global_is_closed():
    addr = ipaddress.ip_address("64:ff9b::a9fe:a9fe")
    assert "169.254.169.254" in address_refusal(addr)


def test_request_target_is_percent_encoded_and_fragment_dropped():
    target = safe_fetch.parse_target(
        "http://xn--bcher-kva.example/ä b?q=ü#frag".replace(" ", "%20")
    )
    assert target.request_target == "/%C3%A4%20b?q=%C3%BC"
    assert target.host == "xn--bcher-kva.example"
    assert safe_fetch.parse_target("http://bücher.example/").host == "xn--bcher-kva.example"


# --------------------------------------------------------------------------- HTTPS


@pytest.fixture
def tls_server(tmp_path):
    """An HTTPS server on loopback whose certificate names `images.test` (CA in tmp_path)."""
    import ssl

    from collectors_module.api.management.commands.devcert import write_dev_certs

    certs = write_dev_certs(tmp_path, hosts=["images.test"])
    seen_sni: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certs["cert"]), str(certs["key"]))
    context.sni_callback = lambda sock, name, ctx: seen_sni.append(name)
    srv = Server()
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv, certs["ca"], seen_sni
    srv.shutdown()
    srv.server_close()


def test_https_is_pinned_and_verifies_the_name(tls_server, settings, monkeypatch):
    srv, ca, seen_sni = tls_server
    settings.SAFE_FETCH_ALLOWED_HOSTS = [f"images.test:{srv.port}", f"wrong.test:{srv.port}"]
    settings.SAFE_FETCH_CA_FILE = str(ca)
    dns = Resolver(
        monkeypatch, {"images.test": ["127.0.0.1", "192.0.2.99"], "wrong.test": ["127.0.0.1"]}
    )
    result = fetch(f"https://images.test:{srv.port}/image.png")
    assert result.content == PNG_1x1
    assert dns.calls == ["images.test"]
    assert seen_sni == ["images.test"]
    assert [(p, h) for p, h, _ in srv.requests] == [("/image.png", f"images.test:{srv.port}")]
    # Same address, but the certificate does not name this host: refused by TLS verification.
    assert failure(f"https://wrong.test:{srv.port}/image.png").reason == "tls_failed"
    assert len(srv.requests) == 1
