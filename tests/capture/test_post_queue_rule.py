"""The post-queue rule: an input is posted only when the post-queue output holds something (a
non-default value), not when a field is merely present. Real OCR, real worker processes."""

from __future__ import annotations

import pytest
from clarifai_grpc.grpc.api import resources_pb2

from collectors_module.capture.models import Capture, CaptureState
from collectors_module.core.content import has_content, prune_empty
from collectors_module.inputs.models import Input
from tests.capture.test_pipeline import wait_terminal
from tests.support import rules

pytestmark = pytest.mark.django_db(transaction=True)


def test_present_but_default_fields_are_empty():
    assert not has_content(resources_pb2.Data())
    assert not has_content(resources_pb2.Data(text=resources_pb2.Text(raw="")))
    empty_region = resources_pb2.Data()
    empty_region.metadata.SetInParent()  # a present metadata Struct without keys
    assert empty_region.HasField("metadata")
    assert not has_content(empty_region)
    for filled in (
        resources_pb2.Data(text=resources_pb2.Text(raw="a")),
        resources_pb2.Data(concepts=[resources_pb2.Concept(id="x")]),
        resources_pb2.Data(regions=[resources_pb2.Region()]),
        resources_pb2.Data(embeddings=[resources_pb2.Embedding(vector=[0.1])]),
        resources_pb2.Data(colors=[resources_pb2.Color(raw_hex="#fff")]),
        resources_pb2.Data(image=resources_pb2.Image(url="https://x/y.png")),
    ):
        assert has_content(filled), filled
    meta = resources_pb2.Data()
    meta.metadata.update({"k": 1})
    assert has_content(meta)
    pruned = prune_empty(resources_pb2.Data(text=resources_pb2.Text(raw="")))
    assert not pruned.HasField("text")


@pytest.mark.worker
def test_ocr_post_queue_posts_images_with_text_and_filters_those_without(
    api, alice, make_collector, celery_workers
):
    celery_workers.start(pool="solo", concurrency=1)
    rules.workflow(alice.app, "read-text", [{"id": "read", "model": rules.OCR_NODE}])
    collector = make_collector(alice, source=rules.COLOR, post_queue_workflow_id="read-text")
    rules.predict_image(api, alice.secret, rules.blank_image())
    rules.predict_image(api, alice.secret, rules.text_image("HELLO 42"))
    captures = list(Capture.objects.filter(collector=collector).order_by("created_at"))
    assert len(captures) == 2
    states = wait_terminal([c.pk for c in captures], timeout=90)
    blank, text = (Capture.objects.get(pk=c.pk) for c in captures)
    assert states[str(blank.pk)] == CaptureState.FILTERED, blank.reason
    assert blank.reason.startswith("post-queue output empty")
    assert blank.filtered_by == "read"
    assert states[str(text.pk)] == CaptureState.INGESTED, text.reason
    [inp] = Input.objects.filter(app=alice.app)
    assert inp.public_id == text.destination_input_id
    assert inp.text.replace(" ", "") == "HELLO42"  # the text column holds data.text.raw
