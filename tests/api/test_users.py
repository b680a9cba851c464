"""GetUser: a personal access token reads its own user ('me' or its id); anybody else is 11101."""

from __future__ import annotations

from collectors_module.core.errors import SC


def test_get_user_answers_the_keys_own_user(api, alice):
    alice.user.first_name, alice.user.email = "Alice", "alice@example.com"
    alice.user.save()
    for path in ("/v2/users/alice", "/v2/users/me"):
        r = api.get(path, key=alice.secret)
        assert r["status"]["code"] == SC.SUCCESS, r
        assert r["user"]["id"] == "alice"
        assert r["user"]["first_name"] == "Alice"
        assert r["user"]["primary_email"] == "alice@example.com"
        assert r["user"]["created_at"]


def test_another_user_does_not_exist(api, alice, bob):
    for user_id in ("bob", "nobody"):
        r = api.get(f"/v2/users/{user_id}", key=alice.secret)
        assert (r["_http"], r["status"]["code"]) == (404, SC.CONN_DOES_NOT_EXIST)
        assert "bob@" not in str(r)


def test_app_keys_cannot_read_users(api, alice, make_key):
    app_key = make_key(alice.user, app=alice.app)
    r = api.get("/v2/users/alice", key=app_key.secret)
    assert r["status"]["code"] == SC.CONN_INSUFFICIENT_SCOPES
    assert "personal access token" in r["status"]["details"]
