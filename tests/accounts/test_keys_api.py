"""Keys over REST: PostKeys (secret once), List/Get/Patch/Delete (public ids), ListAppKeys, MyScopes."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from collectors_module.accounts.models import Key
from collectors_module.core.auth import digest_secret

KEYS = "/v2/users/alice/keys"


def test_post_keys_returns_the_secret_once_and_lists_only_the_public_id(api, alice):
    r = api.post(
        KEYS,
        {"keys": [{"description": "ci key", "scopes": ["Inputs:Get", "Apps:Get"]}]},
        key=alice.secret,
    )
    assert (r["_http"], r["status"]["code"]) == (200, 10000), r
    made = r["keys"][0]
    secret = made["id"]
    assert secret.startswith("clct_")
    assert made["type"] == "personal_access_token"
    assert made["scopes"] == ["Inputs:Get", "Apps:Get"]
    stored = Key.objects.get(digest=digest_secret(secret))
    assert stored.description == "ci key"
    assert secret not in str(stored.__dict__)  # only the digest is kept

    r = api.get(KEYS, key=alice.secret)
    assert r["status"]["code"] == 10000
    ids = [k["id"] for k in r["keys"]]
    assert stored.public_id in ids
    assert secret not in str(r)

    r = api.get(f"{KEYS}/{stored.public_id}", key=alice.secret)
    assert r["key"]["id"] == stored.public_id
    assert r["key"]["description"] == "ci key"
    assert "created_at" in r["key"]

    # The new secret is a working key with exactly its scopes.
    r = api.get("/v2/myscopes", key=secret)
    assert r["status"]["code"] == 10000
    assert sorted(r["scopes"]) == ["Apps:Get", "Inputs:Get"]


def test_post_app_key_is_bound_to_the_app_and_works_on_short_paths(api, alice):
    r = api.post(KEYS, {"keys": [{"scopes": ["All"], "apps": [{"id": "app1"}]}]}, key=alice.secret)
    assert r["status"]["code"] == 10000, r
    made = r["keys"][0]
    assert made["type"] == "app_specific_key"
    assert made["apps"][0]["id"] == "app1"
    app_secret = made["id"]

    r = api.get("/v2/myscopes", key=app_secret)
    assert r["app"]["id"] == "app1"
    assert r["app"]["user_id"] == "alice"
    r = api.post(
        "/v2/inputs", {"inputs": [{"id": "t1", "data": {"text": {"raw": "hi"}}}]}, key=app_secret
    )
    assert r["status"]["code"] == 10000, r


def test_app_key_for_an_app_the_caller_does_not_own_does_not_exist(api, alice, bob):
    for apps in ([{"id": "bobapp", "user_id": "bob"}], [{"id": "bobapp"}], [{"id": "nope"}]):
        r = api.post(KEYS, {"keys": [{"scopes": ["All"], "apps": apps}]}, key=alice.secret)
        assert (r["_http"], r["status"]["code"]) == (404, 11101), (apps, r)
    assert not Key.objects.filter(owner=alice.user, app__isnull=False).exists()


def test_post_keys_refuses_unknown_scopes_and_past_expiry(api, alice):
    r = api.post(KEYS, {"keys": [{"scopes": ["Inputs:Everything"]}]}, key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (400, 11102)
    assert "Inputs:Everything" in r["status"]["details"]
    r = api.post(
        KEYS,
        {"keys": [{"scopes": ["All"], "expires_at": "2001-01-01T00:00:00Z"}]},
        key=alice.secret,
    )
    assert r["status"]["code"] == 11102
    r = api.post(KEYS, {"keys": [{"scopes": []}]}, key=alice.secret)
    assert r["status"]["code"] == 11102
    assert Key.objects.filter(owner=alice.user).count() == 1


def test_post_keys_is_all_or_nothing(api, alice):
    body = {"keys": [{"scopes": ["All"], "description": "ok"}, {"scopes": ["Bogus"]}]}
    r = api.post(KEYS, body, key=alice.secret)
    assert r["status"]["code"] == 11102
    assert not Key.objects.filter(owner=alice.user, description="ok").exists()


def test_a_key_cannot_grant_scopes_it_does_not_hold(api, alice, make_key):
    limited = make_key(alice.user, scopes=["Keys:Add", "Keys:Get", "Apps:Get"])
    r = api.post(KEYS, {"keys": [{"scopes": ["All"]}]}, key=limited.secret)
    assert (r["_http"], r["status"]["code"]) == (403, 11007)
    r = api.post(KEYS, {"keys": [{"scopes": ["Keys:Get"]}]}, key=limited.secret)
    assert r["status"]["code"] == 10000


def test_list_keys_shows_only_own_keys(api, alice, bob):
    r = api.get(KEYS, key=alice.secret)
    assert [k["id"] for k in r["keys"]] == [alice.key.public_id]
    r = api.get("/v2/users/bob/keys", key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (404, 11101)


def test_another_tenants_key_does_not_exist(api, alice, bob):
    for path in (f"{KEYS}/{bob.key.public_id}", f"/v2/users/bob/keys/{bob.key.public_id}"):
        assert api.get(path, key=alice.secret)["status"]["code"] == 11101
        assert api.delete(path, key=alice.secret)["status"]["code"] == 11101
    # Not even by its secret: a secret in a path is refused before any lookup.
    assert api.get(f"{KEYS}/{bob.secret}", key=alice.secret)["status"]["code"] == 11102

    bob.key.refresh_from_db()
    assert bob.key.revoked_at is None


def test_delete_key_revokes_it_and_it_stops_working(api, alice, make_key):
    other = make_key(alice.user, scopes=["All"], description="to revoke")
    assert api.get("/v2/myscopes", key=other.secret)["status"]["code"] == 10000
    r = api.delete(f"{KEYS}/{other.key.public_id}", key=alice.secret)
    assert r["status"]["code"] == 10000, r
    row = Key.objects.get(pk=other.key.pk)  # kept, so collectors can say "key revoked"
    assert row.revoked_at is not None
    r = api.get("/v2/myscopes", key=other.secret)
    assert (r["_http"], r["status"]["code"]) == (401, 11008)
    assert api.get(f"{KEYS}/{other.key.public_id}", key=alice.secret)["status"]["code"] == 11101
    assert other.key.public_id not in [k["id"] for k in api.get(KEYS, key=alice.secret)["keys"]]
    assert api.delete(f"{KEYS}/{other.key.public_id}", key=alice.secret)["status"]["code"] == 11101


def test_delete_key_refuses_the_secret_in_the_path(api, alice):
    made = api.post(KEYS, {"keys": [{"scopes": ["Predict"]}]}, key=alice.secret)["keys"][0]
    r = api.delete(f"{KEYS}/{made['id']}", key=alice.secret)
    assert r["status"]["code"] == 11102
    assert api.get("/v2/myscopes", key=made["id"])["status"]["code"] == 10000


def test_expired_key_is_refused(api, alice, make_key):
    k = make_key(alice.user)
    Key.objects.filter(pk=k.key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    r = api.get(KEYS, key=k.secret)
    assert (r["_http"], r["status"]["code"]) == (401, 11008)


def test_keys_rpcs_need_a_personal_access_token(api, alice, make_key):
    app_key = make_key(alice.user, app=alice.app)
    for r in (
        api.get(KEYS, key=app_key.secret),
        api.post(KEYS, {"keys": [{"scopes": ["All"]}]}, key=app_key.secret),
        api.get(f"{KEYS}/{alice.key.public_id}", key=app_key.secret),
    ):
        assert (r["_http"], r["status"]["code"]) == (403, 11007), r


def test_missing_wrong_key_and_missing_scopes_on_keys(api, alice, make_key):
    assert api.get(KEYS)["status"]["code"] == 11008
    assert api.get(KEYS, key="clct_wrong")["status"]["code"] == 11008
    weak = make_key(alice.user, scopes=["Inputs:Get"])
    r = api.get(KEYS, key=weak.secret)
    assert (r["_http"], r["status"]["code"]) == (403, 11007)
    r = api.delete(f"{KEYS}/{alice.key.public_id}", key=weak.secret)
    assert r["status"]["code"] == 11007
    alice.key.refresh_from_db()
    assert alice.key.revoked_at is None


def test_broken_json_on_post_keys(api, alice):
    r = api.post(KEYS, raw=b'{"keys": [', key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (400, 11100)


def test_list_app_keys_lists_that_apps_keys_only(api, alice, bob, make_app, make_key):
    other_app = make_app(alice.user, "app2")
    k1 = make_key(alice.user, app=alice.app)
    make_key(alice.user, app=other_app)
    r = api.get("/v2/users/alice/apps/app1/keys", key=alice.secret)
    assert r["status"]["code"] == 10000
    assert [k["id"] for k in r["keys"]] == [k1.key.public_id]
    r = api.get("/v2/users/bob/apps/bobapp/keys", key=alice.secret)
    assert r["status"]["code"] == 11101


def test_my_scopes_of_a_pat_and_of_an_app_key(api, alice, make_key):
    r = api.get("/v2/myscopes", key=alice.secret)
    assert r["scopes"] == ["All"]
    assert "app" not in r or not r["app"].get("id")
    r = api.get("/v2/users/alice/apps/app1/myscopes", key=alice.secret)
    assert r["app"]["id"] == "app1"
    app_key = make_key(alice.user, scopes=["Predict"], app=alice.app)
    r = api.get("/v2/my_scopes", key=app_key.secret)
    assert r["scopes"] == ["Predict"]
    assert r["app"]["id"] == "app1"


def test_patch_keys_changes_scopes_and_description(api, alice, make_key):
    k = make_key(alice.user, scopes=["Predict"])
    body = {"action": "merge", "keys": [{"id": k.key.public_id, "scopes": ["Inputs:Get"]}]}
    r = api.patch(KEYS, body, key=alice.secret)
    assert r["status"]["code"] == 10000, r
    assert r["keys"][0]["scopes"] == ["Predict", "Inputs:Get"]
    body = {
        "action": "overwrite",
        "keys": [{"id": k.key.public_id, "scopes": ["Apps:Get"], "description": "renamed"}],
    }
    r = api.patch(KEYS, body, key=alice.secret)
    k.key.refresh_from_db()
    assert (k.key.scopes, k.key.description) == (["Apps:Get"], "renamed")
    # Another tenant's key cannot be patched.
    r = api.patch(KEYS, {"keys": [{"id": "0" * 32, "scopes": ["All"]}]}, key=alice.secret)
    assert r["status"]["code"] == 11101


def test_get_key_takes_only_the_public_id_so_secrets_stay_out_of_urls(api, alice, make_key):
    other = make_key(alice.user, description="mine")
    r = api.get(f"{KEYS}/{other.secret}", key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (400, 11102)
    assert other.secret not in str(r)
    assert (
        api.get(f"{KEYS}/{other.key.public_id}", key=alice.secret)["key"]["description"] == "mine"
    )


def test_patch_keys_cannot_rebind_or_escalate(api, alice, make_app, make_key):
    make_app(alice.user, "app2")
    k = make_key(alice.user, scopes=["Predict"], app=alice.app)
    same = {"id": k.key.public_id, "apps": [{"id": "app1"}], "description": "echo"}
    assert api.patch(KEYS, {"keys": [same]}, key=alice.secret)["status"]["code"] == 10000
    moved = {"id": k.key.public_id, "apps": [{"id": "app2"}]}
    assert api.patch(KEYS, {"keys": [moved]}, key=alice.secret)["status"]["code"] == 11102
    limited = make_key(alice.user, scopes=["Keys:Add", "Keys:Get"])
    up = {"action": "merge", "keys": [{"id": k.key.public_id, "scopes": ["All"]}]}
    r = api.patch(KEYS, up, key=limited.secret)
    assert r["status"]["code"] == 11007
    k.key.refresh_from_db()
    assert (k.key.app_id, k.key.scopes) == (alice.app.pk, ["Predict"])


def test_list_keys_filters_by_scopes_type_and_expiry(api, alice, make_key):
    predict = make_key(alice.user, scopes=["Predict", "Inputs:Get"])
    app_key = make_key(alice.user, scopes=["Predict"], app=alice.app)
    gone = make_key(alice.user, scopes=["Predict", "Inputs:Get"])
    Key.objects.filter(pk=gone.key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    def ids(params):
        r = api.get(KEYS, params, key=alice.secret)
        assert r["status"]["code"] == 10000, r
        return {k["id"] for k in r["keys"]}

    assert ids({"scopes": ["Predict", "Inputs:Get"]}) == {predict.key.public_id, gone.key.public_id}
    assert ids({"scopes": ["Predict", "Inputs:Get"], "not_expired": "true"}) == {
        predict.key.public_id
    }
    assert ids({"type": "app_specific_key"}) == {app_key.key.public_id}
    assert ids({"scopes": ["\u009b\u00c2 odd"]}) == set()
    r = api.get(KEYS, {"type": "weird"}, key=alice.secret)
    assert r["status"]["code"] == 11102
