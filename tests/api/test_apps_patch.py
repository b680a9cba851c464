"""PatchApp and PatchApps: description, notes, visibility and metadata change with overwrite,
merge and remove; unknown actions, fields that cannot change and another user's apps are
refused with a Clarifai status, and nothing is half-changed."""

from __future__ import annotations

import pytest

from collectors_module.applications.models import App
from collectors_module.core.errors import SC

APP = "/v2/users/alice/apps/app1"
APPS = "/v2/users/alice/apps"


def stored(tenant_app) -> tuple:
    row = App.objects.get(pk=tenant_app.pk)
    return (row.description, row.notes, row.visibility, row.metadata)


def test_patch_app_overwrites_merges_and_removes(api, alice):
    r = api.patch(
        APP,
        {
            "action": "overwrite",
            "app": {"description": "photos", "notes": "from the shop", "metadata": {"a": 1}},
        },
        key=alice.secret,
    )
    assert r["status"]["code"] == SC.SUCCESS, r
    assert r["app"]["description"] == "photos"
    assert r["app"]["notes"] == "from the shop"
    r = api.patch(APP, {"action": "merge", "app": {"metadata": {"b": {"c": 2}}}}, key=alice.secret)
    assert r["app"]["metadata"] == {"a": 1, "b": {"c": 2}}
    r = api.patch(APP, {"action": "overwrite", "app": {"metadata": {"z": True}}}, key=alice.secret)
    assert r["app"]["metadata"] == {"z": True}
    r = api.patch(
        APP,
        {"action": "remove", "app": {"notes": "x", "metadata": {"z": None}}},
        key=alice.secret,
    )
    assert r["status"]["code"] == SC.SUCCESS, r
    assert stored(alice.app) == ("photos", "", 10, {})
    got = api.get(APP, key=alice.secret)["app"]
    assert got["description"] == "photos"


def test_metadata_action_overrides_the_action_for_metadata(api, alice):
    api.patch(APP, {"action": "overwrite", "app": {"metadata": {"a": 1}}}, key=alice.secret)
    r = api.patch(
        APP,
        {
            "action": "overwrite",
            "metadata_action": {"op": "merge"},
            "app": {"description": "d", "metadata": {"b": 2}},
        },
        key=alice.secret,
    )
    assert r["app"]["metadata"] == {"a": 1, "b": 2}


def test_patch_apps_changes_several_apps_all_or_none(api, alice, make_app):
    make_app(alice.user, "second")
    r = api.patch(
        APPS,
        {
            "action": "overwrite",
            "apps": [
                {"id": "app1", "description": "one"},
                {"id": "second", "visibility": {"gettable": 50}},
            ],
        },
        key=alice.secret,
    )
    assert r["status"]["code"] == SC.SUCCESS, r
    assert [a["id"] for a in r["apps"]] == ["app1", "second"]
    assert App.objects.get(owner=alice.user, public_id="second").visibility == 50
    before = [stored(a) for a in App.objects.filter(owner=alice.user).order_by("pk")]
    r = api.patch(
        APPS,
        {
            "action": "overwrite",
            "apps": [
                {"id": "app1", "description": "changed"},
                {"id": "second", "image": {"url": "https://x.test/i.png"}},
            ],
        },
        key=alice.secret,
    )
    assert r["status"]["code"] == SC.CONN_INVALID_REQUEST
    assert "image" in r["status"]["details"]
    assert [stored(a) for a in App.objects.filter(owner=alice.user).order_by("pk")] == before


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"action": "replace", "app": {"description": "x"}}, "replace"),
        ({"action": "", "app": {"description": "x"}}, "action is required"),
        (
            {"action": "overwrite", "app": {"id": "other-id", "description": "x"}},
            "id cannot be changed",
        ),
        ({"action": "overwrite", "app": {"user_id": "bob"}}, "user_id cannot be changed"),
        ({"action": "overwrite", "app": {"default_workflow_id": "General"}}, "default_workflow_id"),
        ({"action": "overwrite", "app": {"visibility": {"gettable": 7}}}, "visibility"),
        ({"action": "remove", "app": {"visibility": {"gettable": 50}}}, "cannot be removed"),
        ({"action": "overwrite", "app": {"description": "x" * 600}}, "512"),
        ({"action": "overwrite", "app": {"description": "nul\u0000"}}, "NUL"),
        ({"action": "overwrite", "app": {"metadata": {"k": "nul\u0000"}}}, "NUL"),
        ({"action": "overwrite", "app": {}}, "nothing to patch"),
    ],
)
def test_bad_app_patches_are_refused_and_change_nothing(api, alice, body, needle):
    api.patch(APP, {"action": "overwrite", "app": {"description": "kept"}}, key=alice.secret)
    before = stored(alice.app)
    r = api.patch(APP, body, key=alice.secret)
    assert r["_http"] == 400, r
    assert r["status"]["code"] == SC.CONN_INVALID_REQUEST
    assert needle in r["status"]["details"]
    assert stored(alice.app) == before


def test_another_users_app_cannot_be_patched(api, alice, bob):
    before = stored(bob.app)
    r = api.patch(
        "/v2/users/bob/apps/bobapp",
        {"action": "overwrite", "app": {"description": "alice was here"}},
        key=alice.secret,
    )
    assert (r["_http"], r["status"]["code"]) == (404, SC.CONN_DOES_NOT_EXIST)
    r = api.patch(
        APPS,
        {"action": "overwrite", "apps": [{"id": "bobapp", "description": "x"}]},
        key=alice.secret,
    )
    assert (r["_http"], r["status"]["code"]) == (404, SC.CONN_DOES_NOT_EXIST)
    r = api.patch(
        "/v2/users/bob/apps",
        {"action": "overwrite", "apps": [{"id": "bobapp", "description": "x"}]},
        key=alice.secret,
    )
    assert (r["_http"], r["status"]["code"]) == (404, SC.CONN_DOES_NOT_EXIST)
    assert stored(bob.app) == before
