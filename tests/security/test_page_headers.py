"""Security headers and CSP-safe markup on the server-rendered pages and htmx partials."""

from __future__ import annotations

import pytest

from tests.support.pages import png_bytes

pytestmark = pytest.mark.usefixtures("media_root")


def _assert_security_headers(r):
    csp = r["Content-Security-Policy"]
    assert "script-src 'self' 'nonce-" in csp
    assert "style-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert r["X-Frame-Options"] == "DENY"
    assert r["X-Content-Type-Options"] == "nosniff"


def test_security_headers_on_full_pages_and_htmx_partials(alice, alice_client, make_input, client):
    _assert_security_headers(client.get("/accounts/login/"))
    _assert_security_headers(alice_client.get("/"))
    _assert_security_headers(alice_client.get("/accounts/keys/"))
    _assert_security_headers(
        alice_client.get("/apps/app1/", headers={"HX-Request": "true", "HX-Target": "gallery"})
    )
    r = alice_client.post(
        f"/accounts/keys/{alice.key.public_id}/revoke/", headers={"HX-Request": "true"}
    )
    _assert_security_headers(r)


def test_pages_have_no_inline_styles_or_unnonced_scripts(alice, alice_client, make_input):
    import re

    make_input(alice.app, "img1", image=png_bytes(), metadata={"collector": {"collector_id": "c"}})
    for path in [
        "/",
        "/new-app/",
        "/apps/app1/",
        "/apps/app1/inputs/img1/",
        "/accounts/keys/",
        "/accounts/account/",
    ]:
        r = alice_client.get(path)
        body = r.content.decode()
        nonce = re.search(r"'nonce-([^']+)'", r["Content-Security-Policy"]).group(1)
        assert " style=" not in body, path
        assert "hx-on" not in body, path
        for tag in re.findall(r"<script[^>]*>", body):
            assert f'nonce="{nonce}"' in tag, (path, tag)
