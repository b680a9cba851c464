"""Each validation rule of collector create/overwrite, through the service (field names for the
form) and through REST (statuses for clients)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from clarifai_grpc.grpc.api import resources_pb2
from django.utils import timezone

from collectors_module.accounts.services import grant_capture, key_revoke, revoke_capture_grant
from collectors_module.collectors import services
from collectors_module.collectors.models import Collector
from collectors_module.core.errors import ApiError
from collectors_module.core.protojson import from_dict
from collectors_module.workflows.models import Workflow

SENTIMENT_VERSION = "996e3c70d6372b1e7e3c10875ebd2b8b"
BASE = "/v2/users/alice/apps/app1/collectors"


@pytest.fixture(autouse=True)
def _fresh_index():
    from collectors_module.capture import matching

    matching.invalidate()
    yield
    matching.invalidate()


def body(key_ref, *, collector_id="c1", caller="alice", model=None, **extra) -> dict:
    src = {
        "model_user_id": "builtin",
        "model_app_id": "main",
        "model_id": "sentiment",
        "model_version_id": SENTIMENT_VERSION,
        **(model or {}),
        "post_inputs_key_id": key_ref,
        "caller_user_id": caller,
    }
    out = {"id": collector_id, "collector_source": {"api_post_model_outputs_collector_source": src}}
    if not {"pre_queue_workflow_id", "post_queue_workflow_id", "pre_queue_random_sample"} & set(
        extra
    ):
        out["pre_queue_random_sample"] = 1.0
    out.update(extra)
    return out


def create(tenant, data, limits=None):
    pb = from_dict(data, resources_pb2.Collector)
    return services.collector_create(
        app=tenant.app, actor=tenant.user, collector_pb=pb, limits=limits
    )


def overwrite(tenant, data):
    pb = from_dict(data, resources_pb2.Collector)
    return services.collector_overwrite(app=tenant.app, actor=tenant.user, collector_pb=pb)


def refused(tenant, data, field, code=None, limits=None) -> ApiError:
    with pytest.raises(ApiError) as info:
        create(tenant, data, limits=limits)
    assert info.value.field == field, (info.value.field, info.value.details)
    if code is not None:
        assert info.value.code == code, info.value
    assert info.value.details
    assert not Collector.objects.filter(public_id=data["id"]).exists()
    return info.value


@pytest.fixture
def own_model(api, alice):
    r = api.post(
        "/v2/users/alice/apps/app1/models",
        {"model": {"id": "mine", "model_type_id": "text-classifier",
                   "model_version": {"metadata": {"runner": "builtin:sentiment"}}}},
        key=alice.secret,
    )  # fmt: skip
    assert r["status"]["code"] == 10000, r
    return {"model_user_id": "alice", "model_app_id": "app1", "model_id": "mine",
            "model_version_id": r["model"]["model_version"]["id"]}  # fmt: skip


# -- workflows / sampling ---------------------------------------------------------------------


def test_a_workflow_or_a_sample_is_required(alice):
    data = body(alice.key.public_id, pre_queue_random_sample=0)
    err = refused(alice, data, "pre_queue_workflow_id", 11102)
    assert "at least" in err.details
    Workflow.objects.create(app=alice.app, public_id="wf")
    assert (
        create(
            alice, body(alice.key.public_id, post_queue_workflow_id="wf")
        ).post_queue_workflow.public_id
        == "wf"
    )


@pytest.mark.parametrize("value", [-0.1, 1.5, "NaN", "Infinity", "-Infinity"])
def test_random_sample_must_be_a_fraction(alice, value):
    refused(
        alice,
        body(alice.key.public_id, pre_queue_random_sample=value),
        "pre_queue_random_sample",
        11102,
    )


def test_random_sample_of_one_and_a_small_fraction_are_accepted(alice):
    assert (
        create(
            alice, body(alice.key.public_id, collector_id="a", pre_queue_random_sample=1)
        ).pre_queue_random_sample
        == 1
    )
    assert (
        create(
            alice, body(alice.key.public_id, collector_id="b", pre_queue_random_sample=0.001)
        ).pre_queue_random_sample
        == 0.001
    )


@pytest.mark.parametrize("field", ["pre_queue_workflow_id", "post_queue_workflow_id"])
def test_workflows_must_exist_in_the_destination_app(alice, bob, make_app, field):
    other = make_app(alice.user, "other-app")
    Workflow.objects.create(app=other, public_id="elsewhere")
    Workflow.objects.create(app=bob.app, public_id="bobs")
    for wf in ("missing", "elsewhere", "bobs"):
        err = refused(alice, body(alice.key.public_id, **{field: wf}), field)
        assert "does not exist in app 'app1'" in err.details


# -- source model ------------------------------------------------------------------------------


def test_the_source_model_must_exist(alice):
    refused(
        alice, body(alice.key.public_id, model={"model_id": "no-such-model"}), "model_id", 11101
    )
    refused(
        alice,
        body(alice.key.public_id, model={"model_version_id": "0" * 32}),
        "model_version_id",
        11101,
    )
    refused(alice, body(alice.key.public_id, model={"model_id": ""}), "model_id", 11102)


def test_another_users_private_model_cannot_be_a_source(bob, own_model):
    err = refused(bob, body(bob.key.public_id, caller="bob", model=own_model), "model_id", 11101)
    assert "mine" in err.details


def test_an_empty_version_means_the_latest_one(alice):
    c = create(alice, body(alice.key.public_id, model={"model_version_id": ""}))
    assert c.model_version_id == SENTIMENT_VERSION
    assert c.source_model_version.public_id == SENTIMENT_VERSION


# -- post inputs key ---------------------------------------------------------------------------


def test_post_inputs_key_is_required_and_resolves_by_id_or_secret(alice, make_key):
    refused(alice, body(""), "post_inputs_key_id", 11102)
    by_secret = create(alice, body(alice.secret, collector_id="s"))
    by_id = create(alice, body(alice.key.public_id, collector_id="i"))
    assert by_secret.post_inputs_key_id == by_id.post_inputs_key_id == alice.key.pk


def test_a_key_of_another_user_is_refused_by_id_and_by_secret(alice, bob):
    for ref in (bob.key.public_id, bob.secret):
        err = refused(alice, body(ref), "post_inputs_key_id", 11101)
        assert bob.secret not in err.details
        assert bob.key.public_id not in err.details


def test_an_unknown_key_is_refused_without_echoing_it(alice):
    err = refused(alice, body("clct_some-secret-looking-value"), "post_inputs_key_id", 11101)
    assert "clct_some" not in err.details


def test_a_revoked_key_is_refused(alice, make_key):
    k = make_key(alice.user)
    key_revoke(owner=alice.user, key_public_id=k.key.public_id)
    err = refused(alice, body(k.key.public_id), "post_inputs_key_id", 11102)
    assert "revoked" in err.details


def test_an_expired_key_is_refused(alice, make_key):
    k = make_key(alice.user)
    type(k.key).objects.filter(pk=k.key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    err = refused(alice, body(k.key.public_id), "post_inputs_key_id", 11102)
    assert "expired" in err.details


@pytest.mark.parametrize(
    "dropped", ["Inputs:Add", "Annotations:Add", "Models:Get", "Predict", "Workflows:Get"]
)
def test_a_key_without_a_post_inputs_scope_is_refused(alice, make_key, dropped):
    from collectors_module.collectors.services import post_inputs_scopes

    scopes = [s for s in post_inputs_scopes() if s != dropped]
    k = make_key(alice.user, scopes=scopes)
    err = refused(alice, body(k.key.public_id), "post_inputs_key_id", 11007)
    assert dropped in err.details
    full = make_key(alice.user, scopes=list(post_inputs_scopes()))
    assert create(alice, body(full.key.public_id)).post_inputs_key_id == full.key.pk


def test_an_app_key_must_belong_to_the_destination_app(alice, make_app, make_key):
    other = make_app(alice.user, "other-app")
    k = make_key(alice.user, app=other)
    err = refused(alice, body(k.key.public_id), "post_inputs_key_id", 11102)
    assert "another app" in err.details
    mine = make_key(alice.user, app=alice.app)
    assert (
        create(alice, body(mine.key.public_id)).post_inputs_key_id == mine.key.pk
    )  # builtin model is public


def test_an_app_key_must_be_able_to_read_the_source_model(alice, make_app, make_key, api):
    other = make_app(alice.user, "models-app")
    r = api.post(
        "/v2/users/alice/apps/models-app/models",
        {"model": {"id": "private", "model_type_id": "text-classifier",
                   "model_version": {"metadata": {"runner": "builtin:sentiment"}}}},
        key=alice.secret,
    )  # fmt: skip
    assert r["status"]["code"] == 10000, r
    model = {"model_user_id": "alice", "model_app_id": other.public_id, "model_id": "private",
             "model_version_id": r["model"]["model_version"]["id"]}  # fmt: skip
    app_key = make_key(alice.user, app=alice.app)
    err = refused(alice, body(app_key.key.public_id, model=model), "post_inputs_key_id", 11102)
    assert "cannot read the source model" in err.details
    assert create(alice, body(alice.key.public_id, model=model)).model_id == "private"  # a PAT can


# -- caller rules ------------------------------------------------------------------------------


def test_blank_caller_is_refused_on_a_model_the_owner_does_not_own(alice):
    err = refused(alice, body(alice.key.public_id, caller=""), "caller_user_id", 11102)
    assert "only for your own models" in err.details


def test_blank_caller_is_allowed_on_the_owners_own_model(alice, own_model):
    c = create(alice, body(alice.key.public_id, caller="", model=own_model))
    assert c.caller_id is None


def test_the_owner_may_name_themselves_or_me(alice):
    assert (
        create(alice, body(alice.key.public_id, collector_id="a", caller="alice")).caller_id
        == alice.user.pk
    )
    assert (
        create(alice, body(alice.key.public_id, collector_id="b", caller="me")).caller_id
        == alice.user.pk
    )


def test_another_caller_needs_their_grant(alice, bob):
    err = refused(alice, body(alice.key.public_id, caller="bob"), "caller_user_id", 11102)
    assert "allowed you" in err.details
    refused(alice, body(alice.key.public_id, caller="nobody-here"), "caller_user_id", 11102)
    grant_capture(grantor=bob.user, grantee=alice.user)
    assert create(alice, body(alice.key.public_id, caller="bob")).caller_id == bob.user.pk
    # A grant to someone else does not count.
    revoke_capture_grant(grantor=bob.user, grantee=alice.user)
    with pytest.raises(ApiError) as info:
        overwrite(alice, body(alice.key.public_id, caller="bob"))
    assert info.value.field == "caller_user_id"


def test_a_grant_the_other_way_round_does_not_count(alice, bob):
    grant_capture(grantor=alice.user, grantee=bob.user)
    refused(alice, body(alice.key.public_id, caller="bob"), "caller_user_id")


# -- ids, duplicates, other fields --------------------------------------------------------------


def test_a_duplicate_id_is_refused(alice, api):
    create(alice, body(alice.key.public_id))
    with pytest.raises(ApiError) as info:
        create(alice, body(alice.key.public_id))
    assert (info.value.code, info.value.field) == (40010, "id")
    r = api.post(BASE, {"collectors": [body(alice.key.public_id)]}, key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (409, 40010)
    assert "already exists" in r["status"]["details"]
    r = api.post(BASE, {"collectors": [body(alice.key.public_id, collector_id="x"),
                                       body(alice.key.public_id, collector_id="x")]}, key=alice.secret)  # fmt: skip
    assert r["status"]["code"] == 40010
    assert not Collector.objects.filter(public_id="x").exists()


def test_the_same_id_in_another_app_is_fine(alice, make_app):
    create(alice, body(alice.key.public_id))
    other = make_app(alice.user, "second")
    pb = from_dict(body(alice.key.public_id), resources_pb2.Collector)
    assert services.collector_create(app=other, actor=alice.user, collector_pb=pb).app == other


@pytest.mark.parametrize("bad", ["", "has space", "a/b", "-lead", "x" * 200])
def test_the_id_must_be_well_formed(alice, bad):
    with pytest.raises(ApiError) as info:
        create(alice, body(alice.key.public_id, collector_id=bad))
    assert info.value.field == "id"


def test_description_length_and_status_code_are_checked(alice):
    refused(alice, body(alice.key.public_id, description="d" * 513), "description")
    refused(alice, body(alice.key.public_id, status={"code": 10000}), "status")


def test_limits_are_validated_with_their_field(alice):
    refused(alice, body(alice.key.public_id), "max_per_minute", limits={"max_per_minute": -1})
    refused(alice, body(alice.key.public_id), "max_pending", limits={"max_pending": "lots"})
    refused(alice, body(alice.key.public_id), "per_week", limits={"per_week": 1})
    c = create(alice, body(alice.key.public_id), limits={"max_per_minute": 5, "max_per_day": "100"})
    assert (c.max_per_minute, c.max_per_hour, c.max_per_day) == (5, 0, 100)


def test_only_the_app_owner_may_create(alice, bob):
    pb = from_dict(body(bob.key.public_id, caller="bob"), resources_pb2.Collector)
    with pytest.raises(ApiError) as info:
        services.collector_create(app=alice.app, actor=bob.user, collector_pb=pb)
    assert info.value.code == 11101


def test_rest_errors_carry_a_status_and_details(api, alice, bob):
    r = api.post(BASE, {"collectors": [body(bob.secret)]}, key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (404, 11101)
    assert r["status"]["description"]
    assert "key" in r["status"]["details"].lower()
    assert bob.secret not in str(r)
    r = api.post(
        BASE,
        {"collectors": [body(alice.key.public_id, pre_queue_random_sample=2)]},
        key=alice.secret,
    )
    assert (r["_http"], r["status"]["code"]) == (400, 11102)
    assert "pre_queue_random_sample" in r["status"]["details"]


def test_overwrite_without_a_key_keeps_and_rechecks_the_stored_key(alice, make_key):
    k = make_key(alice.user)
    create(alice, body(k.key.public_id))
    c = overwrite(alice, body("", description="changed"))
    assert (c.description, c.post_inputs_key_id) == ("changed", k.key.pk)
    key_revoke(owner=alice.user, key_public_id=k.key.public_id)
    with pytest.raises(ApiError) as info:
        overwrite(alice, body("", description="again"))
    assert info.value.field == "post_inputs_key_id"


def test_collectors_need_a_professional_or_enterprise_plan(alice, api):
    type(alice.user).objects.filter(pk=alice.user.pk).update(plan="community")
    alice.user.refresh_from_db()
    with pytest.raises(ApiError) as info:
        create(alice, body(alice.key.public_id))
    assert info.value.code == 11000
    r = api.post(BASE, {"collectors": [body(alice.key.public_id)]}, key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (403, 11000)
    assert "Professional" in r["status"]["details"]
