"""Models API: the seeded builtin/main catalogue, PostModels, versions, tenancy."""

from __future__ import annotations

import pytest

from .conftest import (
    CAPTION_VERSION,
    COLOR_VERSION,
    EMBEDDING_VERSION,
    GENERAL_VERSION,
    MAIN,
    OCR_VERSION,
    QR_VERSION,
    SENTIMENT_VERSION,
)

EXPECTED = {
    "color-recognition": ("visual-classifier", COLOR_VERSION),
    "general-image-recognition": ("visual-classifier", GENERAL_VERSION),
    "general-image-embedding": ("visual-embedder", EMBEDDING_VERSION),
    "general-english-image-caption": ("image-to-text", CAPTION_VERSION),
    "ocr": ("image-to-text", OCR_VERSION),
    "qr-code": ("visual-detector", QR_VERSION),
    "sentiment": ("text-classifier", SENTIMENT_VERSION),
}


def _post_model(api, key, model: dict, app="app1", user="alice"):
    return api.post(f"/v2/users/{user}/apps/{app}/models", {"model": model}, key=key)


def test_builtin_main_lists_the_builtin_models_to_any_key(api, bob):
    r = api.get(f"{MAIN}/models", key=bob.secret)
    assert r["status"]["code"] == 10000, r
    got = {m["id"]: (m["model_type_id"], m["model_version"]["id"]) for m in r["models"]}
    assert got == EXPECTED
    for m in r["models"]:
        assert m["user_id"] == "builtin"
        assert m["app_id"] == "main"
        assert m["description"]
        assert m["visibility"]["gettable"] == 50


def test_builtin_models_listed_across_the_builtin_users_apps(api, bob):
    r = api.get("/v2/users/builtin/models", key=bob.secret)
    assert {m["id"] for m in r["models"]} == set(EXPECTED)


def test_builtin_models_have_honest_concept_lists(api, bob):
    r = api.get(f"{MAIN}/models/sentiment", key=bob.secret)
    concepts = [c["id"] for c in r["model"]["output_info"]["data"]["concepts"]]
    assert concepts == ["positive", "negative", "neutral"]
    r = api.get(f"{MAIN}/models/color-recognition", key=bob.secret)
    assert {"red", "green", "blue", "white", "black"} <= {
        c["id"] for c in r["model"]["model_version"]["output_info"]["data"]["concepts"]
    }
    assert r["model"]["model_version"]["metadata"] == {"runner": "builtin:color-recognition"}


def test_builtin_user_cannot_log_in(db):
    from collectors_module.accounts.models import User

    user = User.objects.get(username="builtin")
    assert not user.has_usable_password()
    assert user.plan == "enterprise"


def test_list_models_filters_by_type(api, alice):
    r = api.get(f"{MAIN}/models", {"model_type_id": "text-classifier"}, key=alice.secret)
    assert [m["id"] for m in r["models"]] == ["sentiment"]


def test_get_and_list_model_versions(api, alice):
    r = api.get(f"{MAIN}/models/ocr/versions/{OCR_VERSION}", key=alice.secret)
    assert r["status"]["code"] == 10000, r
    assert r["model_version"]["id"] == OCR_VERSION
    assert r["model_version"]["status"]["code"] == 21100
    r = api.get(f"{MAIN}/models/ocr/versions", key=alice.secret)
    assert [v["id"] for v in r["model_versions"]] == [OCR_VERSION]
    r = api.get(f"{MAIN}/models/ocr/versions/{'f' * 32}", key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (404, 11101)


def test_post_model_with_builtin_runner_and_concepts(api, alice):
    r = _post_model(
        api,
        alice.secret,
        {
            "id": "my-colors",
            "model_type_id": "visual-classifier",
            "description": "mine",
            "output_info": {"data": {"concepts": [{"id": "red"}, {"id": "blue"}]}},
            "model_version": {"metadata": {"runner": "builtin:color-recognition"}},
        },
    )
    assert r["status"]["code"] == 10000, r
    assert r["model"]["user_id"] == "alice"
    assert r["model"]["model_version"]["metadata"]["runner"] == "builtin:color-recognition"
    assert len(r["model"]["model_version"]["id"]) == 32
    r = api.get("/v2/users/alice/apps/app1/models", key=alice.secret)
    assert [m["id"] for m in r["models"]] == ["my-colors"]


def test_post_model_twice_is_a_duplicate(api, alice):
    model = {
        "id": "twice",
        "model_type_id": "text-classifier",
        "model_version": {"metadata": {"runner": "builtin:sentiment"}},
    }
    assert _post_model(api, alice.secret, model)["status"]["code"] == 10000
    r = _post_model(api, alice.secret, model)
    assert r["status"]["code"] == 21203
    assert "duplicate" in r["status"]["details"]


@pytest.mark.parametrize(
    ("model", "code"),
    [
        ({"id": "bad/id", "model_type_id": "visual-classifier"}, 21202),
        ({"id": "no-type"}, 21202),
        (
            {
                "id": "x",
                "model_type_id": "visual-classifier",
                "model_version": {"metadata": {"runner": "shell:rm"}},
            },
            21202,
        ),
        (
            {
                "id": "x",
                "model_type_id": "visual-classifier",
                "model_version": {"metadata": {"runner": "builtin:nope"}},
            },
            21202,
        ),
        (
            {
                "id": "x",
                "model_type_id": "text-classifier",
                "model_version": {"metadata": {"runner": "builtin:ocr"}},
            },
            21202,
        ),
        (
            {
                "id": "x",
                "model_type_id": "visual-classifier",
                "output_info": {"data": {"concepts": [{"id": "a"}, {"id": "a"}]}},
            },
            40003,
        ),
    ],
)
def test_post_model_rejects_bad_definitions(api, alice, model, code):
    r = _post_model(api, alice.secret, model)
    assert r["status"]["code"] == code, r


def test_remote_runner_must_be_on_the_allow_list(api, alice, settings):
    pytest.importorskip("collectors_module.inference.runners.remote")
    settings.REMOTE_MODEL_ALLOWED_ENDPOINTS = ["http://127.0.0.1:9/v1/"]
    model = {
        "id": "captions",
        "model_type_id": "image-to-text",
        "model_version": {
            "metadata": {
                "runner": "remote:openai-chat",
                "url": "http://169.254.169.254/v1/chat/completions",
                "model": "m",
            }
        },
    }
    r = _post_model(api, alice.secret, model)
    assert r["status"]["code"] == 21202, r
    model["model_version"]["metadata"]["url"] = "http://127.0.0.1:9/v1/chat/completions"
    r = _post_model(api, alice.secret, model)
    assert r["status"]["code"] == 10000, r
    meta = r["model"]["model_version"]["metadata"]
    assert meta["runner"] == "remote:openai-chat"
    assert meta["url"] == "http://127.0.0.1:9/v1/chat/completions"


def test_other_users_see_only_the_remote_model_name_not_its_endpoint(
    api, alice, bob, make_app, settings
):
    pytest.importorskip("collectors_module.inference.runners.remote")
    settings.REMOTE_MODEL_ALLOWED_ENDPOINTS = ["http://127.0.0.1:9/v1/"]
    make_app(alice.user, "pub", visibility=50)
    model = {
        "id": "cap",
        "model_type_id": "image-to-text",
        "visibility": {"gettable": 50},
        "model_version": {
            "metadata": {
                "runner": "remote:openai-chat",
                "url": "http://127.0.0.1:9/v1/chat/completions",
                "model": "m",
                "api_key": "sk-secret",
            }
        },
    }
    assert _post_model(api, alice.secret, model, app="pub")["status"]["code"] == 10000
    mine = api.get("/v2/users/alice/apps/pub/models/cap", key=alice.secret)["model"][
        "model_version"
    ]["metadata"]
    theirs = api.get("/v2/users/alice/apps/pub/models/cap", key=bob.secret)["model"][
        "model_version"
    ]["metadata"]
    assert "api_key" not in mine
    assert mine["url"].startswith("http://127.0.0.1:9/")
    assert theirs == {"runner": "remote:openai-chat", "model": "m"}


def test_post_model_version_adds_a_newer_latest_version(api, predict, alice):
    assert (
        _post_model(
            api,
            alice.secret,
            {
                "id": "m1",
                "model_type_id": "text-classifier",
                "model_version": {"metadata": {"runner": "builtin:sentiment"}},
            },
        )["status"]["code"]
        == 10000
    )
    r = api.post(
        "/v2/users/alice/apps/app1/models/m1/versions",
        {"model_versions": [{"id": "v2", "description": "second"}]},
        key=alice.secret,
    )
    assert r["status"]["code"] == 10000, r
    assert r["model"]["model_version"]["id"] == "v2"
    assert r["model"]["model_version"]["metadata"]["runner"] == "builtin:sentiment"
    versions = api.get("/v2/users/alice/apps/app1/models/m1/versions", key=alice.secret)[
        "model_versions"
    ]
    assert versions[0]["id"] == "v2"
    assert len(versions) == 2
    out = predict(
        "m1",
        [{"data": {"text": {"raw": "great"}}}],
        alice.secret,
        path="/v2/users/alice/apps/app1/models/m1/outputs",
    )
    assert out["outputs"][0]["model"]["model_version"]["id"] == "v2"


def test_nobody_else_can_add_versions_to_builtin_models(api, alice):
    r = api.post(f"{MAIN}/models/ocr/versions", {"model_versions": [{}]}, key=alice.secret)
    assert r["status"]["code"] in (11101,), r
    r = api.post(
        f"{MAIN}/models",
        {"model": {"id": "mine", "model_type_id": "text-classifier"}},
        key=alice.secret,
    )
    assert r["status"]["code"] == 11101
