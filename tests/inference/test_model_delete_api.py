"""DeleteModel and DeleteModels: a model goes with its versions, all or none; refused while a
workflow or a collector (of anybody) uses it, with a status that names who does."""

from __future__ import annotations

import pytest
from clarifai_grpc.grpc.api import resources_pb2

from collectors_module.applications.models import App
from collectors_module.core.errors import SC
from collectors_module.core.protojson import from_dict
from collectors_module.inference.models import Model, ModelVersion

BASE = "/v2/users/alice/apps/app1"


def make_model(tenant, model_id: str, *, public: bool = False):
    from collectors_module.inference.services import model_create

    return model_create(
        app=tenant.app,
        model_pb=resources_pb2.Model(
            id=model_id,
            model_type_id="text-classifier",
            visibility=resources_pb2.Visibility(gettable=50 if public else 10),
            model_version=resources_pb2.ModelVersion(metadata={"runner": "builtin:sentiment"}),
        ),
    )


def make_workflow(tenant, workflow_id: str, model):
    from collectors_module.workflows.services import workflow_create

    app = model.app
    return workflow_create(
        app=tenant.app,
        workflow_pb=from_dict(
            {
                "id": workflow_id,
                "nodes": [
                    {
                        "id": "n",
                        "model": {
                            "id": model.public_id,
                            "user_id": app.owner.username,
                            "app_id": app.public_id,
                            "model_version": {"id": model.latest_version().public_id},
                        },
                    }
                ],
            },
            resources_pb2.Workflow,
        ),
    )


def make_collector(tenant, collector_id: str, model):
    from collectors_module.collectors.services import collector_create

    app = model.app
    pb = from_dict(
        {
            "id": collector_id,
            "pre_queue_random_sample": 1.0,
            "collector_source": {
                "api_post_model_outputs_collector_source": {
                    "model_user_id": app.owner.username,
                    "model_app_id": app.public_id,
                    "model_id": model.public_id,
                    "model_version_id": model.latest_version().public_id,
                    "post_inputs_key_id": tenant.key.public_id,
                    "caller_user_id": tenant.user.username,
                }
            },
        },
        resources_pb2.Collector,
    )
    return collector_create(app=tenant.app, actor=tenant.user, collector_pb=pb)


def models_of(tenant) -> list[str]:
    return sorted(Model.objects.filter(app=tenant.app).values_list("public_id", flat=True))


def test_delete_model_and_many_models(api, alice):
    for model_id in ("a", "b", "c"):
        make_model(alice, model_id)
    r = api.delete(f"{BASE}/models/a", key=alice.secret)
    assert r["status"]["code"] == SC.SUCCESS, r
    assert not ModelVersion.objects.filter(model__public_id="a").exists()
    r = api.delete(f"{BASE}/models", {"ids": ["b", "nope"]}, key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (404, SC.CONN_DOES_NOT_EXIST)
    assert "nope" in r["status"]["details"]
    assert models_of(alice) == ["b", "c"]
    assert api.delete(f"{BASE}/models", {"ids": ["b"]}, key=alice.secret)["status"]["code"] == 10000
    assert (
        api.delete(f"{BASE}/models", {"delete_all": True}, key=alice.secret)["status"]["code"]
        == 10000
    )
    assert models_of(alice) == []
    assert (
        api.delete(f"{BASE}/models", {}, key=alice.secret)["status"]["code"]
        == SC.MODEL_INVALID_REQUEST
    )


def test_refused_while_the_owners_workflow_or_collector_uses_it(api, alice):
    model = make_model(alice, "mood")
    make_model(alice, "spare")
    make_workflow(alice, "uses-mood", model)
    make_collector(alice, "mood-collector", model)
    for r in (
        api.delete(f"{BASE}/models/mood", key=alice.secret),
        api.delete(f"{BASE}/models", {"ids": ["spare", "mood"]}, key=alice.secret),
        api.delete(f"{BASE}/models", {"delete_all": True}, key=alice.secret),
    ):
        assert (r["_http"], r["status"]["code"]) == (400, SC.MODEL_INVALID_REQUEST), r
        details = r["status"]["details"]
        assert "workflow 'uses-mood' (app 'app1')" in details
        assert "collector 'mood-collector' (app 'app1')" in details
    assert models_of(alice) == ["mood", "spare"]


def test_refusal_names_the_other_user_but_not_their_objects(api, alice, bob):
    App.objects.filter(pk=alice.app.pk).update(visibility=50)
    alice.app.refresh_from_db()
    model = make_model(alice, "shared", public=True)
    make_workflow(bob, "bobs-secret-workflow", model)
    r = api.delete(f"{BASE}/models/shared", key=alice.secret)
    assert r["status"]["code"] == SC.MODEL_INVALID_REQUEST
    assert "a workflow of user 'bob'" in r["status"]["details"]
    assert "bobs-secret-workflow" not in r["status"]["details"]
    from collectors_module.workflows.services import workflow_delete

    workflow_delete(app=bob.app, workflow_id="bobs-secret-workflow")
    make_collector(bob, "bobs-collector", model)
    r = api.delete(f"{BASE}/models/shared", key=alice.secret)
    assert "a collector of user 'bob'" in r["status"]["details"]
    assert models_of(alice) == ["shared"]


@pytest.mark.parametrize(
    "path",
    ["/v2/users/alice/apps/app1/models/mood", "/v2/users/builtin/apps/main/models/sentiment"],
)
def test_other_users_models_cannot_be_deleted(api, alice, bob, path):
    make_model(alice, "mood")
    r = api.delete(path, key=bob.secret)
    assert (r["_http"], r["status"]["code"]) == (404, SC.CONN_DOES_NOT_EXIST)
    assert Model.objects.filter(public_id__in=["mood", "sentiment"]).count() == 2


def test_short_path_with_an_app_key(api, alice, make_key):
    make_model(alice, "mood")
    key = make_key(alice.user, app=alice.app).secret
    assert api.delete("/v2/models/mood", key=key)["status"]["code"] == SC.SUCCESS
    assert models_of(alice) == []
