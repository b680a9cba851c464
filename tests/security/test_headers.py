"""Security headers on HTML responses (full pages and htmx partials) and `check --deploy`."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.urls import URLPattern, URLResolver, get_resolver

ROOT = Path(__file__).resolve().parents[2]


def assert_html_security_headers(response, what: str) -> None:
    assert response["X-Frame-Options"] == "DENY", what
    csp = response.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp, f"{what}: {csp!r}"
    assert re.search(r"script-src [^;]*'nonce-[A-Za-z0-9_-]{16,}'", csp), f"{what}: {csp!r}"
    assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";", 1)[0], what
    assert response["X-Content-Type-Options"] == "nosniff", what
    assert response.get("Referrer-Policy") == "same-origin", what


def test_login_page_has_security_headers(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert_html_security_headers(response, "login page")


def test_htmx_request_gets_the_same_headers(client, alice):
    client.force_login(alice.user)
    response = client.get("/accounts/keys/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert_html_security_headers(response, "htmx keys partial")


def test_csp_nonce_is_fresh_per_response(client):
    first = client.get("/accounts/login/")["Content-Security-Policy"]
    second = client.get("/accounts/login/")["Content-Security-Policy"]
    assert first != second


def _html_routes():
    def walk(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                yield prefix + str(p.pattern)

    for route in walk(get_resolver().url_patterns):
        if route.startswith(("^v2/", "v2/", "api/")) or route.startswith("^"):
            continue
        yield route


def test_every_html_page_and_partial_has_security_headers(client, alice):
    """GET every non-API route (filled with Alice's app id) as Alice, as a page and as an htmx
    request; every HTML answer -- 200, 302 target pages, 404, 405 -- carries the headers."""
    client.force_login(alice.user)
    checked = 0
    for route in _html_routes():
        path = "/" + re.sub(
            r"<(?:\w+:)?(\w+)>", lambda m: "app1" if m.group(1) == "app_id" else "x", route
        )
        for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
            response = client.get(path, **headers)
            if response.get("Content-Type", "").startswith("text/html"):
                assert_html_security_headers(response, f"GET {path} {headers}")
                checked += 1
            else:
                assert response["X-Frame-Options"] == "DENY", path
    assert checked >= 10


def test_hsts_is_sent_over_tls_when_configured(client, settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    response = client.get("/accounts/login/", secure=True)
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")


def _check_deploy(extra_env: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("COLLECTORS_DEV", "DEBUG")}
    db = connection.settings_dict
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        ALLOWED_HOSTS="collectors.example.com",
        DJANGO_SETTINGS_MODULE="collectors_module.settings",
        **extra_env,
    )
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.django_db
def test_check_deploy_has_no_warnings_with_production_settings():
    result = _check_deploy({"SECRET_KEY": secrets.token_urlsafe(50), "DEBUG": "0", "USE_TLS": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.django_db
def test_check_deploy_does_fail_on_a_weak_setup():
    """Guards the test above: the same command reports warnings when settings are weak."""
    result = _check_deploy({"SECRET_KEY": "short", "DEBUG": "1", "USE_TLS": "0"})
    assert result.returncode != 0
    assert "security.W" in result.stdout + result.stderr
