"""The destination dataset on the collector form and on Show All; the datasets pages' refusals."""

from __future__ import annotations

import pytest
from django.urls import reverse

from collectors_module.collectors.models import Collector
from collectors_module.datasets.models import CollectorDataset, Dataset
from tests.support.modules import form_data

pytestmark = pytest.mark.django_db


def _url(name, inst, *args):
    return reverse(f"collectors:{name}", args=["app1", inst.slug, *args])


def test_collector_form_sets_the_destination_dataset_and_show_all_shows_it(
    alice, alice_client, install, source_model, workflows
):
    inst = install(alice)
    Dataset.objects.create(app=alice.app, public_id="training")
    body = alice_client.get(_url("create", inst)).content.decode()
    assert "Destination dataset" in body
    assert '<option value="training">training</option>' in body
    response = alice_client.post(_url("create", inst), form_data(alice, dataset_id="training"))
    assert response.status_code == 302, response.content.decode()[:2000]
    c = Collector.objects.get(app=alice.app, public_id="c1")
    assert CollectorDataset.objects.get(collector=c).dataset.public_id == "training"
    listing = alice_client.get(_url("list", inst)).content.decode()
    assert 'data-field="dataset"' in listing
    assert "<code>training</code>" in listing
    # The update form shows it, and clearing it removes the link.
    update = alice_client.get(_url("update", inst, "c1")).content.decode()
    assert '<option value="training" selected>training</option>' in update
    data = form_data(alice, dataset_id="")
    data.pop("id")
    response = alice_client.post(_url("update", inst, "c1"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert not CollectorDataset.objects.filter(collector=c).exists()


def test_collector_form_refuses_a_dataset_of_another_app(
    alice, bob, alice_client, install, source_model, workflows
):
    inst = install(alice)
    Dataset.objects.create(app=bob.app, public_id="bobs")
    response = alice_client.post(_url("create", inst), form_data(alice, dataset_id="bobs"))
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not Collector.objects.filter(public_id="c1").exists()  # nothing half-saved


def test_dataset_pages_of_another_user_are_404(alice, bob_client):
    Dataset.objects.create(app=alice.app, public_id="training")
    for path in (
        "/apps/app1/datasets/",
        "/apps/app1/datasets/training/",
        "/apps/app1/datasets/training/versions/v1/exports/coco.zip",
    ):
        assert bob_client.get(path).status_code == 404, path
    assert bob_client.post("/apps/app1/datasets/training/versions/", {}).status_code == 404
    assert Dataset.objects.get().versions.count() == 0


def test_create_dataset_form_shows_the_error_next_to_the_field(alice, alice_client):
    Dataset.objects.create(app=alice.app, public_id="taken")
    response = alice_client.post("/apps/app1/datasets/", {"dataset_id": "taken"})
    assert response.status_code == 400
    body = response.content.decode()
    assert 'id="field-dataset_id"' in body
    assert "already exists" in body
