"""What the walkthrough found: one key name, the Show All heading and a readable chart, gallery
titles that are not capture ids, no "reads source" tick before a source is chosen."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from collectors_module.capture.models import Capture
from collectors_module.capture.worker import process
from tests.support import rules
from tests.support.modules import VERSION_ID

pytestmark = pytest.mark.django_db

SOURCE = {
    "model_user_id": "alice",
    "model_app_id": "app1",
    "model_id": "colors",
    "model_version_id": VERSION_ID,
}


def test_key_picker_names_keys_one_way_and_waits_for_a_source(
    alice, alice_client, install, source_model
):
    inst = install(alice)
    body = alice_client.get(reverse("collectors:create", args=["app1", inst.slug])).content.decode()
    key = alice.key
    name = f"{key.description} ({key.public_id})" if key.description else key.public_id
    assert key.display_name == name
    option = re.search(rf'<option value="{key.public_id}">([^<]*)</option>', body).group(1)
    assert option.startswith(name)
    assert "reads source: choose a source first" in option
    assert "reads source ✓" not in body
    assert f"<li>{name}:" in body
    assert "…" + key.last4 not in body
    # With a source, the picker can tell.
    check = alice_client.get(
        reverse("collectors:source_check", args=["app1", inst.slug]),
        {"source_url": "/users/alice/apps/app1/models/colors", "model_version_id": VERSION_ID},
        headers={"HX-Request": "true"},
    ).content.decode()
    assert "reads source ✓" in check


def test_show_all_heading_is_the_sidebar_link_and_the_chart_has_axis_and_values(
    api, alice, alice_client, install, source_model, make_collector
):
    inst = install(alice)
    make_collector(alice, "everything", source=SOURCE)
    rules.predict_image(api, alice.secret, rules.solid((220, 20, 30)), SOURCE)
    body = alice_client.get(reverse("collectors:list", args=["app1", inst.slug])).content.decode()
    assert "<h1>Show All</h1>" in body
    sidebar_link = reverse("collectors:list", args=["app1", inst.slug])
    assert f'<a href="{sidebar_link}">Show All</a>' in body
    assert ">now</text>" in body
    assert "\u221260 min</text>" in body  # a minus sign
    assert re.search(
        r"<rect [^>]*><title>\d\d:\d\d UTC: 1 captured, 0 ingested</title></rect>", body
    )
    assert re.search(r"1 captured, 0 ingested; busiest minute \d\d:\d\d UTC \(1 captured\)", body)


def test_gallery_cards_are_titled_by_content_not_by_capture_id(
    api, alice, alice_client, source_model, make_collector
):
    c = make_collector(alice, "everything", source=SOURCE)
    rules.predict_image(api, alice.secret, rules.solid((220, 20, 30)), SOURCE)
    [cap] = Capture.objects.filter(collector=c)
    process(cap.pk)
    cap.refresh_from_db()
    body = alice_client.get(reverse("applications:detail", args=["app1"])).content.decode()
    title = re.search(r'<p class="item-title"><a [^>]*>([^<]*)</a></p>', body).group(1)
    assert title.startswith("red · Captured ")
    assert cap.destination_input_id not in title
    assert f"<code>{cap.destination_input_id}</code>" in body  # the whole id, not truncated
