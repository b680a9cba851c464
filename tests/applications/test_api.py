def test_post_then_get_app_with_pat(api, alice):
    r = api.post(
        "/v2/users/alice/apps", {"apps": [{"id": "new-app", "description": "d"}]}, key=alice.secret
    )
    assert r["status"]["code"] == 10000, r
    assert r["apps"][0]["id"] == "new-app"
    r = api.get("/v2/users/me/apps/new-app", key=alice.secret)
    assert r["_http"] == 200
    assert r["app"]["user_id"] == "alice"


def test_list_apps_lists_only_own(api, alice, bob):
    r = api.get("/v2/users/alice/apps", key=alice.secret)
    assert [a["id"] for a in r["apps"]] == ["app1"]


def test_other_tenant_app_does_not_exist(api, alice, bob):
    r = api.get("/v2/users/bob/apps/bobapp", key=alice.secret)
    assert r["_http"] == 404
    assert r["status"]["code"] == 11101


def test_missing_and_wrong_key(api, alice):
    assert api.get("/v2/users/alice/apps/app1")["status"]["code"] == 11008
    r = api.get("/v2/users/alice/apps/app1", key="nope")
    assert (r["_http"], r["status"]["code"]) == (401, 11008)


def test_broken_json_is_bad_request_format(api, alice):
    r = api.post("/v2/users/alice/apps", raw=b"{not json", key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (400, 11100)


def test_missing_scope_is_insufficient_scopes(api, alice, make_key):
    k = make_key(alice.user, scopes=["Inputs:Get"])
    r = api.get("/v2/users/alice/apps/app1", key=k.secret)
    assert (r["_http"], r["status"]["code"]) == (403, 11007)


def test_unimplemented_rpc_answers_not_implemented(api, alice):
    r = api.get("/v2/users/alice/apps/app1/tasks", key=alice.secret)
    assert r["status"]["code"] == 10040


def test_delete_app_deletes_it_and_another_tenants_app_is_untouched(api, alice, bob):
    r = api.delete("/v2/users/bob/apps/bobapp", key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (404, 11101)
    r = api.delete("/v2/users/alice/apps/app1", key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (200, 10000), r
    assert api.get("/v2/users/alice/apps/app1", key=alice.secret)["status"]["code"] == 11101
    assert api.get("/v2/users/bob/apps/bobapp", key=bob.secret)["status"]["code"] == 10000


def test_app_whose_model_another_app_uses_is_not_deleted(api, alice, bob, make_app):
    from clarifai_grpc.grpc.api import resources_pb2

    from collectors_module.applications.models import App
    from collectors_module.core.ids import new_hex_id
    from collectors_module.inference.models import Model, ModelVersion
    from collectors_module.workflows.services import workflow_create

    shared = make_app(alice.user, "shared", visibility=50)
    model = Model.objects.create(
        app=shared, public_id="colors", model_type_id="visual-classifier", visibility=50
    )
    version = ModelVersion.objects.create(
        model=model, public_id=new_hex_id(), runner="builtin:color-recognition"
    )
    workflow_create(
        app=bob.app,
        workflow_pb=resources_pb2.Workflow(
            id="uses-alice",
            nodes=[
                resources_pb2.WorkflowNode(
                    id="n",
                    model=resources_pb2.Model(
                        id="colors",
                        user_id="alice",
                        app_id="shared",
                        model_version=resources_pb2.ModelVersion(id=version.public_id),
                    ),
                )
            ],
        ),
    )

    r = api.delete("/v2/users/alice/apps/shared", key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (400, 11102), r
    assert (
        "bob/bobapp/uses-alice" in r["status"]["details"] or "uses-alice" in r["status"]["details"]
    )
    assert App.objects.filter(pk=shared.pk).exists()


def test_nul_character_is_a_clear_error_not_a_500(api, alice):
    from collectors_module.applications.models import App

    r = api.post(
        "/v2/users/alice/apps",
        {"apps": [{"id": "nul-app", "description": "a\u0000b"}]},
        key=alice.secret,
    )
    assert r["_http"] == 400, r
    assert r["status"]["code"] == 11102
    assert not App.objects.filter(public_id="nul-app").exists()
