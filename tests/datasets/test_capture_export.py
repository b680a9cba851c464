"""A collector with a destination dataset captures three predictions through a real Celery
worker; a version of the dataset is built and exported in every format by the worker; the
archives are downloaded and opened (COCO with pycocotools, JSON parsed, protobuf parsed with the
clarifai-grpc messages) and checked against the inputs, concepts and regions."""

from __future__ import annotations

import base64
import io
import json
import zipfile

import pytest
from clarifai_grpc.grpc.api import resources_pb2
from google.protobuf import json_format
from PIL import Image
from pycocotools.coco import COCO

from collectors_module.datasets.models import DatasetInput
from collectors_module.inputs.models import Annotation, Input

from .support import QR, download, predict_qr, qr_png, version_path, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

SIZES = [(600, 400, (300, 100)), (500, 500, (40, 60)), (640, 360, (200, 50))]


def test_collector_fills_dataset_and_version_exports_in_every_format(
    api, client, alice, bob, make_collector, celery_workers, tmp_path
):
    worker = celery_workers.start(pool="solo")
    base = f"/v2/users/{alice.user.username}/apps/{alice.app.public_id}"
    assert (
        api.post(base + "/datasets", {"datasets": [{"id": "captures"}]}, key=alice.secret)[
            "status"
        ]["code"]
        == 10000
    )
    make_collector(alice, "qr-collector", source=QR)
    ext = f"/api/v2/users/{alice.user.username}/apps/{alice.app.public_id}/collectors/qr-collector/dataset"
    assert (
        api.call("PUT", ext, {"dataset_id": "captures"}, key=alice.secret)["dataset_id"]
        == "captures"
    )

    for i, (w, h, at) in enumerate(SIZES):
        predict_qr(api, alice.secret, qr_png(f"payload-{i}", w, h, at))
    wait_for(lambda: DatasetInput.objects.count() == 3, what="3 dataset inputs", log=worker.log)
    captured = list(Input.objects.filter(app=alice.app))
    assert len(captured) == 3
    assert {m.input_id for m in DatasetInput.objects.all()} == {i.pk for i in captured}

    # One input posted by hand with image-level concepts, added through the API.
    raw = qr_png("manual", 300, 300, (20, 20))
    body = {
        "inputs": [
            {
                "id": "manual",
                "data": {
                    "image": {"base64": base64.b64encode(raw).decode()},
                    "concepts": [{"id": "label-a", "name": "Label A", "value": 1}],
                },
            }
        ]
    }
    assert api.post(base + "/inputs", body, key=alice.secret)["status"]["code"] == 10000
    r = api.post(
        base + "/datasets/captures/inputs",
        {"dataset_inputs": [{"input": {"id": "manual"}}]},
        key=alice.secret,
    )
    assert r["status"]["code"] == 10000, r

    r = api.post(
        base + "/datasets/captures/versions", {"dataset_versions": [{"id": "v1"}]}, key=alice.secret
    )
    assert r["status"]["code"] == 10000, r
    vpath = version_path(alice, "captures", "v1")
    wait_for(
        lambda: api.get(vpath, key=alice.secret)["dataset_version"]["status"]["code"] == 64015,
        what="version ready",
        log=worker.log,
    )

    exports = [{"format": f} for f in ("CLARIFAI_DATA_PROTOBUF", "CLARIFAI_DATA_JSON", "COCO")]
    r = api.call("PUT", vpath + "/exports", {"exports": exports}, key=alice.secret)
    assert r["status"]["code"] == 10000, r
    assert {e["status"]["code"] for e in r["exports"]} <= {64201, 64203, 64200}

    def all_done():
        info = api.get(vpath, key=alice.secret)["dataset_version"].get("export_info", {})
        codes = {k: v["status"]["code"] for k, v in info.items()}
        failed = [v for v in info.values() if v["status"]["code"] == 64202]
        assert not failed, failed
        return info if len(codes) == 3 and set(codes.values()) == {64200} else None

    info = wait_for(all_done, what="three exports", log=worker.log)

    # The expected content, from the database rows the capture wrote.
    expected_regions = {}
    for inp in captured:
        regions = [
            region
            for ann in Annotation.objects.filter(input=inp)
            for region in (ann.data or {}).get("regions", [])
        ]
        assert regions, "the QR detector found the code"
        expected_regions[inp.public_id] = regions
    ids = {i.public_id for i in captured} | {"manual"}

    # Only the owner fetches the archives.
    for url in (e["url"] for e in info.values()):
        assert download(client, url, bob.secret)[0] == 404
        assert download(client, url, "not-a-key")[0] == 404
        assert download(client, url, None)[0] == 302  # to the login page

    # --- CLARIFAI_DATA_PROTOBUF
    code, blob, headers = download(client, info["clarifai_data_protobuf"]["url"], alice.secret)
    assert code == 200
    assert headers["Content-Type"] == "application/zip"
    assert len(blob) == int(info["clarifai_data_protobuf"]["size"])
    zf = zipfile.ZipFile(io.BytesIO(blob))
    assert zf.read("mimetype") == b"application/x.clarifai-data+protobuf"
    inputs = []
    for name in zf.namelist():
        if name != "mimetype":
            batch = resources_pb2.InputBatch.FromString(zf.read(name))
            assert name.endswith(f"_n{len(batch.inputs)}")
            inputs.extend(batch.inputs)
    assert {i.id for i in inputs} == ids
    by_id = {i.id: i for i in inputs}
    for input_id, regions in expected_regions.items():
        pb = by_id[input_id]
        assert len(pb.data.regions) == len(regions)
        box = pb.data.regions[0].region_info.bounding_box
        assert box.left_col == pytest.approx(regions[0]["region_info"]["bounding_box"]["left_col"])
        assert pb.data.regions[0].data.concepts[0].id == "qr-code"
        assert pb.data.image.url.endswith(f"/inputs/{input_id}/media")
        assert list(pb.dataset_ids) == ["captures"]
    assert [c.id for c in by_id["manual"].data.concepts] == ["label-a"]

    # --- CLARIFAI_DATA_JSON
    code, blob, _ = download(client, info["clarifai_data_json"]["url"], alice.secret)
    zf = zipfile.ZipFile(io.BytesIO(blob))
    assert zf.read("mimetype") == b"application/x.clarifai-data+json"
    json_inputs = []
    for name in zf.namelist():
        if name != "mimetype":
            batch = json_format.ParseDict(json.loads(zf.read(name)), resources_pb2.InputBatch())
            json_inputs.extend(batch.inputs)
    assert {i.id: i for i in json_inputs} == by_id  # the same content as the protobuf archive

    # --- COCO
    code, blob, _ = download(client, info["coco"]["url"], alice.secret)
    zf = zipfile.ZipFile(io.BytesIO(blob))
    instances = tmp_path / "instances.json"
    instances.write_bytes(zf.read("annotations/instances.json"))
    coco = COCO(str(instances))
    images = {img["clarifai_input_id"]: img for img in coco.loadImgs(coco.getImgIds())}
    assert set(images) == ids
    # each capture's size, by the payload its QR code carries (the worker may ingest in any order)
    sizes = {
        input_id: SIZES[int(regions[0]["data"]["text"]["raw"].removeprefix("payload-"))]
        for input_id, regions in expected_regions.items()
    }
    cats = {c["name"]: c["id"] for c in coco.loadCats(coco.getCatIds())}
    assert set(cats) == {"qr-code", "Label A"}
    for input_id, img in images.items():
        pixels = Image.open(io.BytesIO(zf.read("images/" + img["file_name"])))
        assert (img["width"], img["height"]) == pixels.size
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
        if input_id == "manual":
            assert img["labels"] == [{"category_id": cats["Label A"], "value": 1.0}]
            continue
        w, h, _at = sizes[input_id]
        assert pixels.size == (w, h)
        assert len(anns) == len(expected_regions[input_id])
        box = expected_regions[input_id][0]["region_info"]["bounding_box"]
        x, y, bw, bh = anns[0]["bbox"]
        assert anns[0]["category_id"] == cats["qr-code"]
        assert x == pytest.approx(box["left_col"] * w, abs=0.02)
        assert y == pytest.approx(box["top_row"] * h, abs=0.02)
        assert bw == pytest.approx((box["right_col"] - box["left_col"]) * w, abs=0.05)
        assert bh == pytest.approx((box["bottom_row"] - box["top_row"]) * h, abs=0.05)
        assert bw > 50
        assert bh > 50

    # A second request for exports already done: no new work, the same archives.
    again = api.call("PUT", vpath + "/exports", {"exports": exports}, key=alice.secret)
    assert {e["status"]["code"] for e in again["exports"]} == {64200}
    assert {e["url"] for e in again["exports"]} == {e["url"] for e in info.values()}
