"""Clarifai's Python SDK (clarifai 12.4.1) dataset calls, run unchanged against Collectors:
App.create_dataset, App.list_datasets, uploads into a dataset, Dataset.list_inputs,
Dataset.create_version, Dataset.list_versions, Dataset.archive_zip (the export helper: starts a
CLARIFAI_DATA_PROTOBUF export and polls it) read back with the SDK's DatasetExportReader, and
Dataset.export (downloads the archive and every image into a local zip).

argv[1]: JSON with the ids and image paths the test set up. The last line printed is the report.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
import zipfile

import requests
from clarifai.client.app import App
from clarifai.client.dataset import Dataset
from clarifai.client.input import Inputs
from clarifai.datasets.export.inputs_annotations import DatasetExportReader
from clarifai_grpc.grpc.api import service_pb2
from clarifai_grpc.grpc.api.status import status_code_pb2

CFG = json.loads(sys.argv[1])
RESULTS: dict[str, str] = {}
FACTS: dict[str, object] = {}
TMP = tempfile.mkdtemp(prefix="sdk-ds-")


def op(name):
    def run(fn):
        try:
            fn()
        except Exception as exc:
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            RESULTS[name] = f"FAIL {detail[:1500]}"
        else:
            RESULTS[name] = "ok"
        return fn

    return run


def refused(fn) -> str:
    """Run `fn`, which must raise; returns the error text."""
    try:
        fn()
    except Exception as exc:
        return str(exc)
    raise AssertionError("expected the server to refuse this call")


USER, APP_ID = CFG["user_id"], CFG["app_id"]
app = App(user_id=USER, app_id=APP_ID)
state: dict = {}


@op("App.create_dataset")
def _():
    ds = app.create_dataset(dataset_id="sdk-ds", description="made by the SDK")
    assert ds.id == "sdk-ds"
    state["ds"] = ds


@op("App.create_dataset refuses a duplicate")
def _():
    text = refused(lambda: app.create_dataset(dataset_id="sdk-ds"))
    assert "already exists" in text, text[:400]


@op("App.list_datasets")
def _():
    ids = [d.id for d in app.list_datasets()]
    assert "sdk-ds" in ids, ids


@op("Inputs.upload_from_bytes into the dataset")
def _():
    inputs = Inputs(user_id=USER, app_id=APP_ID)
    for i, path in enumerate(CFG["images"]):
        with open(path, "rb") as fh:
            inputs.upload_from_bytes(
                input_id=f"sdk-img-{i}",
                image_bytes=fh.read(),
                dataset_id="sdk-ds",
                labels=["sdk-label"],
            )


@op("Dataset.list_inputs")
def _():
    ids = sorted(i.id for i in state["ds"].list_inputs())
    assert ids == [f"sdk-img-{i}" for i in range(len(CFG["images"]))], ids


@op("Dataset.create_version")
def _():
    version = state["ds"].create_version(description="sdk version")
    assert version.version.id
    state["version"] = version


@op("Dataset.list_versions")
def _():
    ids = [v.version.id for v in state["ds"].list_versions()]
    assert ids == [state["version"].version.id], ids


@op("the version is built")
def _():
    v = state["version"]
    request = service_pb2.GetDatasetVersionRequest(
        user_app_id=v.user_app_id, dataset_id=v.id, dataset_version_id=v.version.id
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = v._grpc_request(v.STUB.GetDatasetVersion, request)
        if r.dataset_version.status.code == status_code_pb2.DATASET_VERSION_READY:
            return
        time.sleep(0.3)
    raise AssertionError(f"version not ready: {r.dataset_version.status}")


@op("Dataset.archive_zip")
def _():
    url = state["version"].archive_zip()
    assert url.startswith(("http://", "https://")), url
    state["url"] = url


@op("DatasetExportReader reads the archive")
def _():
    session = requests.Session()
    session.headers.update({"Authorization": f"Key {os.environ['CLARIFAI_PAT']}"})
    with DatasetExportReader(session=session, archive_url=state["url"]) as reader:
        inputs = list(reader)
        assert len(reader) == len(CFG["images"])
    assert sorted(i.id for i in inputs) == [f"sdk-img-{i}" for i in range(len(CFG["images"]))]
    assert all(i.data.concepts[0].id == "sdk-label" for i in inputs), inputs
    FACTS["archive_inputs"] = len(inputs)


@op("Dataset.export")
def _():
    path = os.path.join(TMP, "export.zip")
    state["version"].export(save_path=path, archive_url=state["url"])
    names = sorted(zipfile.ZipFile(path).namelist())
    FACTS["export_files"] = names


@op("another user's dataset does not exist")
def _():
    other = Dataset(dataset_id="sdk-ds", user_id=CFG["other_user"], app_id=CFG["other_app"])
    text = refused(lambda: list(other.list_versions()))
    assert "does not exist" in text, text[:400]


print(json.dumps({"results": RESULTS, "facts": FACTS}))
