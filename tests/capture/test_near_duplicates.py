"""Near-duplicate suppression: fingerprints kept as inputs are created, indexed lookups, and the
collector option in the worker (reason `near_duplicate` with the matched input's id)."""

from __future__ import annotations

import pytest
from clarifai_grpc.grpc.api import resources_pb2
from PIL import Image

from collectors_module.capture.models import Capture, CaptureState
from collectors_module.capture.worker import process, process_batch
from collectors_module.core import fingerprints
from collectors_module.inputs.fingerprints import Fingerprint, compare
from collectors_module.inputs.models import Input, InputFingerprint
from collectors_module.inputs.services import find_duplicate, fingerprint_of, input_create
from tests import photos
from tests.capture.test_pipeline import accept, wait_terminal
from tests.support import rules

pytestmark = pytest.mark.django_db(transaction=True)


def few_pixels_changed(name: str) -> bytes:
    arr = photos.array(name).copy()
    arr[10:14, 10:14] = 255  # 16 pixels turned white
    arr[200, 100:110] = 0
    return photos.encode(Image.fromarray(arr), "PNG")


def store_image(app, input_id: str, raw: bytes):
    return input_create(
        app=app,
        input_pb=resources_pb2.Input(
            id=input_id, data=resources_pb2.Data(image=resources_pb2.Image(base64=raw))
        ),
        image_bytes=raw,
    )


def test_fingerprints_are_kept_as_inputs_are_created_and_deleted(alice):
    row = store_image(alice.app, "coffee", photos.photo("coffee"))
    fp = InputFingerprint.objects.get(input=row)
    assert fp.exact == row.content_hash
    assert fp.phash == fingerprints.phash(photos.photo("coffee"))
    assert (fp.band0, fp.band1, fp.band2, fp.band3) == fingerprints.bands(fp.phash)
    text = input_create(
        app=alice.app,
        input_pb=resources_pb2.Input(
            id="t", data=resources_pb2.Data(text=resources_pb2.Text(raw="Hi  There"))
        ),
    )
    assert InputFingerprint.objects.get(input=text).text == fingerprints.text("hi there")
    row.delete()
    assert not InputFingerprint.objects.filter(input_id=row.pk).exists()


def test_lookup_finds_the_reencoded_and_edited_image_and_not_another(alice, bob):
    store_image(alice.app, "coffee", photos.photo("coffee"))
    exact = find_duplicate(alice.app, fingerprint_of(image_bytes=photos.photo("coffee")))
    assert (exact.input_id, exact.kind) == ("coffee", "exact")
    png = find_duplicate(alice.app, fingerprint_of(image_bytes=photos.photo("coffee", "PNG")))
    assert png.input_id == "coffee"
    assert png.kind == "phash"
    assert png.distance <= 4
    edited = find_duplicate(alice.app, fingerprint_of(image_bytes=few_pixels_changed("coffee")))
    assert edited is not None
    assert edited.input_id == "coffee"
    assert find_duplicate(alice.app, fingerprint_of(image_bytes=photos.photo("chelsea"))) is None
    assert find_duplicate(bob.app, fingerprint_of(image_bytes=photos.photo("coffee"))) is None


def test_distance_beyond_three_bits_is_found_by_probing_bands(alice):
    raw = photos.photo("coffee")
    h = fingerprints.phash(raw)
    store_image(alice.app, "coffee", raw)
    flipped = fingerprints.to_unsigned(h) ^ 0b1111  # 4 bits, all in the lowest band
    f = fingerprints.to_signed(flipped)
    assert find_duplicate(alice.app, Fingerprint(exact="x", phash=f), max_distance=3) is None
    match = find_duplicate(alice.app, Fingerprint(exact="x", phash=f), max_distance=4)
    assert match.distance == 4


def test_text_duplicates_after_whitespace_and_case_changes(alice):
    input_create(
        app=alice.app,
        input_pb=resources_pb2.Input(
            id="t1", data=resources_pb2.Data(text=resources_pb2.Text(raw="What a  lovely day!"))
        ),
    )
    m = find_duplicate(alice.app, fingerprint_of(text="  what a lovely\tDAY!\n"))
    assert (m.input_id, m.kind) == ("t1", "text")
    assert find_duplicate(alice.app, fingerprint_of(text="what a lovely night")) is None


def test_worker_drops_text_captures_duplicating_an_input(alice, make_collector):
    c = make_collector(alice)
    c.near_duplicate = True
    c.save()
    first = accept(c, alice.user, "What a lovely day", publish=False)
    assert process(first.pk) == CaptureState.INGESTED
    again = accept(c, alice.user, "what a   LOVELY day\n", publish=False)
    assert process(again.pk) == CaptureState.FILTERED
    again.refresh_from_db()
    assert again.filtered_by == "near_duplicate"
    first.refresh_from_db()
    assert (
        again.reason == f"near_duplicate: matches input {first.destination_input_id} (text match)"
    )
    other = accept(c, alice.user, "what a dreadful day", publish=False)
    assert process(other.pk) == CaptureState.INGESTED


def test_compare_judges_two_fingerprints_as_the_lookup_does():
    coffee = fingerprint_of(image_bytes=photos.photo("coffee"))
    assert compare(coffee, fingerprint_of(image_bytes=photos.photo("coffee"))) == ("exact", 0)
    kind, dist = compare(fingerprint_of(image_bytes=few_pixels_changed("coffee")), coffee)
    assert kind == "phash"
    assert dist <= 4
    assert compare(
        fingerprint_of(image_bytes=few_pixels_changed("coffee")), coffee, max_distance=0
    ) in (
        None,
        ("phash", 0),
    )
    assert compare(fingerprint_of(image_bytes=photos.photo("chelsea")), coffee) is None
    assert compare(fingerprint_of(text="A  Day"), fingerprint_of(text="a day")) == ("text", 0)
    assert compare(fingerprint_of(text="a day"), fingerprint_of(text="a night")) is None


def test_duplicates_claimed_in_the_same_batch_end_with_one_input(alice, bob, make_collector):
    c = make_collector(alice)
    c.near_duplicate = True
    c.save()
    other_app = make_collector(bob)  # the same text into another app is no duplicate there
    other_app.near_duplicate = True
    other_app.save()
    first = accept(c, alice.user, "What a lovely day", publish=False)
    again = accept(c, alice.user, "what a   LOVELY day\n", publish=False)
    different = accept(c, alice.user, "what a dreadful day", publish=False)
    elsewhere = accept(other_app, bob.user, "What a lovely day", publish=False)
    states = process_batch([first.pk, again.pk, different.pk, elsewhere.pk])
    assert states == {
        str(first.pk): CaptureState.INGESTED,
        str(again.pk): CaptureState.RETRY,
        str(different.pk): CaptureState.INGESTED,
        str(elsewhere.pk): CaptureState.INGESTED,
    }
    again.refresh_from_db()
    assert again.attempts == 0  # handed back, not counted
    assert again.reason.startswith(f"handed back: a near duplicate of capture {first.pk}")
    # Decided again (as the republished message does): the input it duplicates is in the app now.
    assert process(again.pk) == CaptureState.FILTERED
    again.refresh_from_db()
    first.refresh_from_db()
    assert again.reason == (
        f"near_duplicate: matches input {first.destination_input_id} (text match)"
    )
    assert Input.objects.filter(app=alice.app).count() == 2
    assert Input.objects.filter(app=bob.app).count() == 1


def test_two_workers_deciding_duplicates_at_once_commit_one_input(alice, make_collector):
    """Two batches decide a duplicate pair before either commits (two workers at once): the
    second commit looks again under the app's lock and filters its capture."""
    from collectors_module.capture.worker import claim, commit, decide

    c = make_collector(alice)
    c.near_duplicate = True
    c.save()
    first = accept(c, alice.user, "What a lovely day", publish=False)
    again = accept(c, alice.user, "what a lovely day", publish=False)
    decided = []
    for cap in (first, again):
        ((pk, attempts),) = claim([cap.pk]).claimed
        row = Capture.objects.select_related("collector__app").get(pk=pk)
        decided.append(decide(row, attempts))
    assert [d.state for d in decided] == ["ingest", "ingest"]  # neither saw the other
    assert [d.state for d in commit([decided[0]])] == [CaptureState.INGESTED]
    (late,) = commit([decided[1]])
    assert late.state == CaptureState.FILTERED
    first.refresh_from_db()
    again.refresh_from_db()
    assert again.state == CaptureState.FILTERED
    assert (
        again.reason == f"near_duplicate: matches input {first.destination_input_id} (text match)"
    )
    assert Input.objects.filter(app=alice.app).count() == 1


def test_a_batch_of_near_duplicate_images_keeps_one(api, alice, make_collector):
    c = make_collector(alice, source=rules.COLOR)
    c.near_duplicate = True
    c.near_duplicate_max_distance = 6
    c.save()
    for raw in (photos.photo("coffee"), few_pixels_changed("coffee"), photos.photo("chelsea")):
        rules.predict_image(api, alice.secret, raw)  # captured (no worker yet)
    caps = list(Capture.objects.filter(collector=c).order_by("created_at"))
    assert len(caps) == 3
    states = process_batch([x.pk for x in caps])
    assert [states[str(x.pk)] for x in caps] == [
        CaptureState.INGESTED,
        CaptureState.RETRY,
        CaptureState.INGESTED,
    ]
    assert process(caps[1].pk) == CaptureState.FILTERED
    caps[1].refresh_from_db()
    assert caps[1].reason.startswith("near_duplicate: matches input ")
    assert "(pHash distance" in caps[1].reason
    assert Input.objects.filter(app=alice.app).count() == 2


def test_preview_drops_a_duplicate_of_a_capture_it_kept_earlier(alice, make_collector):
    from collectors_module.capture.preview import preview_collector

    c = make_collector(alice)
    c.near_duplicate = True
    c.save()
    for text in ("What a lovely day", "what a LOVELY   day", "a dreadful day"):
        accept(c, alice.user, text, publish=False)
    items = preview_collector(c).items
    assert [i.kept for i in items] == [True, False, True]
    assert items[1].decided_by == "near_duplicate"
    assert items[1].reason == (
        f"near_duplicate: duplicates capture {items[0].capture.pk}, kept earlier in this preview"
    )


@pytest.mark.worker
def test_worker_drops_reencoded_and_edited_images_and_keeps_another(
    api, alice, make_collector, celery_workers
):
    celery_workers.start(pool="solo", concurrency=1)
    store_image(alice.app, "coffee-0", photos.photo("coffee"))
    c = make_collector(alice, source=rules.COLOR)
    r = api.patch(
        f"/api/v2/users/alice/apps/app1/collectors/{c.public_id}/near_duplicate",
        {"enabled": True, "max_distance": 6},
        key=alice.secret,
    )
    assert r["near_duplicate"] == {"enabled": True, "max_distance": 6}, r
    for raw in (
        photos.photo("coffee", "PNG"),
        few_pixels_changed("coffee"),
        photos.photo("chelsea"),
    ):
        rules.predict_image(api, alice.secret, raw)
    caps = list(Capture.objects.filter(collector=c).order_by("created_at"))
    states = wait_terminal([x.pk for x in caps], timeout=60)
    reencoded, edited, cat = (Capture.objects.get(pk=x.pk) for x in caps)
    for dup in (reencoded, edited):
        assert states[str(dup.pk)] == CaptureState.FILTERED, dup.reason
        assert dup.reason.startswith("near_duplicate: matches input coffee-0 (pHash distance")
    assert states[str(cat.pk)] == CaptureState.INGESTED
    assert Input.objects.filter(app=alice.app).count() == 2
    got = api.get(
        f"/api/v2/users/alice/apps/app1/collectors/{c.public_id}/near_duplicate", key=alice.secret
    )
    assert got["near_duplicate"]["enabled"] is True


def test_patch_near_duplicate_refuses_a_bad_distance(api, alice, make_collector):
    c = make_collector(alice)
    r = api.patch(
        f"/api/v2/users/alice/apps/app1/collectors/{c.public_id}/near_duplicate",
        {"max_distance": 40},
        key=alice.secret,
    )
    assert r["status"]["code"] != 10000
    assert "max_distance" in r["status"]["description"] + r["status"].get("details", "")


def test_near_duplicate_operator_in_a_post_queue_workflow(api, alice, make_collector):
    store_image(alice.app, "coffee-0", photos.photo("coffee"))
    rules.operator_model(alice.app, "dedup", "near-duplicate", {"max_distance": 4})
    rules.workflow(alice.app, "dedup-wf", [{"id": "dedup", "model": {"id": "dedup"}}])
    c = make_collector(alice, source=rules.COLOR, post_queue_workflow_id="dedup-wf")
    rules.predict_image(api, alice.secret, photos.photo("coffee", "PNG"))
    rules.predict_image(api, alice.secret, photos.photo("chelsea"))
    copy, cat = Capture.objects.filter(collector=c).order_by("created_at")
    assert process(copy.pk) == CaptureState.FILTERED
    copy.refresh_from_db()
    assert copy.reason.startswith("near_duplicate: matches input coffee-0 (pHash distance ")
    assert copy.reason.endswith("(post_queue_workflow dedup-wf, filtered by dedup)")
    assert process(cat.pk) == CaptureState.INGESTED


def test_a_pre_queue_near_duplicate_node_is_never_run_on_the_predict_path(
    api, alice, make_collector
):
    store_image(alice.app, "coffee-0", photos.photo("coffee"))
    rules.operator_model(alice.app, "dedup", "near-duplicate", {})
    rules.workflow(alice.app, "dedup-wf", [{"id": "dedup", "model": {"id": "dedup"}}])
    c = make_collector(alice, source=rules.COLOR, pre_queue_workflow_id="dedup-wf")
    rules.predict_image(api, alice.secret, photos.photo("coffee", "PNG"))
    [cap] = Capture.objects.filter(collector=c)
    assert cap.pre_queue_pending  # deferred to the worker, not looked up at admission
    assert process(cap.pk) == CaptureState.FILTERED
    cap.refresh_from_db()
    assert cap.reason.startswith("near_duplicate: matches input coffee-0")
