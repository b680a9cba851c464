"""Collector RPCs over REST: the product page's bodies, path forms, status, paging, tenancy, and the
extension endpoints (capture log, stats, limits)."""

from __future__ import annotations

import json

import pytest

from collectors_module.collectors.models import Collector
from collectors_module.workflows.models import Workflow

BASE = "/v2/users/alice/apps/app1/collectors"
SENTIMENT_VERSION = "996e3c70d6372b1e7e3c10875ebd2b8b"


@pytest.fixture(autouse=True)
def _fresh_index():
    from collectors_module.capture import limits, matching

    matching.invalidate()
    limits.rate_limiter.reset()
    limits.backlog.reset()
    yield
    matching.invalidate()


@pytest.fixture
def own_model(api, alice):
    """alice's own model in app1 (the product page collects from USER_ID/APP_ID/MODEL_ID)."""
    body = {
        "model": {
            "id": "my-sentiment",
            "model_type_id": "text-classifier",
            "model_version": {"metadata": {"runner": "builtin:sentiment"}},
        }
    }
    r = api.post("/v2/users/alice/apps/app1/models", body, key=alice.secret)
    assert r["status"]["code"] == 10000, r
    return r["model"]


@pytest.fixture
def workflows(alice):
    pre = Workflow.objects.create(app=alice.app, public_id="pre-wf")
    post = Workflow.objects.create(app=alice.app, public_id="post-wf")
    return pre, post


def page_body(alice, own_model, collector_id="YOUR_COLLECTOR_ID", key=None, caller="alice"):
    """The product page's PostCollectors/PatchCollectors collector, with real values filled in."""
    return {
        "id": collector_id,
        "description": "collects alice's predictions",
        "pre_queue_workflow_id": "pre-wf",
        "post_queue_workflow_id": "post-wf",
        "collector_source": {
            "api_post_model_outputs_collector_source": {
                "model_user_id": "alice",
                "model_app_id": "app1",
                "model_id": own_model["id"],
                "model_version_id": own_model["model_version"]["id"],
                "post_inputs_key_id": key if key is not None else alice.secret,
                "caller_user_id": caller,
            }
        },
    }


def builtin_body(collector_id, key_id, caller="alice", **extra):
    return {
        "id": collector_id,
        "pre_queue_random_sample": 1.0,
        "collector_source": {
            "api_post_model_outputs_collector_source": {
                "model_user_id": "builtin",
                "model_app_id": "main",
                "model_id": "sentiment",
                "model_version_id": SENTIMENT_VERSION,
                "post_inputs_key_id": key_id,
                "caller_user_id": caller,
            }
        },
        **extra,
    }


def test_post_collector_with_the_product_page_body(api, alice, own_model, workflows):
    body = {"user_app_id": {"user_id": "alice", "app_id": "app1"},
            "collectors": [page_body(alice, own_model)]}  # fmt: skip
    r = api.post(BASE, body, key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (200, 10000), r
    c = r["collectors"][0]
    assert c["id"] == "YOUR_COLLECTOR_ID"
    assert c["pre_queue_workflow_id"] == "pre-wf"
    assert c["post_queue_workflow_id"] == "post-wf"
    assert c["status"]["code"] == 52001  # active by default
    src = c["collector_source"]["api_post_model_outputs_collector_source"]
    assert src["post_inputs_key_id"] == alice.key.public_id  # the secret came in, the id goes out
    assert src["caller_user_id"] == "alice"
    assert src["model_version_id"] == own_model["model_version"]["id"]
    assert c["created_at"]


def test_the_post_inputs_key_secret_is_never_stored_or_returned(api, alice, own_model, workflows):
    r = api.post(BASE, {"collectors": [page_body(alice, own_model)]}, key=alice.secret)
    assert r["status"]["code"] == 10000
    for response in (
        r,
        api.get(BASE, key=alice.secret),
        api.get(f"{BASE}/YOUR_COLLECTOR_ID", key=alice.secret),
    ):
        assert alice.secret not in json.dumps(response)
    row = Collector.objects.values().get(public_id="YOUR_COLLECTOR_ID")
    assert alice.secret not in json.dumps(row, default=str)
    assert row["post_inputs_key_id"] == alice.key.pk


def test_patch_overwrite_with_the_product_page_body(api, alice, own_model, workflows):
    assert (
        api.post(BASE, {"collectors": [page_body(alice, own_model)]}, key=alice.secret)["status"][
            "code"
        ]
        == 10000
    )
    changed = page_body(alice, own_model, key=alice.key.public_id)
    changed["description"] = "now without a pre-queue workflow"
    changed["pre_queue_workflow_id"] = ""
    body = {
        "user_app_id": {"user_id": "alice", "app_id": "app1"},
        "action": "overwrite",
        "collectors": [changed],
    }
    r = api.patch(BASE, body, key=alice.secret)
    assert r["status"]["code"] == 10000, r
    c = r["collectors"][0]
    assert c["description"] == "now without a pre-queue workflow"
    assert c.get("pre_queue_workflow_id", "") == ""
    assert c["post_queue_workflow_id"] == "post-wf"


def test_patch_keeps_status_unless_given_and_can_set_it(api, alice, own_model, workflows):
    body = page_body(alice, own_model)
    body["status"] = {"code": "COLLECTOR_INACTIVE"}
    assert (
        api.post(BASE, {"collectors": [body]}, key=alice.secret)["collectors"][0]["status"]["code"]
        == 52002
    )
    plain = page_body(alice, own_model)
    r = api.patch(BASE, {"action": "overwrite", "collectors": [plain]}, key=alice.secret)
    assert r["collectors"][0]["status"]["code"] == 52002
    plain["status"] = {"code": 52001}
    r = api.patch(BASE, {"action": "overwrite", "collectors": [plain]}, key=alice.secret)
    assert r["collectors"][0]["status"]["code"] == 52001


@pytest.mark.parametrize("action", ["merge", "remove", ""])
def test_patch_actions_other_than_overwrite_are_refused(api, alice, own_model, workflows, action):
    api.post(BASE, {"collectors": [page_body(alice, own_model)]}, key=alice.secret)
    changed = page_body(alice, own_model)
    changed["description"] = "changed"
    r = api.patch(BASE, {"action": action, "collectors": [changed]}, key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (400, 11102)
    assert "overwrite" in r["status"]["details"]
    assert Collector.objects.get(public_id="YOUR_COLLECTOR_ID").description != "changed"


def test_patch_of_a_missing_collector_does_not_exist(api, alice, own_model, workflows):
    r = api.patch(BASE, {"action": "overwrite", "collectors": [page_body(alice, own_model, "nope")]},
                  key=alice.secret)  # fmt: skip
    assert (r["_http"], r["status"]["code"]) == (404, 11101)


def test_list_and_get_with_page_and_per_page(api, alice):
    for i in range(5):
        r = api.post(
            BASE, {"collectors": [builtin_body(f"c{i}", alice.key.public_id)]}, key=alice.secret
        )
        assert r["status"]["code"] == 10000, r
    r = api.get(BASE, {"user_app_id.user_id": "alice", "user_app_id.app_id": "app1", "page": 2, "per_page": 2},
                key=alice.secret)  # fmt: skip
    assert r["status"]["code"] == 10000
    assert [c["id"] for c in r["collectors"]] == ["c2", "c1"]  # newest first
    assert len(api.get(BASE, key=alice.secret)["collectors"]) == 5
    r = api.get(f"{BASE}/c3", key=alice.secret)
    assert r["collector"]["id"] == "c3"


def test_short_paths_with_an_app_key(api, alice, make_key):
    app_key = make_key(alice.user, app=alice.app)
    r = api.post("/v2/collectors", {"collectors": [builtin_body("short", app_key.key.public_id)]},
                 key=app_key.secret)  # fmt: skip
    assert r["status"]["code"] == 10000, r
    assert api.get("/v2/collectors", key=app_key.secret)["collectors"][0]["id"] == "short"
    assert api.get("/v2/collectors/short", key=app_key.secret)["collector"]["id"] == "short"
    body = builtin_body("short", app_key.key.public_id, description="patched")
    assert api.patch("/v2/collectors", {"action": "overwrite", "collectors": [body]},
                     key=app_key.secret)["collectors"][0]["description"] == "patched"  # fmt: skip
    assert (
        api.delete("/v2/collectors", {"ids": ["short"]}, key=app_key.secret)["status"]["code"]
        == 10000
    )
    assert not Collector.objects.exists()


def test_delete_by_ids_and_delete_all(api, alice):
    for i in range(4):
        api.post(
            BASE, {"collectors": [builtin_body(f"c{i}", alice.key.public_id)]}, key=alice.secret
        )
    r = api.delete(BASE, {"user_app_id": {"user_id": "alice", "app_id": "app1"}, "ids": ["c0", "c1"]},
                   key=alice.secret)  # fmt: skip
    assert r["status"]["code"] == 10000, r
    assert sorted(Collector.objects.values_list("public_id", flat=True)) == ["c2", "c3"]
    r = api.delete(BASE, {"ids": ["c2", "missing"]}, key=alice.secret)
    assert r["status"]["code"] == 11101
    assert Collector.objects.count() == 2  # all or nothing
    r = api.delete(BASE, {}, key=alice.secret)
    assert r["status"]["code"] == 11102
    assert api.delete(BASE, {"delete_all": True}, key=alice.secret)["status"]["code"] == 10000
    assert not Collector.objects.exists()


def test_another_tenants_collector_does_not_exist(api, alice, bob):
    assert api.post(BASE, {"collectors": [builtin_body("mine", alice.key.public_id)]},
                    key=alice.secret)["status"]["code"] == 10000  # fmt: skip
    bob_base = "/v2/users/bob/apps/bobapp/collectors"
    for r in (
        api.get(f"{BASE}/mine", key=bob.secret),
        api.get(BASE, key=bob.secret),
        api.get(f"{bob_base}/mine", key=bob.secret),
        api.delete(BASE, {"ids": ["mine"]}, key=bob.secret),
        api.delete(bob_base, {"ids": ["mine"]}, key=bob.secret),
        api.patch(
            BASE,
            {"action": "overwrite", "collectors": [builtin_body("mine", bob.key.public_id, "bob")]},
            key=bob.secret,
        ),
    ):
        assert r["status"]["code"] == 11101, r
    assert api.get(bob_base, key=bob.secret).get("collectors", []) == []
    assert Collector.objects.filter(public_id="mine").count() == 1


def test_collector_rpcs_check_their_scopes(api, alice, make_key):
    reader = make_key(alice.user, scopes=["Apps:Get", "Collectors:Get"])
    r = api.post(BASE, {"collectors": [builtin_body("c", alice.key.public_id)]}, key=reader.secret)
    assert (r["_http"], r["status"]["code"]) == (403, 11007)
    assert api.get(BASE, key=reader.secret)["status"]["code"] == 10000
    assert api.delete(BASE, {"delete_all": True}, key=reader.secret)["status"]["code"] == 11007


def test_post_several_collectors_is_all_or_nothing(api, alice):
    body = {
        "collectors": [builtin_body("ok", alice.key.public_id), builtin_body("bad", "no-such-key")]
    }
    r = api.post(BASE, body, key=alice.secret)
    assert r["status"]["code"] == 11101
    assert not Collector.objects.exists()


# -- extension endpoints ----------------------------------------------------------------------


def test_limits_endpoint_reads_and_sets_the_extension_fields(api, alice, bob):
    api.post(BASE, {"collectors": [builtin_body("lim", alice.key.public_id)]}, key=alice.secret)
    url = "/api/v2/users/alice/apps/app1/collectors/lim/limits"
    r = api.get(url, key=alice.secret)
    assert r["limits"] == {
        "max_per_minute": 0,
        "max_per_hour": 0,
        "max_per_day": 0,
        "max_pending": 0,
    }
    r = api.patch(url, {"max_per_minute": 10, "max_pending": 50}, key=alice.secret)
    assert r["status"]["code"] == 10000, r
    assert r["limits"]["max_per_minute"] == 10
    c = Collector.objects.get(public_id="lim")
    assert (c.max_per_minute, c.max_pending, c.max_per_hour) == (10, 50, 0)
    r = api.patch(url, {"max_per_minute": -1}, key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (400, 11102)
    assert "max_per_minute" in r["status"]["details"]
    r = api.patch(url, {"limits": {"per_week": 3}}, key=alice.secret)
    assert r["status"]["code"] == 11102
    assert api.get(url, key=bob.secret)["status"]["code"] == 11101
    assert api.patch(url, {"max_per_minute": 1}, key=bob.secret)["_http"] == 404
    assert Collector.objects.get(public_id="lim").max_per_minute == 10


def test_capture_log_endpoint_pages_captures(api, alice, bob, make_key):
    from collectors_module.capture.models import Capture

    api.post(BASE, {"collectors": [builtin_body("log", alice.key.public_id)]}, key=alice.secret)
    c = Collector.objects.get(public_id="log")
    for i in range(5):
        Capture.objects.create(collector=c, request_id=f"r{i}", caller=alice.user)
    url = "/api/v2/users/alice/apps/app1/collectors/log/captures"
    r = api.get(url, {"page": 1, "per_page": 2}, key=alice.secret)
    assert r["status"]["code"] == 10000, r
    assert [x["request_id"] for x in r["captures"]] == ["r4", "r3"]
    assert r["captures"][0]["caller_user_id"] == "alice"
    assert r["captures"][0]["state"] == "accepted"
    assert len(api.get(url, {"page": 3, "per_page": 2}, key=alice.secret)["captures"]) == 1
    assert api.get(url, key=bob.secret)["status"]["code"] == 11101
    assert api.get(url, {"per_page": "x"}, key=alice.secret)["_http"] == 400
    assert api.get(url)["_http"] == 401
    app_key = make_key(alice.user, app=alice.app, scopes=["Apps:Get", "Collectors:Get"])
    assert len(api.get("/api/v2/collectors/log/captures", key=app_key.secret)["captures"]) == 5
    stats = api.get("/api/v2/users/alice/apps/app1/collectors/log/stats", key=alice.secret)
    assert stats["stats"]["pending"] == 5
    assert len(stats["timeline"]) == 60


def test_the_json_channel_requests_of_the_reference_get_clear_answers(api, alice):
    """clarifai-api.md §1.3: the requests the JSON channel sends, as they are."""
    me = {"user_app_id": {"user_id": "alice", "app_id": "app1"}}
    base = "/v2/users/alice/apps/app1/collectors"
    assert api.post(base, {**me, "collectors": [builtin_body("c2", alice.key.public_id)]},
                    key=alice.secret)["status"]["code"] == 10000  # fmt: skip
    q = {"user_app_id.user_id": "alice", "user_app_id.app_id": "app1"}
    assert (
        api.get(base, {**q, "page": 2, "per_page": 5}, key=alice.secret)["status"]["code"] == 10000
    )
    assert api.get(f"{base}/abc", q, key=alice.secret)["status"]["code"] == 11101
    # A collector without a source cannot collect anything: refused with the reason.
    r = api.post(
        base, {**me, "collectors": [{"id": "c1", "pre_queue_random_sample": 0.5}]}, key=alice.secret
    )
    assert (r["_http"], r["status"]["code"]) == (400, 11102)
    assert "collector_source" in r["status"]["details"]
    r = api.patch(
        base, {**me, "collectors": [{"id": "c1"}], "action": "overwrite"}, key=alice.secret
    )
    assert (r["_http"], r["status"]["code"]) == (404, 11101)
    r = api.patch(
        base, {**me, "collectors": [{"id": "c2"}], "action": "overwrite"}, key=alice.secret
    )
    assert (r["_http"], r["status"]["code"]) == (400, 11102)
    r = api.delete(base, {**me, "ids": ["c1", "c2"]}, key=alice.secret)
    assert r["status"]["code"] == 11101  # c1 does not exist: nothing deleted
    assert api.delete(base, {**me, "delete_all": True}, key=alice.secret)["status"]["code"] == 10000
    r = api.get("/v2/collectors", key=alice.secret)  # a PAT names no app on the short path
    assert (r["_http"], r["status"]["code"]) == (400, 11102)
    assert "needs an app" in r["status"]["details"]
