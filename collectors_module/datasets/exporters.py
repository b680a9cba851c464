"""Export archives of a dataset version: CLARIFAI_DATA_PROTOBUF, CLARIFAI_DATA_JSON and COCO.

Each writer streams the version's frozen rows from the database in batches
(`selectors.version_items`) into zip entries written one after the other, so neither the inputs
nor their bytes are ever all in memory: an `InputBatch` per batch (protobuf / JSON), and for COCO
the images copied from blob storage entry by entry and `annotations/instances.json` written as a
stream of JSON fragments. `run_export` assembles the zip in a temporary file, saves it to the
default storage (S3 when configured) under a unique name and only then marks the export
successful, fenced by its lease: a worker killed midway leaves no successful export behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Iterator
from types import SimpleNamespace

from clarifai_grpc.grpc.api import resources_pb2
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from google.protobuf import json_format
from PIL import Image, UnidentifiedImageError

from collectors_module.core.faults import fault_point
from collectors_module.inputs.convert import media_url

from . import selectors, services
from .models import DatasetVersionExport, DatasetVersionInput

log = logging.getLogger("collectors.datasets")

PROTOBUF_MIMETYPE = b"application/x.clarifai-data+protobuf"
JSON_MIMETYPE = b"application/x.clarifai-data+json"
IMAGE_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp"}

Progress = Callable[[int], None]


def _batches(version) -> Iterator[list[DatasetVersionInput]]:
    size = settings.DATASET_EXPORT_BATCH_SIZE
    batch: list[DatasetVersionInput] = []
    for item in selectors.version_items(version, batch=size):
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def item_data(item: DatasetVersionInput, app) -> resources_pb2.Data:
    """The frozen input's Data with its annotations' concepts and regions merged in (as
    Clarifai's exports carry them), the image as the input's media URL."""
    data = resources_pb2.Data()
    try:
        json_format.ParseDict(item.data or {}, data, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError):
        log.warning("frozen input %s has unreadable data", item.pk)
    for annotation in item.annotations or []:
        part = resources_pb2.Data()
        try:
            json_format.ParseDict(annotation.get("data") or {}, part, ignore_unknown_fields=True)
        except (json_format.ParseError, ValueError, TypeError):
            continue
        data.concepts.extend(part.concepts)
        data.regions.extend(part.regions)
    if item.text:
        data.text.raw = item.text
    if item.image_name:
        url = media_url(SimpleNamespace(app=app, public_id=item.input_public_id))
        data.image.url = url
        # Clarifai's hosted form, which the SDK's export downloader reads: prefix/orig/suffix
        # (the `inputs/<id>/orig/media` alias of the media view, datasets/urls.py).
        data.image.hosted.prefix = url.removesuffix("/media")
        data.image.hosted.suffix = "media"
        data.image.hosted.sizes.append("orig")
    elif item.image_url:
        data.image.url = item.image_url
    return data


def _input_batches(zf: zipfile.ZipFile, version, app, progress: Progress, *, as_json: bool):
    zf.writestr("mimetype", JSON_MIMETYPE if as_json else PROTOBUF_MIMETYPE)
    done = 0
    dataset_id = version.dataset.public_id
    for index, batch in enumerate(_batches(version)):
        message = resources_pb2.InputBatch()
        for item in batch:
            pb = message.inputs.add(id=item.input_public_id)
            pb.data.CopyFrom(item_data(item, app))
            pb.created_at.FromDatetime(item.input_created_at)
            pb.dataset_ids.append(dataset_id)
        # `_n<count>` ends each name: the Clarifai SDK's reader counts the inputs from it.
        name = f"all/batch-{index:05d}_n{len(batch)}"
        if as_json:
            body = json_format.MessageToDict(message, preserving_proto_field_name=True)
            zf.writestr(name + ".json", json.dumps(body, separators=(",", ":")))
        else:
            zf.writestr(name, message.SerializeToString())
        done += len(batch)
        progress(done)
        fault_point("dataset_export_batch")


def write_protobuf(zf, version, app, progress: Progress) -> None:
    _input_batches(zf, version, app, progress, as_json=False)


def write_json(zf, version, app, progress: Progress) -> None:
    _input_batches(zf, version, app, progress, as_json=True)


def _safe_name(public_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in public_id)[:128]


def _copy_image(zf: zipfile.ZipFile, item: DatasetVersionInput) -> tuple[str, int, int] | None:
    """Copy the image bytes into images/<id><ext>; returns (entry name, width, height)."""
    try:
        handle = default_storage.open(item.image_name, "rb")
    except (FileNotFoundError, OSError):
        return None
    with handle:
        try:
            with Image.open(handle) as img:  # reads the header only
                width, height = img.size
                ext = IMAGE_EXTENSIONS.get(img.format or "", ".img")
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
            return None
        handle.seek(0)
        name = f"images/{_safe_name(item.input_public_id)}{ext}"
        with zf.open(name, "w") as out:
            shutil.copyfileobj(handle, out, 256 * 1024)
    return name, width, height


def write_coco(zf, version, app, progress: Progress) -> None:
    """images/… (the bytes) and annotations/instances.json (COCO detection format): images with
    their sizes, concepts as categories, regions as bounding boxes (pixels), image-level concepts
    as `labels` of each image."""
    done = 0
    files: dict[int, str] = {}  # frozen row pk -> entry name (ints and short strings only)
    for batch in _batches(version):
        sizes = {}
        for item in batch:
            if item.image_name:
                copied = _copy_image(zf, item)
                if copied:
                    files[item.pk] = copied[0]
                    sizes[item.pk] = (copied[1], copied[2])
        services.sizes_record(sizes)
        done += len(batch)
        progress(done)
        fault_point("dataset_export_batch")

    categories: dict[str, tuple[int, str]] = {}

    def category(concept) -> int:
        key = concept.id or concept.name
        if key not in categories:
            categories[key] = (len(categories) + 1, concept.name or concept.id)
        return categories[key][0]

    with zf.open("annotations/instances.json", "w") as raw:
        out = _JsonStream(raw)
        out.write(
            '{"info":'
            + json.dumps(
                {
                    "description": f"{version.dataset.public_id} version {version.public_id}",
                    "version": version.public_id,
                    "date_created": version.created_at.isoformat(),
                    "contributor": app.owner.username,
                }
            )
            + ',"licenses":[],"images":['
        )
        first = True
        for batch in _batches(version):
            for item in batch:
                if item.pk not in files:
                    continue
                data = item_data(item, app)
                labels = [
                    {"category_id": category(c), "value": round(c.value, 6)} for c in data.concepts
                ]
                image = {
                    "id": item.pk,
                    "file_name": files[item.pk].removeprefix("images/"),
                    "width": item.width or 0,
                    "height": item.height or 0,
                    "clarifai_input_id": item.input_public_id,
                    "labels": labels,
                }
                out.write(("" if first else ",") + json.dumps(image))
                first = False
            done += len(batch)
            progress(done)
        out.write('],"annotations":[')
        first = True
        annotation_id = 0
        for batch in _batches(version):
            for item in batch:
                if item.pk not in files or not item.width or not item.height:
                    continue
                for region in item_data(item, app).regions:
                    if not region.region_info.HasField("bounding_box"):
                        continue
                    box = region.region_info.bounding_box
                    x = box.left_col * item.width
                    y = box.top_row * item.height
                    w = max(0.0, (box.right_col - box.left_col) * item.width)
                    h = max(0.0, (box.bottom_row - box.top_row) * item.height)
                    for concept in region.data.concepts or [
                        resources_pb2.Concept(id="region", name="region", value=1.0)
                    ]:
                        annotation_id += 1
                        ann = {
                            "id": annotation_id,
                            "image_id": item.pk,
                            "category_id": category(concept),
                            "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)],
                            "area": round(w * h, 2),
                            "iscrowd": 0,
                            "score": round(concept.value, 6),
                            "clarifai_region_id": region.id,
                        }
                        out.write(("" if first else ",") + json.dumps(ann))
                        first = False
            done += len(batch)
            progress(done)
        cats = [
            {"id": cid, "name": name, "supercategory": "", "clarifai_concept_id": key}
            for key, (cid, name) in categories.items()
        ]
        out.write('],"categories":' + json.dumps(cats) + "}")


class _JsonStream:
    def __init__(self, raw):
        self.raw = raw

    def write(self, text: str) -> None:
        self.raw.write(text.encode("utf-8"))


WRITERS = {
    "CLARIFAI_DATA_PROTOBUF": (write_protobuf, 1),
    "CLARIFAI_DATA_JSON": (write_json, 1),
    "COCO": (write_coco, 3),  # three passes: images, then image entries, then boxes
}


def run_export(pk: int) -> str:
    """The export task's body: claim, write the archive, save it, mark it done (or failed)."""
    export = services.export_claim(pk)
    if export is None:
        return "skipped"
    token = export.attempts
    export = DatasetVersionExport.objects.select_related("version__dataset__app__owner").get(pk=pk)
    version = export.version
    app = version.dataset.app
    writer, passes = WRITERS[export.format]
    total = max(1, version.inputs_count * passes)

    def progress(done: int) -> None:
        services.export_progress(export, token, processed=min(done, total), total=total)

    progress(0)
    directory = settings.DATASET_EXPORT_TMP_DIR
    try:
        with tempfile.TemporaryFile(dir=directory, suffix=".zip") as tmp:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                writer(zf, version, app, progress)
            size = tmp.tell()
            tmp.seek(0)
            name = (
                f"dataset-exports/{app.pk}/{version.dataset.pk}/{version.pk}/"
                f"{export.format.lower()}-{token}-{uuid.uuid4().hex[:12]}.zip"
            )
            fault_point("dataset_export_before_save")
            saved = default_storage.save(name, File(tmp, name=os.path.basename(name)))
        return (
            "success"
            if services.export_finish(export, token, storage_name=saved, size=size)
            else "lost"
        )
    except services.LeaseLost:
        return "lost"
    except Exception as exc:
        log.exception("export %s failed", pk)
        services.export_fail(export, token, f"{type(exc).__name__}: {exc}")
        return "failed"
