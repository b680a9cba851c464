"""The OpenAPI document: served, generated from the descriptors, implemented routes only."""

from __future__ import annotations

from django.urls import resolve

from collectors_module.api.descriptors import all_rpcs
from collectors_module.api.dispatch import implemented
from collectors_module.api.openapi import build_openapi
from collectors_module.api.rest.transport import route_table


def test_openapi_document_is_served_without_a_key(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.")
    assert doc["components"]["securitySchemes"]["ClarifaiKey"]["name"] == "Authorization"


def test_every_implemented_route_and_only_those_are_documented():
    doc = build_openapi()
    documented = {
        (path.replace("__", "."), verb, op["summary"])
        for path, ops in doc["paths"].items()
        for verb, op in ops.items()
    }
    done = implemented()
    expected = {
        (template, verb, name)
        for template, verbs in route_table().items()
        for verb, (name, _body) in verbs.items()
        if name in done
    }
    assert documented == expected
    unimplemented = {n for n, spec in all_rpcs().items() if spec.bindings and n not in done}
    assert unimplemented  # the API has far more RPCs than this server implements
    assert not {name for _, _, name in documented} & unimplemented


def test_documented_paths_resolve_to_the_rest_views():
    doc = build_openapi()
    for path in doc["paths"]:
        concrete = path.replace("{", "x").replace("}", "x")
        match = resolve(concrete)
        assert hasattr(match.func, "rest_template"), path


def test_schemas_use_snake_case_proto_names_and_accept_null():
    doc = build_openapi()
    body = doc["paths"]["/v2/users/{user_app_id__user_id}/apps/{user_app_id__app_id}/inputs"][
        "post"
    ]
    schema = body["requestBody"]["content"]["application/json"]["schema"]
    inputs = schema["properties"]["inputs"]["anyOf"][0]
    data = inputs["items"]["properties"]["data"]["anyOf"][0]
    image = data["properties"]["image"]["anyOf"][0]
    assert image["properties"]["base64"]["anyOf"][0]["contentEncoding"] == "base64"
    assert "user_app_id" in schema["properties"]
    response = body["responses"]["default"]["content"]["application/json"]["schema"]
    assert response == {"$ref": "#/components/schemas/clarifai.api.MultiInputResponse"}
    assert "status" in doc["components"]["schemas"]["clarifai.api.MultiInputResponse"]["properties"]
