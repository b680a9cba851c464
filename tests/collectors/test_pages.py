"""The Collectors module's pages: create/update form, source check, Show All, status, delete."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from collectors_module.collectors.models import COLLECTOR_ACTIVE, COLLECTOR_INACTIVE, Collector
from tests.support.modules import VERSION_ID, form_data

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}


def _url(name, inst, *args):
    return reverse(f"collectors:{name}", args=["app1", inst.slug, *args])


def _field_block(body: str, name: str) -> str:
    """The HTML of one form field's wrapper (label, input, help, error)."""
    start = body.index(f'id="field-{name}"')
    end = body.find('<div class="field', start + 10)
    return body[start : end if end != -1 else start + 3000]


def test_create_form_has_every_field_labelled(alice, alice_client, install, workflows):
    inst = install(alice)
    body = alice_client.get(_url("create", inst)).content.decode()
    for label in (
        "Collector ID",
        "Description",
        "Pre-queue Workflow",
        "Post-queue Workflow",
        "Post Inputs Key",
        "Activate Collector",
        "Caller",
        "Source model URL",
        "Model version ID",
        "Random sample fraction",
        "Collect outputs",
        "Max captures per minute",
        "Max pending captures",
    ):
        assert label in body, label
    # every visible input/select/textarea has a <label for=...>
    ids = re.findall(r'<(?:input|select|textarea)[^>]*?\bid="([^"]+)"', body)
    hidden = set(re.findall(r'<input type="hidden"[^>]*?\bid="([^"]+)"', body))
    assert ids
    for input_id in set(ids) - hidden:
        assert f'for="{input_id}"' in body, input_id
    # defaults: own user id as caller, activated
    assert re.search(r'name="caller_user_id"[^>]*value="alice"', body)
    assert re.search(r'name="active"[^>]*checked', body)
    # the workflows of the app in both dropdowns; the key picker offers alice's key with marks
    for wf in workflows:
        assert body.count(f'value="{wf.public_id}"') == 2
    assert f'value="{alice.key.public_id}"' in body
    assert "can post inputs here" in body
    assert reverse("accounts:keys") in body
    assert "Create new collector" in body


def test_create_collector_and_see_it_on_show_all(
    alice, alice_client, install, source_model, workflows
):
    inst = install(alice)
    data = form_data(
        alice,
        pre_queue_workflow_id="random-sample",
        post_queue_workflow_id="image-to-text",
        pre_queue_random_sample="",
        max_per_minute="30",
    )
    response = alice_client.post(_url("create", inst), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == _url("list", inst)
    c = Collector.objects.get(app=alice.app, public_id="c1")
    assert c.status == COLLECTOR_ACTIVE
    assert c.source_model_version == source_model
    assert c.caller == alice.user
    assert c.post_inputs_key == alice.key
    assert c.pre_queue_workflow.public_id == "random-sample"
    assert c.post_queue_workflow.public_id == "image-to-text"
    assert c.max_per_minute == 30
    listing = alice_client.get(_url("list", inst)).content.decode()
    assert "c1" in listing
    assert "capture colours" in listing
    assert "Active" in listing
    assert "<svg" in listing
    assert 'hx-trigger="click, every 3s"' in listing
    assert "style=" not in listing


def test_create_inactive_collector_when_box_unchecked(alice, alice_client, install, source_model):
    inst = install(alice)
    alice_client.post(_url("create", inst), form_data(alice, active=None))
    assert Collector.objects.get(public_id="c1").status == COLLECTOR_INACTIVE


def test_full_source_url_with_version_is_accepted(alice, alice_client, install, source_model):
    inst = install(alice)
    url = f"https://collectors.example/users/alice/apps/app1/models/colors/versions/{VERSION_ID}"
    response = alice_client.post(
        _url("create", inst), form_data(alice, source_url=url, model_version_id="")
    )
    assert response.status_code == 302
    assert Collector.objects.get(public_id="c1").model_version_id == VERSION_ID


@pytest.mark.parametrize(
    ("overrides", "field", "text"),
    [
        ({"id": "bad id!"}, "id", "invalid"),
        ({"id": ""}, "id", "required"),
        ({"source_url": "not a url"}, "source_url", "model URL"),
        ({"source_url": "/users/alice/apps/app1/models/missing"}, "source_url", "does not exist"),
        (
            {"model_version_id": "ffffffffffffffffffffffffffffffff"},
            "model_version_id",
            "does not exist",
        ),
        ({"post_inputs_key_id": ""}, "post_inputs_key_id", "required"),
        ({"pre_queue_random_sample": ""}, "pre_queue_workflow_id", "at least"),
        ({"pre_queue_random_sample": "2"}, "pre_queue_random_sample", "less than or equal"),
        ({"caller_user_id": "nobody-here"}, "caller_user_id", "nobody-here"),
        ({"max_per_minute": "-1"}, "max_per_minute", "greater than or equal"),
    ],
)
def test_form_errors_appear_next_to_their_field(
    alice, alice_client, install, source_model, overrides, field, text
):
    inst = install(alice)
    response = alice_client.post(_url("create", inst), form_data(alice, **overrides))
    assert response.status_code == 400
    body = response.content.decode()
    block = _field_block(body, field)
    assert f'id="id_{field}_error"' in block, block
    assert text.lower() in block.lower(), block
    assert 'aria-invalid="true"' in block
    assert f"id_{field}_error" in re.search(rf'<[^>]*id="id_{field}"[^>]*>', block).group(0)
    assert not Collector.objects.exists()


def test_key_of_another_app_is_refused_next_to_the_key_field(
    alice, alice_client, install, source_model, make_app, make_key
):
    other = make_app(alice.user, "other")
    app_key = make_key(alice.user, app=other).key
    inst = install(alice)
    response = alice_client.post(
        _url("create", inst), form_data(alice, post_inputs_key_id=app_key.public_id)
    )
    assert response.status_code == 400
    block = _field_block(response.content.decode(), "post_inputs_key_id")
    assert 'id="id_post_inputs_key_id_error"' in block
    assert "another app" in block
    assert not Collector.objects.exists()


def test_source_check_shows_model_name_or_error(alice, alice_client, install, source_model):
    inst = install(alice)
    ok = alice_client.get(
        _url("source_check", inst),
        {"source_url": "/users/alice/apps/app1/models/colors", "model_version_id": ""},
        headers=HX,
    )
    body = ok.content.decode()
    assert ok.status_code == 200
    assert "My colour model" in body
    assert VERSION_ID in body
    assert "<html" not in body  # a partial
    assert 'hx-swap-oob="true"' in body
    assert 'id="field-post_inputs_key_id"' in body
    bad = alice_client.get(
        _url("source_check", inst), {"source_url": "/users/alice/apps/app1/models/nope"}, headers=HX
    ).content.decode()
    assert "No such model" in bad
    garbage = alice_client.get(
        _url("source_check", inst), {"source_url": "ftp://x/y"}, headers=HX
    ).content.decode()
    assert "model URL" in garbage
    # without htmx: a full page with its own form
    page = alice_client.get(
        _url("source_check", inst), {"source_url": "/users/alice/apps/app1/models/colors"}
    )
    assert "<html" in page.content.decode()
    assert "My colour model" in page.content.decode()


def test_source_check_hides_another_users_private_model(alice, bob, alice_client, install):
    from collectors_module.inference.models import Model, ModelVersion

    m = Model.objects.create(
        app=bob.app, public_id="secret-model", name="Bob's secret", model_type_id="x"
    )
    ModelVersion.objects.create(model=m, public_id="a" * 32, runner="builtin:color-recognition")
    inst = install(alice)
    body = alice_client.get(
        _url("source_check", inst),
        {"source_url": "/users/bob/apps/bobapp/models/secret-model"},
        headers=HX,
    ).content.decode()
    assert "Bob's secret" not in body
    assert "No such model" in body


def _make(alice, alice_client, inst, **overrides):
    response = alice_client.post(_url("create", inst), form_data(alice, **overrides))
    assert response.status_code == 302, response.content.decode()[:3000]
    return Collector.objects.get(app=alice.app, public_id=overrides.get("id", "c1"))


def test_update_deselects_post_queue_workflow(
    alice, alice_client, install, source_model, workflows
):
    inst = install(alice)
    _make(
        alice,
        alice_client,
        inst,
        pre_queue_workflow_id="random-sample",
        post_queue_workflow_id="image-to-text",
    )
    page = alice_client.get(_url("update", inst, "c1")).content.decode()
    assert ">Update<" in page
    assert re.search(r'<option value="image-to-text" selected', page)
    assert re.search(r'name="id"[^>]*disabled', page)
    data = form_data(
        alice, pre_queue_workflow_id="random-sample", post_queue_workflow_id="", description="as-is"
    )
    response = alice_client.post(_url("update", inst, "c1"), data)
    assert response.status_code == 302
    c = Collector.objects.get(public_id="c1")
    assert c.post_queue_workflow is None
    assert c.pre_queue_workflow.public_id == "random-sample"
    assert c.description == "as-is"


def test_update_errors_appear_next_to_fields_and_change_nothing(
    alice, alice_client, install, source_model
):
    inst = install(alice)
    _make(alice, alice_client, inst)
    response = alice_client.post(
        _url("update", inst, "c1"), form_data(alice, source_url="/users/x")
    )
    assert response.status_code == 400
    assert 'id="id_source_url_error"' in _field_block(response.content.decode(), "source_url")
    assert Collector.objects.get(public_id="c1").description == "capture colours"


def test_status_toggle_over_htmx_returns_the_row_partial(
    alice, alice_client, install, source_model
):
    inst = install(alice)
    c = _make(alice, alice_client, inst)
    response = alice_client.post(_url("status", inst, "c1"), {"active": "0"}, headers=HX)
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith("<tr")
    assert "<html" not in body
    assert f'id="collector-{c.pk}"' in body
    assert "Inactive" in body
    assert "Reactivate" in body
    assert Collector.objects.get(pk=c.pk).status == COLLECTOR_INACTIVE
    again = alice_client.post(
        _url("status", inst, "c1"), {"active": "1"}, headers=HX
    ).content.decode()
    assert "Deactivate" in again
    assert Collector.objects.get(pk=c.pk).status == COLLECTOR_ACTIVE


def test_status_toggle_without_js_redirects_to_show_all(alice, alice_client, install, source_model):
    inst = install(alice)
    c = _make(alice, alice_client, inst)
    response = alice_client.post(_url("status", inst, "c1"), {"active": "0"})
    assert response.status_code == 302
    assert response["Location"] == _url("list", inst)
    assert Collector.objects.get(pk=c.pk).status == COLLECTOR_INACTIVE
    assert alice_client.get(_url("status", inst, "c1")).status_code == 405


def test_stats_partial_for_polling(alice, alice_client, install, source_model):
    inst = install(alice)
    c = _make(alice, alice_client, inst)
    body = alice_client.get(_url("stats", inst, "c1"), headers=HX).content.decode()
    assert body.lstrip().startswith('<div class="stats"')
    assert f'id="stats-{c.pk}"' in body
    assert 'data-metric="accepted">0<' in body
    assert "<svg" in body
    assert alice_client.get(_url("stats", inst, "c1"))["Location"] == _url("list", inst)


def test_delete_asks_for_confirmation_then_deletes(alice, alice_client, install, source_model):
    inst = install(alice)
    _make(alice, alice_client, inst)
    listing = alice_client.get(_url("list", inst)).content.decode()
    assert "hx-confirm=" in listing
    confirm = alice_client.get(_url("delete", inst, "c1"))
    assert confirm.status_code == 200
    assert "Delete collector c1?" in confirm.content.decode()
    assert Collector.objects.filter(public_id="c1").exists()
    response = alice_client.post(_url("delete", inst, "c1"))
    assert response["Location"] == _url("list", inst)
    assert not Collector.objects.filter(public_id="c1").exists()


def test_delete_over_htmx_replaces_the_row_with_a_note(alice, alice_client, install, source_model):
    inst = install(alice)
    _make(alice, alice_client, inst)
    _make(alice, alice_client, inst, id="c2")
    response = alice_client.post(_url("delete", inst, "c1"), headers=HX)
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<tr class="deleted-note">')
    assert "Collector <strong>c1</strong> deleted." in body
    assert "collector-row" not in body
    assert "No collectors left" not in body
    assert list(Collector.objects.values_list("public_id", flat=True)) == ["c2"]
    last = alice_client.post(_url("delete", inst, "c2"), headers=HX).content.decode()
    assert "No collectors left" in last
    assert not Collector.objects.exists()


def test_collector_posts_without_csrf_token_are_refused(alice, install, source_model, alice_client):
    inst = install(alice)
    c = _make(alice, alice_client, inst)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice.user)
    assert client.post(_url("status", inst, "c1"), {"active": "0"}, headers=HX).status_code == 403
    assert client.post(_url("delete", inst, "c1"), headers=HX).status_code == 403
    assert client.post(_url("create", inst), form_data(alice, id="c2")).status_code == 403
    assert (
        client.post(_url("update", inst, "c1"), form_data(alice, description="x")).status_code
        == 403
    )
    c.refresh_from_db()
    assert c.status == COLLECTOR_ACTIVE
    assert c.description == "capture colours"
    assert Collector.objects.count() == 1
    # with the token (as htmx sends it from <body hx-headers>) the same request works
    client.get(_url("list", inst))
    token = client.cookies["csrftoken"].value
    ok = client.post(
        _url("status", inst, "c1"), {"active": "0"}, headers={**HX, "X-CSRFToken": token}
    )
    assert ok.status_code == 200


def test_another_users_collector_does_not_exist(
    alice, bob, alice_client, bob_client, install, source_model
):
    inst = install(alice)
    _make(alice, alice_client, inst)
    install(bob, "collector")
    # bob has his own installation with the same slug, but alice's app/collector are not his
    for name in ("update", "stats", "delete"):
        assert bob_client.get(_url(name, inst, "c1")).status_code == 404
    for name in ("status", "delete"):
        assert (
            bob_client.post(_url(name, inst, "c1"), {"active": "0"}, headers=HX).status_code == 404
        )
    bob_inst_url = reverse("collectors:update", args=["bobapp", "collector", "c1"])
    assert bob_client.get(bob_inst_url).status_code == 404
    assert (
        bob_client.post(
            reverse("collectors:status", args=["bobapp", "collector", "c1"]), {"active": "0"}
        ).status_code
        == 404
    )
    assert Collector.objects.get(public_id="c1").status == COLLECTOR_ACTIVE


def test_module_key_scopes_are_checked_before_delete(alice, alice_client, install, source_model):
    from collectors_module.accounts.models import Key

    inst = install(alice)
    _make(alice, alice_client, inst)
    scopes = [s for s in inst.key.scopes if s != "Collectors:Delete"]
    Key.objects.filter(pk=inst.key_id).update(scopes=scopes)
    response = alice_client.post(_url("delete", inst, "c1"))
    assert response.status_code == 403
    assert "Collectors:Delete" in response.content.decode()
    assert Collector.objects.filter(public_id="c1").exists()


def test_sidebar_expands_current_installation(alice, alice_client, install):
    inst = install(alice)
    body = alice_client.get(_url("list", inst)).content.decode()
    sidebar = body[body.index("Installed Modules") :]
    assert '<details class="side-module" open>' in sidebar
    assert reverse("modules:manage", args=["app1"]) in body


def test_sparkline_draws_a_bar_per_busy_minute_inside_the_box():
    from datetime import UTC, datetime, timedelta

    from collectors_module.collectors.views import sparkline

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    counts = [(0, 0), (4, 1), (2, 2)]
    chart = sparkline(
        [(t0 + timedelta(minutes=i), a, b) for i, (a, b) in enumerate(counts)], width=120, height=28
    )
    assert chart["accepted_total"] == 6
    assert chart["ingested_total"] == 3
    assert [b["x"] for b in chart["bars"]] == [40.0, 80.0]  # no bar for the idle minute
    tall, short = chart["bars"]
    assert tall["h"] == 24.0  # the peak fills the usable height
    assert short["h"] == 12.0
    for bar in chart["bars"]:
        assert bar["y"] >= 0
        assert bar["y"] + bar["h"] <= chart["height"]
    ys = [float(p.split(",")[1]) for p in chart["ingested_points"].split()]
    assert ys[0] > ys[1] > ys[2]  # more ingested = higher on screen


@pytest.mark.parametrize(
    "value",
    [
        "\x00",
        "x" * 5000,
        "ünïcødé/../..",
        "nan",
        "-inf",
        "1e999",
        "<script>alert(1)</script>",
        "   ",
    ],
)
def test_garbage_in_any_field_is_a_form_error_never_a_500(
    alice, alice_client, install, source_model, value
):
    inst = install(alice)
    fields = [k for k in form_data(alice) if k != "active"]
    for field in fields:
        response = alice_client.post(_url("create", inst), form_data(alice, **{field: value}))
        assert response.status_code in (302, 400), (field, response.status_code)
        assert "<script>alert(1)</script>" not in response.content.decode()
    check = alice_client.get(
        _url("source_check", inst), {"source_url": value, "model_version_id": value}, headers=HX
    )
    assert check.status_code == 200
    Collector.objects.all().delete()


def test_show_all_queries_do_not_grow_with_collectors_and_pages_past_fifty(
    alice, alice_client, install, source_model
):
    inst = install(alice)
    first = _make(alice, alice_client, inst)
    alice_client.get(_url("list", inst))  # warm per-session lookups

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        alice_client.get(_url("list", inst))
    # 59 more collectors (copies of the first, which the page shows 50 at a time).
    for i in range(59):
        first.pk, first.public_id = None, f"copy-{i:02d}"
        first.save()
    with CaptureQueriesContext(connection) as sixty:
        body = alice_client.get(_url("list", inst)).content.decode()
    assert len(sixty.captured_queries) <= len(one.captured_queries) + 2
    assert body.count('class="collector-row"') == 50
    assert "Page 1 of 2" in body
    page2 = alice_client.get(_url("list", inst) + "?page=2").content.decode()
    assert page2.count('class="collector-row"') == 10
