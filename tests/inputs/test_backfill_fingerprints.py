"""`manage.py backfill_fingerprints`: inputs made before near-duplicate lookups existed get their
fingerprints, in batches, once; afterwards the lookups find them."""

from __future__ import annotations

import io

import pytest
from clarifai_grpc.grpc.api import resources_pb2
from django.core.management import CommandError, call_command

from collectors_module.inputs.models import InputFingerprint
from collectors_module.inputs.services import find_duplicate, fingerprint_of, input_create
from tests import photos
from tests.capture.test_near_duplicates import few_pixels_changed, store_image

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command("backfill_fingerprints", *args, stdout=out)
    return out.getvalue()


def test_backfill_gives_old_inputs_their_fingerprints(alice, bob):
    store_image(alice.app, "coffee", photos.photo("coffee"))
    store_image(alice.app, "cat", photos.photo("chelsea"))
    input_create(
        app=alice.app,
        input_pb=resources_pb2.Input(
            id="t1", data=resources_pb2.Data(text=resources_pb2.Text(raw="What a lovely day"))
        ),
    )
    store_image(bob.app, "bobs-coffee", photos.photo("coffee"))
    InputFingerprint.objects.all().delete()  # as inputs made before this version
    edited = fingerprint_of(image_bytes=few_pixels_changed("coffee"))
    assert find_duplicate(alice.app, edited) is None

    out = run("--app", f"{alice.user.username}/{alice.app.public_id}", "--batch", "2")
    assert "2 inputs fingerprinted" in out
    assert "done: 3 inputs had no fingerprint" in out
    match = find_duplicate(alice.app, edited)
    assert (match.input_id, match.kind) == ("coffee", "phash")
    assert find_duplicate(alice.app, fingerprint_of(text="what a LOVELY day")).input_id == "t1"
    assert not InputFingerprint.objects.filter(app=bob.app).exists()  # another app: untouched

    assert "done: 1 inputs had no fingerprint" in run()  # the rest (bob's), then nothing
    assert "done: 0 inputs had no fingerprint" in run()
    assert InputFingerprint.objects.count() == 4


def test_backfill_refuses_a_bad_app_or_batch(alice):
    with pytest.raises(CommandError, match="no app"):
        run("--app", "alice/no-such-app")
    with pytest.raises(CommandError, match="no app"):
        run("--app", "just-a-name")
    with pytest.raises(CommandError, match="--batch"):
        run("--batch", "0")
