"""Keys page: create (secret shown once, only its digest stored), list, revoke, CSRF."""

from __future__ import annotations

import hashlib
import re

from django.test import Client

from collectors_module.accounts.models import Key
from collectors_module.api.descriptors import get_rpc
from tests.support.pages import PASSWORD


def _secret_in(page: str) -> str:
    match = re.search(r'id="key-secret"[^>]*value="([^"]+)"', page)
    assert match, "the result page shows the secret"
    return match.group(1)


def test_create_pat_shows_secret_once_and_stores_only_its_digest(alice, alice_client, api):
    r = alice_client.post(
        "/accounts/keys/", {"description": "ci key", "key_type": "pat", "preset": "all"}
    )
    assert r.status_code == 200
    assert "no-store" in r["Cache-Control"]
    secret = _secret_in(r.content.decode())
    key = Key.objects.get(description="ci key")
    assert key.digest == hashlib.sha256(secret.encode()).hexdigest()
    assert key.scopes == ["All"]
    assert key.app is None
    assert not Key.objects.filter(digest=secret).exists()
    # The secret is never shown again: not on the list page.
    listing = alice_client.get("/accounts/keys/").content.decode()
    assert key.public_id in listing
    assert "ci key" in listing
    assert secret not in listing
    # And it works against the API.
    assert api.get("/v2/users/alice/apps", key=secret)["status"]["code"] == 10000


def test_create_app_key_with_post_inputs_preset(alice, alice_client):
    r = alice_client.post(
        "/accounts/keys/",
        {"description": "ingest", "key_type": "app", "app": "app1", "preset": "post_inputs"},
    )
    assert r.status_code == 200
    key = Key.objects.get(description="ingest")
    assert key.app == alice.app
    assert key.type == "app_specific_key"
    assert set(get_rpc("PostInputs").scopes) <= set(key.scopes)
    assert {"Models:Get", "Predict"} <= set(key.scopes)
    assert "All" not in key.scopes


def test_create_key_with_custom_scopes(alice, alice_client):
    alice_client.post(
        "/accounts/keys/",
        {
            "description": "custom",
            "key_type": "pat",
            "preset": "custom",
            "scopes": ["Inputs:Get", "Collectors:Get"],
        },
    )
    assert Key.objects.get(description="custom").scopes == ["Inputs:Get", "Collectors:Get"]


def test_create_key_refuses_bad_choices_without_creating_a_key(alice, bob, alice_client):
    before = Key.objects.count()
    cases = [
        {"key_type": "app", "app": "", "preset": "all"},  # app key without an app
        {"key_type": "app", "app": "bobapp", "preset": "all"},  # another user's app
        {"key_type": "pat", "preset": "custom"},  # custom without scopes
        {"key_type": "pat", "preset": "custom", "scopes": ["Nope:Nope"]},
        {"key_type": "pat", "preset": "everything"},
    ]
    for data in cases:
        r = alice_client.post("/accounts/keys/", data)
        assert r.status_code == 400, data
        assert 'id="key-secret"' not in r.content.decode()
    assert Key.objects.count() == before


def test_keys_page_lists_only_own_keys(alice, bob, alice_client):
    page = alice_client.get("/accounts/keys/").content.decode()
    assert alice.key.public_id in page
    assert bob.key.public_id not in page


def test_revoke_with_htmx_returns_the_row_partial(alice, alice_client, api):
    r = alice_client.post(
        f"/accounts/keys/{alice.key.public_id}/revoke/", headers={"HX-Request": "true"}
    )
    assert r.status_code == 200
    body = r.content.decode().strip()
    assert body.startswith(f'<tr id="key-{alice.key.public_id}">')
    assert "Revoked" in body
    assert "<html" not in body
    alice.key.refresh_from_db()
    assert alice.key.revoked_at is not None
    assert api.get("/v2/users/alice/apps", key=alice.secret)["status"]["code"] == 11008


def test_revoke_with_plain_post_redirects_back_to_keys(alice, alice_client):
    r = alice_client.post(f"/accounts/keys/{alice.key.public_id}/revoke/")
    assert (r.status_code, r["Location"]) == (302, "/accounts/keys/")
    alice.key.refresh_from_db()
    assert alice.key.revoked_at is not None
    page = alice_client.get("/accounts/keys/").content.decode()
    assert "revoked" in page.lower()


def test_revoke_is_post_only_and_other_users_key_is_404(alice, bob, alice_client):
    assert alice_client.get(f"/accounts/keys/{alice.key.public_id}/revoke/").status_code == 405
    r = alice_client.post(f"/accounts/keys/{bob.key.public_id}/revoke/")
    assert r.status_code == 404
    bob.key.refresh_from_db()
    assert bob.key.revoked_at is None


def test_key_forms_refused_without_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    assert client.login(username="alice", password=PASSWORD)
    before = Key.objects.count()
    r = client.post("/accounts/keys/", {"description": "x", "key_type": "pat", "preset": "all"})
    assert r.status_code == 403
    assert Key.objects.count() == before
    r = client.post(f"/accounts/keys/{alice.key.public_id}/revoke/", headers={"HX-Request": "true"})
    assert r.status_code == 403
    alice.key.refresh_from_db()
    assert alice.key.revoked_at is None
    # With the token htmx sends (X-CSRFToken from <body hx-headers>), the revoke is accepted.
    page = client.get("/accounts/keys/").content.decode()
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    r = client.post(
        f"/accounts/keys/{alice.key.public_id}/revoke/",
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )
    assert r.status_code == 200


def test_other_forms_refused_without_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    assert client.login(username="alice", password=PASSWORD)
    assert client.post("/new-app/", {"app_id": "x1"}).status_code == 403
    assert client.post("/accounts/account/", {"plan": "community"}).status_code == 403
    assert client.post("/accounts/logout/").status_code == 403
