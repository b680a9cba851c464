"""Signing in and out, the account page, and the pages that need a login."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.support.pages import PASSWORD

pytestmark = pytest.mark.usefixtures("media_root")


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/new-app/",
        "/apps/app1/",
        "/apps/app1/inputs/x/",
        "/apps/app1/inputs/x/media",
        "/accounts/keys/",
        "/accounts/account/",
    ],
)
def test_pages_require_login(client, alice, path):
    r = client.get(path)
    assert r.status_code == 302
    assert r["Location"].startswith("/accounts/login/?next=")


def test_login_then_home_lists_apps_and_logout_ends_session(client, alice):
    r = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert (r.status_code, r["Location"]) == (302, "/")
    page = client.get("/").content.decode()
    assert "app1" in page
    assert "Your apps" in page
    ask = client.get("/accounts/logout/")  # a GET asks first (it never logs out)
    assert ask.status_code == 200
    assert "Log out of Collectors?" in ask.content.decode()
    assert 'method="post" action="/accounts/logout/"' in ask.content.decode()
    assert client.get("/").status_code == 200  # still logged in
    r = client.post("/accounts/logout/")
    assert r.status_code == 302
    assert client.get("/").status_code == 302


def test_wrong_password_is_refused(client, alice):
    r = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert r.status_code == 400
    assert "correct" in r.content.decode()
    assert client.get("/").status_code == 302


def test_login_next_is_followed_only_when_local(client, alice):
    r = client.post(
        "/accounts/login/?next=/apps/app1/", {"username": "alice", "password": PASSWORD}
    )
    assert r["Location"] == "/apps/app1/"
    client.post("/accounts/logout/")
    r = client.post(
        "/accounts/login/",
        {"username": "alice", "password": PASSWORD, "next": "https://evil.example/"},
    )
    assert r["Location"] == "/"


def test_login_form_refused_without_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    r = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert r.status_code == 403


def test_account_page_changes_plan(alice, alice_client):
    r = alice_client.post("/accounts/account/", {"plan": "enterprise"})
    assert r.status_code == 302
    alice.user.refresh_from_db()
    assert alice.user.plan == "enterprise"
    r = alice_client.post("/accounts/account/", {"plan": "platinum"})
    assert r.status_code == 400
    alice.user.refresh_from_db()
    assert alice.user.plan == "enterprise"
