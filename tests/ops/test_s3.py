"""Shared blob storage end to end: with the S3 settings, gunicorn, the capture agent and a Celery
worker read and write input media through django-storages' S3 backend, against moto's standalone
S3 server started by the test; the media download stays tenant-checked; nothing lands on the
local disk. A dataset version of those inputs is built and exported as COCO by the worker into
the same bucket, and the archive is downloaded through its owner-only URL."""

from __future__ import annotations

import base64
import io
import json
import time
import urllib.error
import urllib.request
import zipfile

import boto3
import pytest

from collectors_module.capture.models import Capture, CaptureState
from collectors_module.capture.worker import destination_input_id
from collectors_module.inputs.models import Input
from scripts.chaoslib.services import MotoS3
from tests.ops.stack import http
from tests.support.pages import png_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

COLOR = {
    "model_user_id": "builtin",
    "model_app_id": "main",
    "model_id": "color-recognition",
    "model_version_id": "b13a9cff8522d90a1d8d6902fce2dc9a",
}
BUCKET = "collectors-media"


@pytest.fixture
def s3(tmp_path):
    server = MotoS3(log=tmp_path / "moto.log")
    server.start()
    client = boto3.client(
        "s3",
        endpoint_url=server.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    try:
        yield server, client
    finally:
        server.stop()


def get_bytes(url: str, secret: str) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Key {secret}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_capture_ingest_and_media_download_through_s3(
    alice, bob, make_collector, stack, s3, tmp_path
):
    server, client = s3
    media_root = tmp_path / "local-media"
    media_root.mkdir()
    stack.extra.update(
        {
            "AWS_STORAGE_BUCKET_NAME": BUCKET,
            "AWS_S3_ENDPOINT_URL": server.url,
            "AWS_S3_ACCESS_KEY_ID": "testing",
            "AWS_S3_SECRET_ACCESS_KEY": "testing",
            "AWS_S3_REGION_NAME": "us-east-1",
            "AWS_S3_ADDRESSING_STYLE": "path",
            "MEDIA_ROOT": str(media_root),
        }
    )
    collector = make_collector(alice, "colors", source=COLOR)
    stack.start_web()
    stack.start_agent()
    stack.start_worker(pool="prefork", concurrency=1)
    auth = {"Authorization": f"Key {alice.secret}"}

    # 1. A prediction is captured and the worker ingests it: its image goes to the bucket.
    image = png_bytes((24, 24), (10, 200, 30))
    path = (
        f"/v2/users/{COLOR['model_user_id']}/apps/{COLOR['model_app_id']}/models/"
        f"{COLOR['model_id']}/versions/{COLOR['model_version_id']}/outputs"
    )
    body = {"inputs": [{"data": {"image": {"base64": base64.b64encode(image).decode()}}}]}
    status, reply = http("POST", stack.url + path, body, auth)
    assert status == 200, reply
    assert reply["status"]["code"] == 10000, reply
    deadline = time.monotonic() + 90
    while not Capture.objects.filter(collector=collector, state=CaptureState.INGESTED).exists():
        assert time.monotonic() < deadline, list(Capture.objects.values("state", "reason"))
        time.sleep(0.2)
    capture = Capture.objects.get(collector=collector)
    captured = Input.objects.get(app=alice.app, public_id=destination_input_id(capture.pk))
    assert captured.image.name
    stored = client.get_object(Bucket=BUCKET, Key=captured.image.name)["Body"].read()
    assert stored == image

    # 2. PostInputs through another process writes there too.
    other = png_bytes((20, 20), (200, 20, 200))
    status, reply = http(
        "POST",
        f"{stack.url}/v2/users/alice/apps/app1/inputs",
        {
            "inputs": [
                {"id": "posted", "data": {"image": {"base64": base64.b64encode(other).decode()}}}
            ]
        },
        auth,
    )
    assert status == 200, reply
    assert reply["status"]["code"] == 10000, reply
    posted = Input.objects.get(app=alice.app, public_id="posted")
    assert client.get_object(Bucket=BUCKET, Key=posted.image.name)["Body"].read() == other
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])}
    assert {captured.image.name, posted.image.name} <= keys

    # 3. The media download reads the bucket, for the owner only.
    for inp, raw in ((captured, image), (posted, other)):
        url = f"{stack.url}/apps/app1/inputs/{inp.public_id}/media"
        assert get_bytes(url, alice.secret) == (200, raw)
        assert get_bytes(url, bob.secret)[0] == 404
        assert get_bytes(url, "clct_not-a-key")[0] == 404
    # bob's own app cannot name alice's input either
    assert get_bytes(f"{stack.url}/apps/bobapp/inputs/posted/media", bob.secret)[0] == 404

    # 4. A dataset of both, a version built by the worker, a COCO export into the bucket.
    base = f"{stack.url}/v2/users/alice/apps/app1"

    def call(method: str, url: str, body=None) -> dict:
        status, reply = http(method, url, body, auth)
        assert reply["status"]["code"] == 10000, (status, reply)
        return reply

    call("POST", base + "/datasets", {"datasets": [{"id": "ds"}]})
    members = [{"input": {"id": i.public_id}} for i in (captured, posted)]
    call("POST", base + "/datasets/ds/inputs", {"dataset_inputs": members})
    call("POST", base + "/datasets/ds/versions", {"dataset_versions": [{"id": "v1"}]})
    deadline = time.monotonic() + 90
    while call("GET", base + "/datasets/ds/versions/v1")["dataset_version"]["status"]["code"] != (
        64015  # DATASET_VERSION_READY
    ):
        assert time.monotonic() < deadline, "the version was not built"
        time.sleep(0.3)
    export = {}
    while export.get("status", {}).get("code") != 64200:  # DATASET_VERSION_EXPORT_SUCCESS
        assert time.monotonic() < deadline, export
        reply = call(
            "PUT", base + "/datasets/ds/versions/v1/exports", {"exports": [{"format": "COCO"}]}
        )
        export = reply["exports"][0]
        assert export["status"]["code"] in (64200, 64201, 64203), export  # never FAILED
        time.sleep(0.3)
    url = export["url"] if export["url"].startswith("http") else stack.url + export["url"]
    status, archive = get_bytes(url, alice.secret)
    assert status == 200
    assert len(archive) == int(export["size"])
    zf = zipfile.ZipFile(io.BytesIO(archive))
    coco = json.loads(zf.read("annotations/instances.json"))
    assert {img["clarifai_input_id"] for img in coco["images"]} == {"posted", captured.public_id}
    by_id = {img["clarifai_input_id"]: img for img in coco["images"]}
    assert zf.read("images/" + by_id["posted"]["file_name"]) == other
    assert (by_id["posted"]["width"], by_id["posted"]["height"]) == (20, 20)
    assert get_bytes(url, bob.secret)[0] == 404
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])}
    archives = [k for k in keys if k.endswith(".zip")]
    assert len(archives) == 1, keys
    assert client.get_object(Bucket=BUCKET, Key=archives[0])["Body"].read() == archive

    # nothing was written to the local media folder by any process
    assert not [p for p in media_root.rglob("*") if p.is_file()]
